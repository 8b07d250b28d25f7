"""One request and one response as the edge sees them, free of any proxy library.

The mitmproxy layer builds these from a flow; the explain command and the tests build them
directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from addon.http.headers import Headers
from addon.http.headers import header_index


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class Request:
    """The request as the visitor sent it (before the edge changed anything)."""

    method: str = "GET"
    scheme: str = "http"
    host: str = "example.com"  # the Host the visitor asked for
    target: str = "/"  # path and query exactly as on the request line
    http_version: str = "HTTP/1.1"
    headers: Headers = ()
    client_ip: str = "127.0.0.1"

    @cached_property
    def index(self) -> dict[bytes, list[bytes]]:
        """Lower-case header name -> values, made once: the fields are never changed (a
        changed request is a new one, dataclasses.replace). Read it, never modify it."""
        return header_index(self.headers)

    @property
    def url(self) -> str:
        """The URL the visitor asked for."""
        return f"{self.scheme}://{self.host}{self.target}"


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class Response:
    """The origin's response as received by the edge."""

    status: int = 200
    headers: Headers = ()
    body: bytes | None = b""  # raw bytes as on the wire; None when not buffered
    streamed: bool = False  # sent on by mitmproxy before the edge could act
    # the body will pass through the edge as it arrives (decided on the headers)
    streaming: bool = False
    size_hint: int | None = None  # the body is known to be at least this long

    @cached_property
    def index(self) -> dict[bytes, list[bytes]]:
        """Lower-case header name -> values, made once (see Request.index)."""
        return header_index(self.headers)
