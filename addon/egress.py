"""The last phase before the visitor: one invariant on every path.

Whatever produced the response (the origin, a stored object, the edge's 304, a HEAD, a
range, an error page), what leaves for the visitor

- carries no Content-Encoding the visitor did not accept (RFC 9110 12.5.3);
- is framed for the visitor's protocol (RFC 9112 6, RFC 9113 8.2.2): Content-Length or
  chunked for HTTP/1.1, Content-Length or the connection's close for HTTP/1.0 (which has
  no chunked coding), never a connection-specific header on HTTP/2 and HTTP/3, never both
  Content-Length and Transfer-Encoding.

The phases before already choose right; this one checks and repairs, so a path they miss
still cannot hand a visitor bytes it cannot read. A repair is named in the log. Where no
acceptable representation can be made here (a range of an encoding, a coding the edge
cannot decode, `no-transform`) the result says so: `need_full` asks the caller for the
whole representation (facts 1.8.1: the full decoded 200), `unresolved` is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from addon import codings
from addon.accept_encoding import DECODABLE
from addon.accept_encoding import IDENTITY
from addon.accept_encoding import parse_accept_encoding
from addon.etag import parse_etag
from addon.etag import transform
from addon.facts import Headers
from addon.facts import edit_headers
from addon.facts import header
from addon.facts import header_values

# RFC 9113 8.2.2 (HTTP/3 the same, RFC 9114 4.2): connection-specific fields
CONNECTION_HEADERS = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                                b"transfer-encoding", b"upgrade"})  # fmt: skip


@dataclass(frozen=True)
class Visitor:
    """What the last phase needs to know of the visitor's request."""

    method: str
    http_version: str  # as mitmproxy spells it: HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3
    accept_encoding: str | None


@dataclass(frozen=True)
class Final:
    """The response as it leaves for the visitor."""

    status: int
    headers: Headers
    body: bytes | None  # None: not buffered here (streamed); the headers still apply
    repairs: tuple[str, ...] = ()  # what this phase had to change, for the log
    unresolved: str = ""  # why a coding the visitor did not accept went out anyway
    need_full: bool = False  # a range of an encoding: the caller fetches the whole

    @property
    def content_encoding(self) -> str:
        return coding_of(self.headers)

    @property
    def etag(self) -> bytes | None:
        return header(self.headers, b"etag")


def coding_of(headers: Headers) -> str:
    """The Content-Encoding as one token list ("identity" when there is none)."""
    tokens = _codings(headers)
    return ", ".join(tokens) if tokens else IDENTITY


def _codings(headers: Headers) -> list[str]:
    out = []
    for value in header_values(headers, b"content-encoding"):
        for token in value.decode("latin-1").split(","):
            token = token.strip().lower()
            if token and token != IDENTITY:
                out.append(token)
    return out


def unaccepted(headers: Headers, accept_encoding: str | None) -> list[str]:
    """The codings of the response the visitor did not accept."""
    visitor = parse_accept_encoding(accept_encoding)
    return [c for c in _codings(headers) if not visitor.accepts(c)]


def _no_body(status: int, method: str) -> bool:
    return method.upper() == "HEAD" or status < 200 or status in (204, 304)


def enforce(visitor: Visitor, status: int, headers: Headers, body: bytes | None, *,
            may_transform: bool = True, limit: int = 1 << 30) -> Final:
    """Check the invariant on what is about to go out, and repair what can be repaired.

    `may_transform` is False when the origin forbade changing the body (no-transform,
    facts 0.6, 1.4.3); `limit` bounds a repair's decoding like cf_decode_limit does.
    """
    repairs: list[str] = []
    unresolved = ""
    need_full = False
    refused = unaccepted(headers, visitor.accept_encoding)
    if refused:
        shown = ", ".join(refused)
        no_body = _no_body(status, visitor.method)
        partial = status == 206 or header(headers, b"content-range") is not None
        if status == 304 or (status < 200 or status == 204):
            headers = edit_headers(headers, [(b"content-encoding", None)])
            repairs.append(f"Content-Encoding {shown} removed from a {status} the visitor, "
                           "which does not accept it, could not have stored")
        elif not may_transform:
            unresolved = (f"the visitor does not accept {shown}, but the origin sent "
                          "no-transform, so the edge sends it as it is (facts 1.4.3)")
        elif partial and not no_body:
            need_full = True
            unresolved = (f"a range of the {shown} encoding, which the visitor does not "
                          "accept, cannot be decoded on its own")
        elif no_body:  # HEAD: the headers the decoded GET would have (facts 1.7.4)
            headers = _decoded_headers(headers, length=None)
            repairs.append(f"HEAD: Content-Encoding {shown} removed, as the GET would be "
                           "decoded for this visitor (facts 1.7.4)")
        elif body is None:
            unresolved = (f"the visitor does not accept {shown}, and the body was streamed "
                          "past the edge undecoded")
        else:
            try:
                decoded = _decode(body, _codings(headers), limit)
            except (codings.DecodeError, codings.TooLarge) as e:
                unresolved = (f"the visitor does not accept {shown}, and the edge could not "
                              f"decode it ({e})")
            else:
                headers = _decoded_headers(headers, length=len(decoded))
                body = decoded
                repairs.append(f"decoded from {shown}, which the visitor does not accept "
                               "(never a coding the visitor cannot read)")
    headers, framing = frame(visitor, status, headers, body)
    repairs += framing
    return Final(status, headers, body, tuple(repairs), unresolved, need_full)


def observe(visitor: Visitor, status: int, headers: Headers) -> Final:
    """A response whose headers already left (mitmproxy streamed it): nothing can change;
    the result only says whether the invariant held."""
    refused = unaccepted(headers, visitor.accept_encoding)
    why = (f"the visitor does not accept {', '.join(refused)}, and the response was streamed "
           "before the edge could act" if refused else "")
    return Final(status, headers, None, (), why)


def _decode(body: bytes, layers: list[str], limit: int) -> bytes:
    for coding in reversed(layers):  # the last coding applied is undone first
        if coding not in DECODABLE:
            raise codings.DecodeError(f"unknown coding {coding!r}")
        body = codings.transcode(body, coding, IDENTITY, limit)
    return body


def _decoded_headers(headers: Headers, length: int | None) -> Headers:
    """The headers once the body is decoded: no Content-Encoding, the ETag of a changed
    body (facts 2.3 step 4), Vary: Accept-Encoding, the new length (None: unknown)."""
    etag = parse_etag(header_values(headers, b"etag"))
    _, new_etag = transform(etag)
    vary = header(headers, b"vary") or b""
    names = [n.strip().lower() for n in vary.split(b",")]
    edits: list[tuple[bytes, bytes | None]] = [(b"content-encoding", None)]
    if etag is not None:
        edits.append((b"etag", new_etag))
    if b"accept-encoding" not in names and b"*" not in names:
        edits.append((b"vary", vary + b", Accept-Encoding" if vary.strip()
                      else b"Accept-Encoding"))
    edits.append((b"content-length", str(length).encode() if length is not None else None))
    return edit_headers(headers, edits)


def frame(visitor: Visitor, status: int, headers: Headers, body: bytes | None
          ) -> tuple[Headers, list[str]]:
    """The framing headers for the visitor's protocol; what was changed, for the log."""
    version = visitor.http_version.upper()
    names = {k.lower() for k, _ in headers}
    chunked = any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower()
                  for k, v in headers)
    no_body = _no_body(status, visitor.method)
    edits: list[tuple[bytes, bytes | None]] = []
    done: list[str] = []
    if version.startswith(("HTTP/2", "HTTP/3")):
        gone = sorted(n.decode() for n in names & CONNECTION_HEADERS)
        if gone:
            edits += [(n.encode(), None) for n in gone]
            done.append(f"{', '.join(gone)} removed: connection-specific, not allowed on "
                        f"{visitor.http_version} (RFC 9113 8.2.2)")
        chunked = False
    elif version == "HTTP/1.0" and b"transfer-encoding" in names:
        edits.append((b"transfer-encoding", None))
        chunked = False
        done.append("Transfer-Encoding removed: HTTP/1.0 has no chunked coding (RFC 9112 "
                    "6.1), so the body is " + ("delimited by Content-Length"
                                               if body is not None and not no_body
                                               else "ended by closing the connection"))
        if body is None and not no_body:
            edits.append((b"content-length", None))  # the stream's length is not known
    if no_body or body is None:
        return (edit_headers(headers, edits) if edits else headers), done
    length = str(len(body)).encode()
    if chunked:
        if b"content-length" in names:
            edits.append((b"content-length", None))
            done.append("Content-Length removed beside Transfer-Encoding (RFC 9112 6.3)")
    elif header_values(headers, b"content-length") != [length]:
        edits.append((b"content-length", length))
        if b"content-length" in names:
            done.append("Content-Length set to the length of the body that went out")
    return (edit_headers(headers, edits) if edits else headers), done
