"""Types and the field schema of the Rules language (facts 7.2, 6.2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Type:
    kind: str  # "bytes" | "int" | "bool" | "ip" | "array" | "map"
    inner: Type | None = None

    def __str__(self) -> str:
        names = {"bytes": "String", "int": "Integer", "bool": "Boolean", "ip": "IP address"}
        if self.kind == "array":
            return f"Array<{self.inner}>"
        if self.kind == "map":
            return f"Map<{self.inner}>"
        return names[self.kind]


BYTES = Type("bytes")
INT = Type("int")
BOOL = Type("bool")
IP = Type("ip")


def array(t: Type) -> Type:
    return Type("array", t)


def map_of(t: Type) -> Type:
    return Type("map", t)


class Phase(Enum):
    """Where a rule runs; response phases also see `http.response.*` fields."""

    REQUEST = "request"
    RESPONSE = "response"


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    phase: Phase = Phase.REQUEST


_FIELDS = [
    Field("http.host", BYTES),
    Field("http.request.method", BYTES),
    Field("http.request.version", BYTES),
    Field("http.request.full_uri", BYTES),
    Field("http.request.uri", BYTES),
    Field("http.request.uri.path", BYTES),
    Field("http.request.uri.path.extension", BYTES),
    Field("http.request.uri.query", BYTES),
    Field("raw.http.request.full_uri", BYTES),
    Field("raw.http.request.uri", BYTES),
    Field("raw.http.request.uri.path", BYTES),
    Field("raw.http.request.uri.path.extension", BYTES),
    Field("raw.http.request.uri.query", BYTES),
    Field("http.request.headers", map_of(array(BYTES))),
    Field("http.request.headers.names", array(BYTES)),
    Field("http.request.headers.values", array(BYTES)),
    Field("http.request.headers.truncated", BOOL),
    Field("http.cookie", BYTES),
    Field("http.request.cookies", map_of(array(BYTES))),
    Field("http.user_agent", BYTES),
    Field("http.referer", BYTES),
    Field("http.x_forwarded_for", BYTES),
    Field("ip.src", IP),
    Field("ssl", BOOL),
    Field("http.response.code", INT, Phase.RESPONSE),
    Field("http.response.headers", map_of(array(BYTES)), Phase.RESPONSE),
    Field("http.response.headers.names", array(BYTES), Phase.RESPONSE),
    Field("http.response.headers.values", array(BYTES), Phase.RESPONSE),
    Field("http.response.headers.truncated", BOOL, Phase.RESPONSE),
    Field("http.response.content_type.media_type", BYTES, Phase.RESPONSE),
]

FIELDS: dict[str, Field] = {f.name: f for f in _FIELDS}

# Real Cloudflare fields this emulator has no data for (geo, bot scores, bodies...).
# They parse, so a rule pasted from the dashboard gets "not emulated", not "unknown".
CLOUDFLARE_ONLY_FIELD_PREFIXES = (
    "cf.",
    "ip.src.",
    "ip.geoip.",
    "http.request.body.",
    "http.request.timestamp.",
    "http.request.accepted_languages",
    "http.request.jwt.",
    "http.response.1xxx_code",
    "raw.http.request.headers",
    "raw.http.response.headers",
    "http.request.uri.args",
    "raw.http.request.uri.args",
)
