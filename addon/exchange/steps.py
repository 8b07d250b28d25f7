"""What an exchange tells its driver it needs next (machine.py), and what all exchanges
share (EdgeContext)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from addon.cache import OriginRequest
from addon.cache import Store
from addon.compression.stream import BodyStream
from addon.config.zone import Zone
from addon.diagnosis import OriginDiagnosis
from addon.exchange import egress
from addon.exchange.answers import Answer
from addon.exchange.content import SizeProbes
from addon.exchange.record import Record
from addon.http.conditional import CONDITIONAL_HEADERS
from addon.http.messages import Response

# What the edge asks when an answer cannot be used: the whole representation, unconditional
FULL_REPRESENTATION = OriginRequest("GET", CONDITIONAL_HEADERS)


@dataclass
class EdgeContext:
    """What every exchange shares: the zone, the cache, the diagnosis, the limits."""

    zone: Zone
    store: Store | None = None  # None: the cache is off, every request is DYNAMIC
    diagnosis: OriginDiagnosis | None = None
    limit: int = 1 << 30  # the largest decoded body re-coded (cf_decode_limit)
    trace: bool = False  # cf_trace
    probes: SizeProbes | None = None  # size probes remembered across exchanges


@dataclass(frozen=True)
class AskOrigin:
    request: OriginRequest  # the method, and the headers the edge changes
    fill: str | None = None  # the cache key this request fills (others wait for it)
    again: bool = False  # a second request: the first answer could not be used


@dataclass(frozen=True)
class FromCache:
    response: Response  # the stored object
    background: OriginRequest | None = None  # UPDATING: revalidate it meanwhile


@dataclass(frozen=True)
class NeedRecode:
    raw: bytes  # the body to re-code
    html: bool  # rewritten by HTML features (slower per byte than codecs)


@dataclass(frozen=True)
class Stream:
    final: egress.Final  # the headers that go out now; the body follows through `body`
    body: BodyStream


class Base(Enum):
    """What the visitor's response is made from, for the driver that holds responses."""

    FIRST = "the response the exchange got first (the origin's, or the stored object served "\
            "at once)"
    AGAIN = "the origin's second answer"
    STORED = "the stored object, after the origin was asked (REVALIDATED, STALE)"


@dataclass(frozen=True)
class Delivered:
    final: egress.Final
    record: Record
    base: Base = Base.FIRST


Step = AskOrigin | FromCache | NeedRecode | Stream | Delivered | Answer
