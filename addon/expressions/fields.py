"""Field values for one request (and response), computed on first use.

Values are bytes, as in Cloudflare's engine; maps are keyed by lowercased name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from addon.expressions.schema import BOOL
from addon.expressions.schema import BYTES
from addon.expressions.schema import INT
from addon.expressions.schema import IP
from addon.expressions.schema import Phase
from addon.expressions.schema import Type
from addon.expressions.schema import array
from addon.expressions.schema import map_of
from addon.http.fields import cookies
from addon.http.fields import extension
from addon.http.fields import media_type
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response

_UNRESERVED = re.compile(rb"%(2[DdEe]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])")
_PCT = re.compile(rb"%[0-9a-fA-F]{2}")


class FieldValues(dict):
    """`env[name]` for the compiled expressions; None means a missing value."""

    def __init__(self, request: Request, response: Response | None = None):
        super().__init__()
        self.request = request
        self.response = response

    def __missing__(self, name: str) -> Any:
        spec = FIELDS.get(name)
        value = spec.get(self) if spec is not None else _MEMO[name](self)
        self[name] = value
        return value


def normalize_path(path: bytes) -> bytes:
    """Cloudflare-style URL normalization (modelled on RFC 3986 section 6).

    Backslashes become slashes, repeated slashes merge, percent-encoded unreserved
    characters are decoded, other escapes are upper-cased, dot segments removed.
    """
    path = path.replace(b"\\", b"/")
    path = re.sub(rb"/{2,}", b"/", path)
    path = _UNRESERVED.sub(lambda m: bytes([int(m.group(1), 16)]), path)
    path = _PCT.sub(lambda m: m.group(0).upper(), path)
    out: list[bytes] = []
    for segment in path.split(b"/")[1:]:
        if segment == b"..":
            if out:
                out.pop()
        elif segment != b".":
            out.append(segment)
    trailing = path.endswith((b"/.", b"/..")) and out
    return b"/" + b"/".join(out) + (b"/" if trailing else b"")


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    path, _, query = target.partition(b"?")
    return (path or b"/"), query


def _headers_map(headers) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for k, v in headers:
        out.setdefault(k.decode("latin-1").lower(), []).append(v)
    return out


def _cookies(env: FieldValues) -> dict[str, list[bytes]]:
    return cookies(header(env.request.headers, b"cookie"))


def _client_ip(env: FieldValues) -> Any:
    try:
        ip = ipaddress.ip_address(env.request.client_ip)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def _version(env: FieldValues) -> bytes:
    v = env.request.http_version.upper()
    return {"HTTP/2.0": b"HTTP/2", "HTTP/3.0": b"HTTP/3"}.get(v, v.encode())


def _req_header(name: bytes) -> Callable[[FieldValues], bytes]:
    return lambda env: header(env.request.headers, name) or b""


def _full_uri(env: FieldValues, uri: bytes) -> bytes:
    return f"{env.request.scheme}://{env.request.host}".encode() + uri


def _resp_headers(env: FieldValues) -> dict[str, list[bytes]]:
    return _headers_map(env.response.headers if env.response else ())


# the raw request target, read once for the fields derived from it
_RAW_TARGET = "_raw_target"
_MEMO: dict[str, Callable[[FieldValues], Any]] = {
    _RAW_TARGET: lambda env: env.request.target.encode("utf-8", "surrogateescape"),
}


@dataclass(frozen=True)
class Field:
    """One field of the Rules language: its name, its type, how its value is read from the
    request (and response), and the phases that may use it."""

    name: str
    type: Type
    get: Callable[[FieldValues], Any]
    phase: Phase = Phase.REQUEST


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("http.host", BYTES,
          lambda env: env.request.host.encode("utf-8", "surrogateescape")),
    Field("http.request.method", BYTES,
          lambda env: env.request.method.upper().encode()),
    Field("http.request.version", BYTES,
          _version),
    Field("http.request.full_uri", BYTES,
          lambda env: _full_uri(env, env["http.request.uri"])),
    Field("http.request.uri", BYTES,
          lambda env: env["http.request.uri.path"] + (
              b"?" + env["http.request.uri.query"] if b"?" in env[_RAW_TARGET] else b"")),
    Field("http.request.uri.path", BYTES,
          lambda env: normalize_path(env["raw.http.request.uri.path"])),
    Field("http.request.uri.path.extension", BYTES,
          lambda env: extension(env["http.request.uri.path"])),
    Field("http.request.uri.query", BYTES,
          lambda env: env["raw.http.request.uri.query"]),
    Field("raw.http.request.full_uri", BYTES,
          lambda env: _full_uri(env, env[_RAW_TARGET])),
    Field("raw.http.request.uri", BYTES,
          lambda env: env[_RAW_TARGET]),
    Field("raw.http.request.uri.path", BYTES,
          lambda env: _split_target(env[_RAW_TARGET])[0]),
    Field("raw.http.request.uri.path.extension", BYTES,
          lambda env: extension(env["raw.http.request.uri.path"])),
    Field("raw.http.request.uri.query", BYTES,
          lambda env: _split_target(env[_RAW_TARGET])[1]),
    Field("http.request.headers", map_of(array(BYTES)),
          lambda env: _headers_map(env.request.headers)),
    Field("http.request.headers.names", array(BYTES),
          lambda env: [k for k, _ in env.request.headers]),
    Field("http.request.headers.values", array(BYTES),
          lambda env: [v for _, v in env.request.headers]),
    Field("http.request.headers.truncated", BOOL,
          lambda env: False),
    Field("http.cookie", BYTES,
          _req_header(b"cookie")),
    Field("http.request.cookies", map_of(array(BYTES)),
          _cookies),
    Field("http.user_agent", BYTES,
          _req_header(b"user-agent")),
    Field("http.referer", BYTES,
          _req_header(b"referer")),
    Field("http.x_forwarded_for", BYTES,
          _req_header(b"x-forwarded-for")),
    Field("ip.src", IP,
          _client_ip),
    Field("ssl", BOOL,
          lambda env: env.request.scheme == "https"),
    Field("http.response.code", INT,
          lambda env: env.response.status if env.response else None, Phase.RESPONSE),
    Field("http.response.headers", map_of(array(BYTES)), _resp_headers, Phase.RESPONSE),
    Field("http.response.headers.names", array(BYTES),
          lambda env: [k for k, _ in env.response.headers] if env.response else None,
          Phase.RESPONSE),
    Field("http.response.headers.values", array(BYTES),
          lambda env: [v for _, v in env.response.headers] if env.response else None,
          Phase.RESPONSE),
    Field("http.response.headers.truncated", BOOL, lambda env: False, Phase.RESPONSE),
    Field("http.response.content_type.media_type", BYTES,
          lambda env: media_type(header(env.response.headers, b"content-type")
                                 if env.response else None), Phase.RESPONSE),
)}  # fmt: skip

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
