"""The edge's vocabulary: the typed values its decisions and its log use.

StrEnums, so each value is also the plain string that goes into the JSON Lines log and
compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum


class Basis(StrEnum):
    """Whether a behaviour follows Cloudflare's documentation or a model of it."""

    DOCUMENTED = "documented"
    MODELLED = "modelled"


class Action(StrEnum):
    """What the edge did to the body."""

    PASS = "pass"  # nothing: the origin's bytes and headers as they came
    COMPRESS = "compress"
    DECOMPRESS = "decompress"
    TRANSCODE = "transcode"  # decoded from one coding, encoded as another
    REWRITE = "rewrite"  # an HTML feature rewrote the page
    POLISH = "polish"
    SERVED = "served"  # the edge answered itself (its /cdn-cgi/ paths)
    ERROR = "error"  # the edge's error page (a 52x)


class ETagAction(StrEnum):
    KEPT = "kept"
    WEAKENED = "weakened"
    REMOVED = "removed"
    ABSENT = "absent"  # there was none


class CacheStatus(StrEnum):
    """cf-cache-status (facts 6.14)."""

    DYNAMIC = "DYNAMIC"
    MISS = "MISS"
    HIT = "HIT"
    EXPIRED = "EXPIRED"
    REVALIDATED = "REVALIDATED"
    UPDATING = "UPDATING"
    STALE = "STALE"
    BYPASS = "BYPASS"


class NotModifiedBy(StrEnum):
    """Who made a 304."""

    EDGE = "edge"
    ORIGIN = "origin"
