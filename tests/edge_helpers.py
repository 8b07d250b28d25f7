"""Shared helpers: build a zone and run one exchange through the real pipeline."""

from __future__ import annotations

from addon.config.loader import parse_rules
from addon.exchange import pipeline
from addon.http import codings
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response

BODY = b"<p>Hello from the origin, hello from the origin, hello again!</p>\n" * 8

RSE_ON = """
cache_rules:
  - description: strong etags everywhere
    expression: "true"
    action_parameters: {respect_strong_etags: true}
"""


# The documented ETag tables (facts 2.1) describe what compression does; an HTML feature
# that is on removes the ETag before they apply. The core tests use a zone without them;
# tests/test_html.py covers the features.
FEATURES_OFF = "  email_obfuscation: off\n  automatic_https_rewrites: off\n"


def zone(extra: str = "", plan: str = "pro", brotli: str = "on", html_features: bool = False):
    off = "" if html_features else FEATURES_OFF
    return parse_rules(f"plan: {plan}\nsettings:\n  brotli: {brotli}\n{off}{extra}")


def exchange(z, accept: str | None = "gzip, br", origin: str = "identity", *,
             etag: str | None = '"foobar"', body: bytes = BODY, status: int = 200,
             content_type: str = "text/html; charset=utf-8", method: str = "GET",
             path: str = "/page.html", extra_headers=(), request_headers=(),
             limit: int = 1 << 30):
    req_headers = [(b"Host", b"example.com")] + list(request_headers)
    if accept is not None:
        req_headers.append((b"Accept-Encoding", accept.encode()))
    request = Request(method=method, target=path, headers=tuple(req_headers))
    state = pipeline.on_request(z, request)
    raw = codings.encode(body, origin) if origin in ("gzip", "br", "zstd") else body
    headers = [(b"Content-Type", content_type.encode()),
               (b"Content-Length", str(len(raw)).encode())]
    if origin != "identity":
        headers.append((b"Content-Encoding", origin.encode()))
    if etag is not None:
        headers.append((b"ETag", etag.encode()))
    headers += list(extra_headers)
    response = Response(status=status, headers=tuple(headers), body=raw)
    plan = pipeline.on_response(z, state, response)
    if plan.recode is not None:
        plan = pipeline.recode(plan, raw, limit)
    return state, response, plan


def delivered(response: Response, plan) -> tuple[str, str | None, bytes]:
    """(content-encoding, etag, decoded body) the visitor ends up with."""
    if plan.body is None:
        enc = (header(response.headers, b"content-encoding") or b"identity").decode()
        etag = header(response.headers, b"etag")
        return enc, etag.decode() if etag else None, codings.decode(response.body, enc)
    enc = (plan.headers[b"content-encoding"] or b"identity").decode()
    etag = plan.headers[b"etag"]
    return enc, etag.decode() if etag else None, codings.decode(plan.body, enc)
