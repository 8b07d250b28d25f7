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
from functools import lru_cache

from addon.http import codings
from addon.http.accept_encoding import DECODABLE
from addon.http.accept_encoding import IDENTITY
from addon.http.accept_encoding import parse_accept_encoding
from addon.http.etag import parse_etag
from addon.http.etag import transform
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import header_values

# RFC 9113 8.2.2 (HTTP/3 the same, RFC 9114 4.2): connection-specific fields
CONNECTION_HEADERS = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                                b"transfer-encoding", b"upgrade"})  # fmt: skip


@dataclass(frozen=True)
class Visitor:
    """What the last phase needs to know of the visitor's request."""

    method: str
    http_version: str  # as mitmproxy spells it: HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3
    accept_encoding: str | None


@dataclass  # not frozen: made for every response, and frozen init is 3x slower
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
    return list(_tokens(header_values(headers, b"content-encoding")))


def unaccepted(headers: Headers, accept_encoding: str | None) -> tuple[str, ...]:
    """The codings of the response the visitor did not accept."""
    return _refused(tuple(_codings(headers)), accept_encoding)


@lru_cache(maxsize=1024)  # few distinct (Content-Encoding, Accept-Encoding) pairs in any run
def _refused_values(values: tuple[bytes, ...], accept_encoding: str | None) -> tuple[str, ...]:
    return _refused(_tokens(list(values)), accept_encoding)


@lru_cache(maxsize=1024)
def _refused(codings_: tuple[str, ...], accept_encoding: str | None) -> tuple[str, ...]:
    visitor = parse_accept_encoding(accept_encoding)
    return tuple(c for c in codings_ if not visitor.accepts(c))


def _no_body(status: int, method: str) -> bool:
    return method.upper() == "HEAD" or status < 200 or status in (204, 304)


def enforce(visitor: Visitor, status: int, headers: Headers, body: bytes | None, *,
            may_transform: bool = True, limit: int = 1 << 30, undecodable: str = "") -> Final:
    """Check the invariant on what is about to go out, and repair what can be repaired.

    `may_transform` is False when the origin forbade changing the body (no-transform,
    facts 0.6, 1.4.3); `limit` bounds a repair's decoding like cf_decode_limit does;
    `undecodable` says why an earlier phase already failed to decode this body (a bomb over
    the limit is not decoded a second time).
    """
    repairs: list[str] = []
    unresolved = ""
    need_full = False
    scan = _scan(headers)
    refused = _refused_values(tuple(scan.codings), visitor.accept_encoding) \
        if scan.codings else ()
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
        elif undecodable:
            unresolved = f"the visitor does not accept {shown}, and {undecodable}"
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
    headers, framing = frame(visitor, status, headers, body,
                             None if repairs else scan)  # a repair changed them: rescan
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


@dataclass(slots=True)
class _Scan:
    """What the last phase looks at in the headers, read in one pass (every response)."""

    codings: list[bytes]
    lengths: list[bytes]
    chunked: bool
    has_te: bool
    connection: list[bytes]  # connection-specific names present (lower case)


def _scan(headers: Headers) -> _Scan:
    codings_: list[bytes] = []
    lengths: list[bytes] = []
    connection: list[bytes] = []
    chunked = has_te = False
    for k, v in headers:
        low = k.lower()
        kind = _WATCHED.get(low)
        if kind is None:
            continue
        if kind == 1:
            codings_.append(v)
        elif kind == 2:
            lengths.append(v)
        else:
            connection.append(low)
            if kind == 3:
                has_te = True
                chunked = chunked or b"chunked" in v.lower()
    return _Scan(codings_, lengths, chunked, has_te, connection)


# the only names the scan stops at: 1 coding, 2 length, 3 transfer-encoding, 4 the rest of
# the connection-specific ones
_WATCHED = {b"content-encoding": 1, b"content-length": 2, b"transfer-encoding": 3,
            **{name: 4 for name in CONNECTION_HEADERS if name != b"transfer-encoding"}}


def _tokens(values: list[bytes]) -> tuple[str, ...]:
    out = []
    for value in values:
        for token in value.decode("latin-1").split(","):
            token = token.strip().lower()
            if token and token != IDENTITY:
                out.append(token)
    return tuple(out)


def frame(visitor: Visitor, status: int, headers: Headers, body: bytes | None,
          scan: _Scan | None = None) -> tuple[Headers, list[str]]:
    """The framing headers for the visitor's protocol; what was changed, for the log."""
    version = visitor.http_version.upper()
    scan = scan or _scan(headers)
    chunked, lengths = scan.chunked, scan.lengths
    no_body = _no_body(status, visitor.method)
    edits: list[tuple[bytes, bytes | None]] = []
    done: list[str] = []
    if version.startswith(("HTTP/2", "HTTP/3")):
        gone = sorted({n.decode() for n in scan.connection})
        if gone:
            edits += [(n.encode(), None) for n in gone]
            done.append(f"{', '.join(gone)} removed: connection-specific, not allowed on "
                        f"{visitor.http_version} (RFC 9113 8.2.2)")
        chunked = False
    elif version == "HTTP/1.0" and scan.has_te:
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
        if lengths:
            edits.append((b"content-length", None))
            done.append("Content-Length removed beside Transfer-Encoding (RFC 9112 6.3)")
    elif lengths != [length]:
        edits.append((b"content-length", length))
        if lengths:
            done.append("Content-Length set to the length of the body that went out")
    return (edit_headers(headers, edits) if edits else headers), done
