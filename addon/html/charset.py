"""Which charset an HTML body is in, and the round trip to UTF-8 for the engine.

The charset comes from Content-Type, else a byte-order mark, else a <meta> in the first
1024 bytes (the HTML standard's prescan, simplified), else UTF-8 (modelled: lol-html's own
default). A body that is not valid in its charset, or would not come back byte for byte,
is not rewritten.
"""

from __future__ import annotations

import codecs
import re

PRESCAN = 1024
_META = re.compile(
    rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))  # fmt: skip


class CharsetError(ValueError):
    pass


_CT_CHARSET = re.compile(rb"""charset\s*=\s*["']?([^"';,\s]+)""", re.IGNORECASE)


def from_content_type(value: bytes | None) -> str | None:
    """The charset parameter of a Content-Type value, if any."""
    m = _CT_CHARSET.search(value or b"")
    return m.group(1).decode("latin-1") if m else None


def detect(content_type_charset: str | None, body: bytes) -> str:
    """The Python codec the body is in."""
    if content_type_charset:
        return _codec(content_type_charset, "the Content-Type header")
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    m = _META.search(body[:PRESCAN])
    if m:
        return _codec(m.group(1).decode("ascii"), "the document's <meta>")
    return "utf-8"


def _codec(label: str, where: str) -> str:
    label = label.strip().strip("\"'").lower()
    try:
        return codecs.lookup(label).name
    except LookupError:
        raise CharsetError(f"unknown charset {label!r} in {where}") from None


def to_utf8(body: bytes, codec: str) -> bytes:
    """The body as UTF-8; CharsetError unless it decodes and encodes back to itself."""
    if codec == "utf-8":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharsetError(f"not valid UTF-8 at byte {e.start}") from None
        return body
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as e:
        raise CharsetError(f"not valid {codec} at byte {e.start}") from None
    if text.encode(codec) != body:
        raise CharsetError(f"{codec} does not round-trip byte for byte")
    return text.encode("utf-8")


def from_utf8(body: bytes, codec: str) -> bytes:
    if codec == "utf-8":
        return body
    try:
        return body.decode("utf-8").encode(codec, "xmlcharrefreplace")
    except UnicodeError as e:
        raise CharsetError(f"the rewritten page cannot be written back as {codec}: {e}") from None
