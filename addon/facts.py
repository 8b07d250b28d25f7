"""What the edge knows about one exchange, free of any proxy library.

The mitmproxy adapter builds these from a flow; tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class RequestFacts:
    """The request as the visitor sent it (before the edge changed anything)."""

    method: str = "GET"
    scheme: str = "http"
    host: str = "example.com"  # the Host the visitor asked for
    target: str = "/"  # path and query exactly as on the request line
    http_version: str = "HTTP/1.1"
    headers: Headers = ()
    client_ip: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """The URL the visitor asked for."""
        return f"{self.scheme}://{self.host}{self.target}"


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class ResponseFacts:
    """The origin's response as received by the edge."""

    status: int = 200
    headers: Headers = ()
    body: bytes | None = b""  # raw bytes as on the wire; None when not buffered
    streamed: bool = False  # sent on by mitmproxy before the edge could act
    # the body will pass through the edge as it arrives (decided on the headers)
    streaming: bool = False
    size_hint: int | None = None  # the body is known to be at least this long


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
