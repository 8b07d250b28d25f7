"""The response-headers phase, once the body is final: cf-cache-status, Age, cf-ray and
server (facts 8.1 to 8.5), the Browser Cache TTL (6.10), the edge's own 304 (2.4.5), a
Range served from a stored object (1.8), HEAD (1.7.1), and cf_trace's header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from addon.cache import Served
from addon.config.parameters import BrowserTTL
from addon.exchange.content import Content
from addon.exchange.recode import Body
from addon.exchange.request import RequestState
from addon.http import ranges
from addon.http.accept_encoding import IDENTITY
from addon.http.cache_control import parse_cache_control
from addon.http.conditional import not_modified
from addon.http.headers import header
from addon.http.headers import wire_text
from addon.http.messages import Response
from addon.vocabulary import NotModifiedBy

# facts 8.5: consumed by the edge, never sent to visitors
NOT_FORWARDED = (b"cloudflare-cdn-cache-control", b"cache-tag", b"x-accel-buffering",
                 b"x-accel-charset", b"x-accel-limit-rate", b"x-accel-redirect")  # fmt: skip
TRACE_HEADER = b"x-cf-edge-trace"  # cf_trace: ours, so no cf- prefix that Cloudflare owns

Edits = tuple[tuple[bytes, bytes | None], ...]  # header -> value; None deletes it


@dataclass  # not frozen: made for every response, and frozen init is 3x slower
class EdgeHeaders:
    """What the response-headers phase decided."""

    edits: Edits = ()
    not_modified: NotModifiedBy | None = None  # who made the 304, if it is one
    head: bool = False  # the visitor asked HEAD: headers of the GET, no body
    range_status: int | None = None  # 206 or 416 served from a stored object (facts 1.8)
    range_body: bytes | None = None
    notes: tuple[str, ...] = ()


def headers_phase(state: RequestState, served: Served | None, content: Content, body: Body
                  ) -> EdgeHeaders:
    head = state.head
    if served is None:
        return EdgeHeaders(head=head, notes=_own_host_note(state, body))
    response = served.response
    edits: list[tuple[bytes, bytes | None]] = [
        (b"cf-cache-status", served.status.encode()),
        (b"server", b"cloudflare"),
        (b"cf-ray", state.ray.encode()),
    ]
    if served.age is not None:
        edits.append((b"age", str(served.age).encode()))
    if served.last_modified is not None:
        edits.append((b"last-modified", served.last_modified))
    present = response.index
    edits += [(name, None) for name in NOT_FORWARDED if name in present]
    edits += [(name, None) for name in served.removed]
    if state.cache.browser_ttl.mode == "override_origin":
        browser = browser_ttl(state.cache.browser_ttl, header(response.headers, b"cache-control"))
        if browser is not None:
            edits.append((b"cache-control", browser))
    out = EdgeHeaders(head=head)
    if response.status == 304:
        out.not_modified = NotModifiedBy.ORIGIN
    elif served.stored and response.status == 200:
        last_modified = served.last_modified or header(response.headers, b"last-modified")
        visitor = state.request.headers
        if not_modified(visitor, content.decision.etag_out, last_modified):
            out.not_modified = NotModifiedBy.EDGE  # conditionals before Range (facts 1.8.7)
        elif (wanted := header(visitor, b"range")) is not None:
            edits += _byte_range(out, content, body, response, wanted,
                                 header(visitor, b"if-range"), last_modified)
    out.edits = tuple(edits)
    out.notes += _own_host_note(state, body)
    return out


def _own_host_note(state: RequestState, body: Body) -> tuple[str, ...]:
    upgraded = body.features.get("automatic_https_rewrites", {}).get("own_host", 0)
    if not upgraded or state.request.scheme != "http":
        return ()
    return (f"Automatic HTTPS Rewrites turned {upgraded} link(s) to this very host into "
            "https:// while this page came over plain HTTP: the browser then asks the proxy "
            "over HTTPS, which works once it trusts mitmproxy's CA (docs/workflows.md, "
            "\"HTTPS in the browser\"), or browse the site over HTTPS",)


def _byte_range(out: EdgeHeaders, content: Content, body: Body, response: Response,
                wanted: bytes, if_range: bytes | None, last_modified: bytes | None
                ) -> list[tuple[bytes, bytes | None]]:
    """A Range served from a stored object (facts 1.8): sets the status and body on `out`
    (none: the whole 200) and returns the headers that describe it."""
    d = content.decision
    if d.encoding_out != IDENTITY:
        out.notes += (f"Range ignored: the visitor gets {d.encoding_out}, and ranges are "
                      "served of the identity representation only (facts 1.8.1, 1.8.10, "
                      "modelled)",)
        return []
    data = body.data if body.data is not None else response.body or b""
    answer = ranges.evaluate(wanted, if_range, len(data), d.etag_out, last_modified)
    assert answer is not None
    out.notes += (f"Range: {answer.reason}",)
    if answer.status == 206:
        out.range_status = 206
        out.range_body, described = ranges.partial_body(
            answer, data, header(response.headers, b"content-type"))
        return list(described)
    if answer.status == 416:
        out.range_status, out.range_body = 416, b""
        return [(b"content-range", b"bytes */%d" % len(data))]
    return []


def browser_ttl(params: BrowserTTL, value: bytes | None) -> bytes | None:
    """Browser Cache TTL override: applied only when the origin's max-age is lower or
    absent (facts 6.10, 5.1.3); None leaves Cache-Control as the origin sent it."""
    if params.mode != "override_origin" or params.default is None:
        return None
    ttl = params.default
    current = parse_cache_control(value).get("max-age")
    if current is not None and current.isdigit() and int(current) >= ttl:
        return None
    if not value:
        return b"max-age=%d" % ttl
    if current is None:
        return value + b", max-age=%d" % ttl
    return re.sub(rb"(?i)max-age\s*=\s*\S+?(?=\s*(,|$))", b"max-age=%d" % ttl, value, count=1)


def trace(served: Served | None, content: Content, headers: EdgeHeaders,
          rules: tuple[str, ...]) -> bytes:
    """cf_trace: the decision in one short line (the log and the flow's comment have the
    whole reason): what changed, on what basis, by which rule."""
    d = content.decision
    line = summary(d.action, d.encoding_in, d.encoding_out, d.etag_action,
                   wire_text(content.etag.raw) if content.etag else None,
                   wire_text(d.etag_out) if d.etag_out else None,
                   served.status if served is not None else None, headers.not_modified,
                   d.table_row, d.basis)
    if rules:
        line += "; rules: " + ", ".join(rules)
    return line.encode("ascii", "backslashreplace").replace(b"\r", b" ").replace(b"\n", b" ")


def summary(action: str, encoding_in: str, encoding_out: str, etag_action: str,
            etag_in: str | None, etag_out: str | None, cache_status: str | None,
            not_modified: str | None, table_row: str | None, basis: str) -> str:
    """What the edge did, in one line: the coding, the ETag, the cache, the basis."""
    parts = [f"{action} {encoding_in}->{encoding_out}",
             f"ETag {etag_action}" + (f" {etag_in}" if etag_in else "")
             + (f"->{etag_out}" if etag_out and etag_action == "weakened" else "")]
    if cache_status:
        parts.append(f"cache {cache_status}")
    if not_modified:
        parts.append(f"304 by {not_modified}")
    parts.append(f"{table_row}, {basis}" if table_row else str(basis))
    return "; ".join(parts)
