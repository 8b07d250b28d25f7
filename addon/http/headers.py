"""Header fields as they are on the wire: raw (name, value) byte pairs in wire order, read
and edited without changing a byte of what is not edited.
"""

from __future__ import annotations

Headers = tuple[tuple[bytes, bytes], ...]  # raw (name, value) pairs in wire order


def header_values(headers: Headers, name: bytes) -> list[bytes]:
    """All values of header `name` (case-insensitive), in order."""
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def header(headers: Headers, name: bytes) -> bytes | None:
    """The header's values joined by ", " (RFC 9110 list semantics), or None."""
    values = header_values(headers, name)
    return b", ".join(values) if values else None


def header_index(headers: Headers) -> dict[bytes, list[bytes]]:
    """Lowercased name -> values in order: one pass when many headers are looked up."""
    index: dict[bytes, list[bytes]] = {}
    for k, v in headers:
        index.setdefault(k.lower(), []).append(v)
    return index


def wire_text(value: bytes | str) -> str:
    """Bytes from the wire as log text: UTF-8 where it is valid, `\\xHH` for any other byte.

    A str that came from bytes through surrogateescape (mitmproxy's request target, method
    and host) is turned back into those bytes first, so nothing JSON cannot carry remains.
    """
    if isinstance(value, str):
        if value.isascii():
            return value
        value = value.encode("utf-8", "surrogateescape")
    return value.decode("utf-8", "backslashreplace")


def edit_headers(fields: Headers, edits: list[tuple[bytes, bytes | None]]) -> Headers:
    """`fields` with each edit applied in order, in one pass: a value replaces the first
    field of that name in place (later ones go) or is appended; None removes the name.
    Everything else keeps its bytes and position, as mitmproxy's own set/pop would."""
    final: dict[bytes, tuple[bytes, bytes | None]] = {}
    for name, value in edits:
        final[name.lower()] = (name, value)
    out: list[tuple[bytes, bytes]] = []
    done: set[bytes] = set()
    for k, v in fields:
        low = k.lower()
        edit = final.get(low)
        if edit is None:
            out.append((k, v))
        elif edit[1] is not None and low not in done:
            out.append((k, edit[1]))
            done.add(low)
    out += [(name, value) for low, (name, value) in final.items()
            if value is not None and low not in done]
    return tuple(out)
