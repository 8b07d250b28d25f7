"""Content codings the edge produces and decodes: gzip, Brotli, Zstandard.

Levels are Cloudflare-like rather than mitmproxy's fastest ones: Brotli quality 4
(community measurement, facts 1.1.14), gzip level 6 and zstd level 3 (the libraries'
defaults; Cloudflare does not document its levels, so these are modelled).
"""

from __future__ import annotations

import sys
import zlib

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

GZIP_LEVEL = 6
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3


class DecodeError(ValueError):
    """The origin's body is not valid data for its Content-Encoding."""


def decode(body: bytes, coding: str) -> bytes:
    """Decode `body`; all gzip members are decoded, trailing garbage is an error."""
    try:
        if coding == "identity":
            return body
        if coding == "gzip":
            return _gunzip(body)
        if coding == "br":
            return brotli.decompress(body)
        if coding == "zstd":
            return zstd.decompress(body)
    except DecodeError:
        raise
    except Exception as e:  # each codec raises its own error type
        raise DecodeError(f"{coding} body could not be decoded: {e}") from e
    raise DecodeError(f"unknown coding {coding!r}")


def encode(body: bytes, coding: str) -> bytes:
    if coding == "identity":
        return body
    if coding == "gzip":
        c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip container
        return c.compress(body) + c.flush()
    if coding == "br":
        return brotli.compress(body, quality=BROTLI_QUALITY)
    if coding == "zstd":
        return zstd.compress(body, level=ZSTD_LEVEL)
    raise ValueError(f"unknown coding {coding!r}")


def _gunzip(body: bytes) -> bytes:
    out = []
    while body:
        d = zlib.decompressobj(31)
        out.append(d.decompress(body))
        if not d.eof:
            raise DecodeError("gzip body is truncated")
        body = d.unused_data
    return b"".join(out)
