"""What an HTML feature is: one declaration (FeatureSpec) from which the zone's settings,
the rules file's schema, the rewrite and the edge's /cdn-cgi/ paths take what they need,
and the protocol its rewriter follows.

A feature is one module in addon/html/features/ that defines `FEATURE = FeatureSpec(...)`;
nothing else names it (see features/__init__.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from addon.html.engine import Rewriter
from addon.vocabulary import Basis

HTML_TYPES = ("text/html", "application/xhtml+xml")
DOCUMENTED, MODELLED = Basis.DOCUMENTED, Basis.MODELLED
PLANS = ("free", "pro", "business", "enterprise")


@dataclass(frozen=True)
class HtmlJob:
    """What the rewrite of one response needs besides its body."""

    features: tuple[str, ...]  # setting ids, in the order the features run
    charset: str | None = None  # from Content-Type
    https_hosts: tuple[str, ...] = ()
    page_host: str = ""  # the host the page was asked from


class Feature(Protocol):
    """The rewriter of one feature for one document."""

    name: str
    label: str

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        """Register handlers; `page` is the whole document, or None when it streams."""

    def counts(self) -> dict[str, int]:
        """What it changed, for the log."""

    def end_of_body(self) -> str:
        """Markup to insert before </body> (its script), or ""."""


@dataclass(frozen=True)
class Script:
    """A script the edge serves at /cdn-cgi/scripts/<any version>/cloudflare-static/
    <name>.min.js, from addon/html/assets/<file>."""

    name: str
    file: str


@dataclass(frozen=True)
class Page:
    """A page the edge serves at a fixed /cdn-cgi/ path, from addon/html/assets/<file>."""

    path: str
    file: str


@dataclass(frozen=True)
class FeatureSpec:
    name: str  # the zone setting id, also the set_config parameter of configuration rules
    label: str  # as Cloudflare's dashboard names it
    order: int  # features run in this order over one document
    build: Callable[[HtmlJob, random.Random], Feature]
    media_types: tuple[str, ...] = ("text/html",)
    default: bool = False  # on in a new zone
    plans: tuple[str, ...] = PLANS  # plans that have it
    disabled_by_respect_strong_etags: bool = True  # facts 2.2.3
    etag_removal: Basis = MODELLED  # whether removing the ETag is documented for it (2.2.4)
    assets: tuple[Script | Page, ...] = ()

    def applies(self, media_type: str, plan: str) -> bool:
        return media_type in self.media_types and plan in self.plans
