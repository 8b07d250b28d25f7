"""A relayed origin 304 whose ETag is not the one visitors got with the 200 (nginx: its
strong tag on the 304, the weak one on its gzip 200, which the edge removes from HTML):
the log says so, as a diagnosis."""

from __future__ import annotations

import gzip

from addon.diagnosis import OriginDiagnosis
from addon.exchange import EdgeContext
from addon.exchange import run
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support.edge_helpers import zone

PAGE = b"<html><body><p>hello, hello, hello, hello, hello</p></body></html>" * 4


def _get(ctx: EdgeContext, response: Response, inm: bytes | None = None):
    headers = [(b"Host", b"example.com"), (b"Accept-Encoding", b"gzip, br")]
    if inm is not None:
        headers.append((b"If-None-Match", inm))
    request = Request(method="GET", target="/page", headers=tuple(headers))
    return run(ctx, request, lambda sent: response, 0.0).record


def test_a_relayed_304_with_a_tag_the_200_never_gave_is_flagged():
    ctx = EdgeContext(zone(html_features=True), diagnosis=OriginDiagnosis())
    full = Response(200, ((b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip"),
                          (b"ETag", b'W/"64a1-5"')), gzip.compress(PAGE))
    first = _get(ctx, full)
    assert first.etag_out is None  # Email Obfuscation / Automatic HTTPS Rewrites removed it
    not_modified = Response(304, ((b"ETag", b'"64a1-5"'),), b"")
    second = _get(ctx, not_modified, b'"64a1-5"')
    assert second.not_modified == "origin" and second.etag_out == '"64a1-5"'
    [finding] = second.diagnoses
    assert finding["code"] == "relayed-304-etag-mismatch"
    assert "without an ETag" in finding["message"] and "undocumented" in finding["message"]


def test_the_same_tag_weakly_is_no_mismatch():
    ctx = EdgeContext(zone(), diagnosis=OriginDiagnosis())
    full = Response(200, ((b"Content-Type", b"text/css"), (b"ETag", b'"c1"')), b"x" * 100)
    assert _get(ctx, full).etag_out == 'W/"c1"'  # compressed: weakened
    second = _get(ctx, Response(304, ((b"ETag", b'"c1"'),), b""), b'W/"c1"')
    assert second.not_modified == "origin" and not second.diagnoses
