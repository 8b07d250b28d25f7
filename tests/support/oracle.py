"""An independent oracle for what a visitor must get, for the tests.

Written from the RFCs and Cloudflare's documented tables, sharing no code with the addon:
its own Accept-Encoding reading, its own decoders (the standard library, brotli and zstd
directly), its own entity-tag grammar and its own model of the documented compression
rules. A test that compares the addon with the addon's own helpers cannot catch a bug in
them; these can.
"""

from __future__ import annotations

import re
import sys
import zlib

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
ENTITY_TAG = re.compile(rb'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')


class Undecodable(Exception):
    pass


def _qvalues(accept_encoding: bytes | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (accept_encoding or b"").decode("latin-1").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if not name:
            continue
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                q = q if 0 <= q <= 1 else 0.0
        out.setdefault(name.lower(), q)
    return out


def accepts(accept_encoding: bytes | None, coding: str) -> bool:
    """RFC 9110 12.5.3, as Cloudflare reads it: no header means no coding (curl gets
    identity); identity is always sent when nothing else is acceptable."""
    coding = coding.lower()
    if coding == "identity":
        return True
    q = _qvalues(accept_encoding)
    if coding in q:
        return q[coding] > 0
    return q.get("*", 0) > 0


def codings_of(headers: list[tuple[bytes, bytes]]) -> list[str]:
    out = []
    for k, v in headers:
        if k.lower() == b"content-encoding":
            out += [t.strip().lower() for t in v.decode("latin-1").split(",")
                    if t.strip() and t.strip().lower() != "identity"]
    return out


def _gunzip(data: bytes) -> bytes:
    out = []
    while data:
        d = zlib.decompressobj(31)
        out.append(d.decompress(data))
        if not d.eof:
            raise Undecodable("truncated gzip")
        data = d.unused_data
    return b"".join(out)


def _decode_one(data: bytes, coding: str, limit: int) -> bytes:
    try:
        if coding == "gzip":
            out = _gunzip(data)
        elif coding == "br":
            out = brotli.decompress(data)
        elif coding == "zstd":
            out = zstd.decompress(data)
        elif coding == "deflate":
            try:
                out = zlib.decompress(data)
            except zlib.error:
                out = zlib.decompress(data, -15)
        else:
            raise Undecodable(f"unknown coding {coding}")
    except (zlib.error, brotli.error, zstd.ZstdError, EOFError) as e:
        raise Undecodable(str(e)) from e
    if len(out) > limit:
        raise Undecodable("over the limit")
    return out


def decode(data: bytes, codings: list[str], limit: int = 1 << 30) -> bytes:
    """The body with every coding undone, last applied first; an empty body is empty,
    whatever its label (and so is a layer that decodes to nothing)."""
    for coding in reversed(codings):
        if not data:
            return b""
        data = _decode_one(data, coding, limit)
    return data


def changed_etag(values: list[bytes]) -> bytes | None:
    """What a changed body does to the origin's ETag (Cloudflare's ETag page): a strong
    tag gets W/, a weak one stays, anything not an entity tag (or two of them) goes."""
    if len(values) != 1 or not ENTITY_TAG.fullmatch(values[0]):
        return None
    value = values[0]
    return value if value.startswith(b"W/") else b"W/" + value


# ---- Cloudflare's documented compression, written out --------------------------------------

# developers.cloudflare.com/speed/optimization/content/compression/ (the 46 types)
COMPRESSIBLE = {
    "text/html", "text/richtext", "text/plain", "text/css", "text/x-script",
    "text/x-component", "text/x-java-source", "text/x-markdown", "application/javascript",
    "application/x-javascript", "text/javascript", "text/js", "image/x-icon",
    "image/vnd.microsoft.icon", "application/x-perl", "application/x-httpd-cgi", "text/xml",
    "application/xml", "application/rss+xml", "application/vnd.api+json",
    "application/x-protobuf", "application/json", "multipart/bag", "multipart/mixed",
    "application/xhtml+xml", "font/ttf", "font/otf", "font/x-woff", "image/svg+xml",
    "application/vnd.ms-fontobject", "application/ttf", "application/x-ttf",
    "application/otf", "application/x-otf", "application/truetype", "application/opentype",
    "application/x-opentype", "application/font-woff", "application/eot", "application/font",
    "application/font-sfnt", "application/wasm", "application/javascript-binast",
    "application/manifest+json", "application/ld+json", "application/graphql+json",
    "application/geo+json",
}
MINIMUM = {"gzip": 48, "br": 50, "zstd": 50}  # bytes of the uncompressed body
PLAN_ORDER = {"free": ("zstd", "br", "gzip"), "pro": ("br", "gzip"),
              "business": ("br", "gzip"), "enterprise": ("gzip",)}


def edge_coding(plan: str, accept_encoding: bytes | None, media_type: str, status: int,
                size: int) -> str | None:
    """The coding Cloudflare compresses with by default (no compression rule), or None."""
    if status not in (200, 403, 404) or media_type not in COMPRESSIBLE:
        return None
    for coding in PLAN_ORDER[plan]:
        if accepts(accept_encoding, coding) and size >= MINIMUM[coding]:
            return coding
    return None


def expected(plan: str, rse: bool, accept_encoding: bytes | None, origin_coding: str,
             media_type: str, status: int, size: int, no_transform: bool
             ) -> tuple[str, bool]:
    """(coding the visitor gets, whether the body bytes change) by Cloudflare's ETag tables
    and compression rules (the ETag page, both tables; the compression page), for a zone
    with Brotli on, no HTML feature and no rule."""
    if no_transform or status in (204, 206, 304) or status < 200:
        return origin_coding, False
    accepted = origin_coding == "identity" or accepts(accept_encoding, origin_coding)
    if rse:  # Respect Strong ETags: never compress, never re-encode, decode if refused
        return (origin_coding, False) if accepted else ("identity", True)
    wanted = edge_coding(plan, accept_encoding, media_type, status, size)
    if wanted is not None:
        return wanted, wanted != origin_coding
    return (origin_coding, False) if accepted else ("identity", True)
