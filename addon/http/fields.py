"""Small readings of request and response fields that several concerns share: the media
type of a Content-Type, the extension of a path, the cookies of a Cookie header.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes


def media_type(content_type: bytes | None) -> bytes:
    """`text/HTML; charset=utf-8` -> `text/html`."""
    if not content_type:
        return b""
    return content_type.split(b";", 1)[0].strip().lower()


def extension(path: bytes) -> bytes:
    """The text after the last dot of the path's last segment, ASCII-lowercased; empty for
    none or a leading dot only (`/.mp3`). A query, if any, is not part of it. This is
    Cloudflare's http.request.uri.path.extension, which also decides default caching
    (facts 6.2)."""
    segment = path.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
    stem, dot, ext = segment.rpartition(b".")
    return ext.lower() if dot and stem else b""


def cookies(value: bytes | None) -> dict[str, list[bytes]]:
    """The cookies of a Cookie header: name (percent-decoded) -> values in order. A pair
    without `=` or without a name is not a cookie."""
    out: dict[str, list[bytes]] = {}
    for part in (value or b"").split(b";"):
        name, eq, val = part.strip().partition(b"=")
        if eq and name:
            key = unquote_to_bytes(name).decode("utf-8", "surrogateescape")
            out.setdefault(key, []).append(val)
    return out
