"""What the visitor gets: the origin's (or the stored) status, header fields and raw body
with the phases' edits applied in one pass, then the last phase's invariant (egress).
Everything the phases do not mean to change keeps its bytes.
"""

from __future__ import annotations

from addon.exchange import egress
from addon.exchange.content import Content
from addon.exchange.headers import EdgeHeaders
from addon.exchange.recode import Body
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.messages import Response
from addon.vocabulary import NotModifiedBy

# RFC 9110 15.4.5: what a 304 carries, plus the edge's own headers (facts 2.4.5)
NOT_MODIFIED_HEADERS = frozenset({b"etag", b"cache-control", b"expires", b"vary",
                                  b"last-modified", b"date", b"content-location", b"age",
                                  b"cf-cache-status", b"cf-ray", b"server"})


def visitor_response(source: Response, content: Content, body: Body, headers: EdgeHeaders,
                     visitor: egress.Visitor, limit: int = 1 << 30, streaming: bool = False,
                     extra: tuple[tuple[bytes, bytes], ...] = ()) -> egress.Final:
    """`extra`: headers added last (cf_trace's)."""
    assert content.recode is None or streaming
    status, fields, data = source.status, source.headers, source.body
    edits: list[tuple[bytes, bytes | None]] = []
    if content.decision.changed:
        if body.data is not None:
            data = body.data
        edits += content.edits.items()  # bytes in, bytes out: nothing re-encoded
        if content.drop_content_length:
            # Cloudflare drops Content-Length of what it re-codes (facts 0.7, 1.6.1); the
            # last phase frames it for the visitor's protocol
            edits.append((b"content-length", None))
            if (body.data is not None or streaming) and not _chunked(fields):
                edits.append((b"transfer-encoding", b"chunked"))
    edits += headers.edits
    edits += extra
    if headers.not_modified is NotModifiedBy.EDGE:
        status, data = 304, b""
    elif headers.range_status is not None and headers.range_body is not None:
        status, data = headers.range_status, headers.range_body
        edits += [(b"transfer-encoding", None),
                  (b"content-length", str(len(headers.range_body)).encode())]
    out = edit_headers(fields, edits) if edits else fields
    if status == 304:
        out = tuple((k, v) for k, v in out if k.lower() in NOT_MODIFIED_HEADERS)
    if headers.head:  # HEAD: the GET's headers, Content-Length included, no body
        data = b""
        if _chunked(out):
            out = tuple((k, v) for k, v in out if k.lower() != b"content-length")
    inputs = content.inputs
    undecodable = body.undecodable or (
        f"it could not be decoded: {inputs.decode_error}" if inputs.decode_error else "")
    return egress.enforce(visitor, status, out, data, may_transform=not inputs.no_transform,
                          limit=limit, undecodable=undecodable)


def _chunked(fields: Headers) -> bool:
    return any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in fields)
