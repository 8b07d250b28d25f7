"""Between mitmproxy's flows and the pure core: the facts read off a flow, and what the
core decided put back on it (the response, the record, the annotations).
"""

from __future__ import annotations

import time
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import status_codes
from mitmproxy.net.http import url
from mitmproxy.proxy import mode_specs

from addon.exchange.egress import Final
from addon.exchange.headers import summary
from addon.http.headers import Headers
from addon.http.messages import Request
from addon.http.messages import Response

META = "cf_edge"  # flow.metadata key of the record (saved with the flow)
MARKER = ":cloud:"  # the flow list's mark on converted flows
FORWARD_MODES = (mode_specs.RegularMode, mode_specs.UpstreamMode)  # the visitor asks a proxy


def request_facts(flow: http.HTTPFlow) -> Request:
    req = flow.request
    peer = flow.client_conn.peername
    fields = tuple(req.headers.fields)
    return Request(
        method=req.method,
        scheme=req.scheme,
        host=asked_host(flow, fields),
        target=req.data.path.decode("utf-8", "surrogateescape"),
        http_version=req.http_version,
        headers=fields,
        client_ip=peer[0] if peer else "",
    )


def asked_host(flow: http.HTTPFlow, fields: Headers) -> str:
    """The host the visitor asked for. Through a forward proxy (regular or upstream mode)
    that is the request target's authority, which wins over a Host header that says
    otherwise (RFC 9112 3.2.2), and is where mitmproxy sends the request; in the other
    modes it is the Host header (reverse mode keeps it with keep_host_header)."""
    req = flow.request
    if forward_proxy(flow) and req.host:
        return url.hostport(req.scheme, req.host, req.port)
    # mitmproxy's host_header, without its lookups
    host = next((v for k, v in fields if k.lower() == b"host"), None) or req.data.authority
    return host.decode("utf-8", "surrogateescape") if host else req.pretty_host


def forward_proxy(flow: http.HTTPFlow) -> bool:
    return isinstance(flow.client_conn.proxy_mode, FORWARD_MODES)


def response_facts(resp: http.Response, streaming: bool = False,
                   size_hint: int | None = None) -> Response:
    return Response(
        status=resp.status_code,
        headers=tuple(resp.headers.fields),
        body=None if streaming else resp.raw_content,
        streamed=bool(resp.stream) and not streaming,
        streaming=streaming,
        size_hint=size_hint,
    )


def clock(flow: http.HTTPFlow) -> float:
    """The cache's clock: now, or the time a recorded request was made."""
    return time.time() if flow.live else flow.request.timestamp_start


def stored_response(facts: Response, flow: http.HTTPFlow) -> http.Response:
    """A stored object as the mitmproxy response the visitor gets.

    Built without ResponseData's run-time type checks, which cost about as much as the rest
    of a HIT: the values are the right types by construction, and a test pins the result
    to mitmproxy's own constructor on the mitmproxy versions pyproject.toml allows.
    """
    now = time.time()
    version = flow.request.http_version if flow.request.http_version.startswith("HTTP/") \
        else "HTTP/1.1"
    headers = facts.headers
    if version.startswith(("HTTP/2", "HTTP/3")):
        headers = tuple((k.lower(), v) for k, v in headers)  # h2/h3 require lower case
    reason = status_codes.RESPONSES.get(facts.status, "") if version.startswith("HTTP/1") \
        else ""
    data = object.__new__(http.ResponseData)
    data.__dict__.update(http_version=version.encode(), status_code=facts.status,
                         reason=reason.encode(), headers=http.Headers(headers),
                         content=facts.body, trailers=None, timestamp_start=now,
                         timestamp_end=now)
    response = object.__new__(http.Response)
    response.data = data
    return response


def final_response(final: Final) -> http.Response:
    """A response made by the edge (its error page, a stale object after a failure)."""
    return http.Response.make(final.status, final.body or b"", final.headers)


def apply_final(flow: http.HTTPFlow, final: Final) -> None:
    """Put what the visitor gets on the flow: the headers in one pass, the body and status
    only where they changed."""
    resp = flow.response
    assert resp is not None
    if resp.stream:
        return  # already sent as it was
    fields = final.headers
    if fields is not resp.headers.fields:
        if resp.is_http2 or resp.is_http3:  # h2/h3 require lower-case names
            fields = tuple((k.lower(), v) for k, v in fields)
        resp.headers.fields = fields
    if final.body is not None and final.body is not resp.raw_content:
        resp.raw_content = final.body
    if final.status != resp.status_code:
        resp.status_code = final.status
        resp.reason = (status_codes.RESPONSES.get(final.status, "").encode()
                       if resp.http_version.startswith("HTTP/1") else b"")


def annotate(flow: http.HTTPFlow, entry: dict[str, Any], headers_in: Headers = ()) -> None:
    """The record in flow.metadata (with the headers before the edge, for the content view),
    the flow's comment, and the cloud marker on converted flows."""
    # the record itself, once logged (the header tuple as it is: tnetstring saves tuples)
    entry["handled"] = True
    entry["headers_in"] = headers_in
    flow.metadata[META] = entry
    if entry["changed"]:
        flow.marked = MARKER
    # the first line is what a list shows (mitmweb's comment column); details below it
    lines = [summary(entry["action"], entry["encoding_in"], entry["encoding_out"],
                     entry["etag_action"], entry["etag_in"], entry["etag_out"],
                     entry.get("cache_status"), entry.get("not_modified"),
                     entry.get("table_row"), entry["basis"]),
             f"why: {entry['reason']}"]
    if entry.get("cache_status"):
        lines.append(f"cache: {entry['cache_status']}"
                     + (f", key {entry['cache_key']}" if entry["cache_key"] else "")
                     + f": {entry['cache_reason']}")
    for note in entry.get("notes") or ():
        lines.append(f"note: {note}")
    for d in entry.get("diagnoses") or ():
        lines.append(f"origin diagnosis ({d['code']}): {d['message']}. Fix: {d['fix']}")
    flow.comment = "\n".join(lines)


def content_length(resp: http.Response) -> int | None:
    value = resp.headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def has_body(flow: http.HTTPFlow) -> bool:
    resp = flow.response
    return (resp is not None and flow.request.method != "HEAD" and resp.status_code >= 200
            and resp.status_code not in (204, 304))
