"""Field values for one request (and response), computed on first use.

Values are bytes, as in Cloudflare's engine; maps are keyed by lowercased name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

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
        value = _GETTERS[name](self)
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


_GETTERS: dict[str, Callable[[FieldValues], Any]] = {
    "_raw_target": lambda env: env.request.target.encode("utf-8", "surrogateescape"),
    "raw.http.request.uri": lambda env: env["_raw_target"],
    "raw.http.request.uri.path": lambda env: _split_target(env["_raw_target"])[0],
    "raw.http.request.uri.query": lambda env: _split_target(env["_raw_target"])[1],
    "raw.http.request.uri.path.extension":
        lambda env: extension(env["raw.http.request.uri.path"]),
    "raw.http.request.full_uri": lambda env: _full_uri(env, env["_raw_target"]),
    "http.request.uri.path": lambda env: normalize_path(env["raw.http.request.uri.path"]),
    "http.request.uri.query": lambda env: env["raw.http.request.uri.query"],
    "http.request.uri": lambda env: env["http.request.uri.path"] + (
        b"?" + env["http.request.uri.query"] if b"?" in env["_raw_target"] else b""),
    "http.request.uri.path.extension": lambda env: extension(env["http.request.uri.path"]),
    "http.request.full_uri": lambda env: _full_uri(env, env["http.request.uri"]),
    # the bytes the visitor sent (a name that is not ASCII arrives as UTF-8 or punycode)
    "http.host": lambda env: env.request.host.encode("utf-8", "surrogateescape"),
    "http.request.method": lambda env: env.request.method.upper().encode(),
    "http.request.version": _version,
    "http.request.headers": lambda env: _headers_map(env.request.headers),
    "http.request.headers.names": lambda env: [k for k, _ in env.request.headers],
    "http.request.headers.values": lambda env: [v for _, v in env.request.headers],
    "http.request.headers.truncated": lambda env: False,
    "http.cookie": _req_header(b"cookie"),
    "http.request.cookies": _cookies,
    "http.user_agent": _req_header(b"user-agent"),
    "http.referer": _req_header(b"referer"),
    "http.x_forwarded_for": _req_header(b"x-forwarded-for"),
    "ip.src": _client_ip,
    "ssl": lambda env: env.request.scheme == "https",
    "http.response.code": lambda env: env.response.status if env.response else None,
    "http.response.headers": _resp_headers,
    "http.response.headers.names":
        lambda env: [k for k, _ in env.response.headers] if env.response else None,
    "http.response.headers.values":
        lambda env: [v for _, v in env.response.headers] if env.response else None,
    "http.response.headers.truncated": lambda env: False,
    "http.response.content_type.media_type": lambda env: media_type(
        header(env.response.headers, b"content-type") if env.response else None),
}  # fmt: skip
