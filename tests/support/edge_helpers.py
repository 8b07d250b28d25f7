"""Shared helpers: build a zone and run one exchange (addon/exchange/run.py)."""

from __future__ import annotations

from addon.config.loader import parse_rules
from addon.exchange import EdgeContext
from addon.exchange import run
from addon.http import codings
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
# tests/unit/test_html.py covers the features.
FEATURES_OFF = "  email_obfuscation: off\n  automatic_https_rewrites: off\n"


def zone(extra: str = "", plan: str = "pro", brotli: str = "on", html_features: bool = False):
    off = "" if html_features else FEATURES_OFF
    return parse_rules(f"plan: {plan}\nsettings:\n  brotli: {brotli}\n{off}{extra}")


def exchange(z, accept: str | None = "gzip, br", origin: str = "identity", *,
             etag: str | None = '"foobar"', body: bytes = BODY, status: int = 200,
             content_type: str = "text/html; charset=utf-8", method: str = "GET",
             path: str = "/page.html", extra_headers=(), request_headers=(),
             limit: int = 1 << 30):
    """One exchange through every phase (exchange.run), without a cache: (the request
    phases' state, the origin's response, the finished Exchange)."""
    req_headers = [(b"Host", b"example.com")] + list(request_headers)
    if accept is not None:
        req_headers.append((b"Accept-Encoding", accept.encode()))
    request = Request(method=method, target=path, headers=tuple(req_headers))
    raw = codings.encode(body, origin) if origin in ("gzip", "br", "zstd") else body
    headers = [(b"Content-Type", content_type.encode()),
               (b"Content-Length", str(len(raw)).encode())]
    if origin != "identity":
        headers.append((b"Content-Encoding", origin.encode()))
    if etag is not None:
        headers.append((b"ETag", etag.encode()))
    headers += list(extra_headers)
    response = Response(status=status, headers=tuple(headers), body=raw)
    ex = run(EdgeContext(z, limit=limit), request, lambda sent: response, 0.0).exchange
    return ex.state, response, ex


def delivered(response: Response, ex) -> tuple[str, str | None, bytes]:
    """(content-encoding, etag, decoded body) the visitor ends up with."""
    final = ex.result.final
    enc = final.content_encoding
    etag = final.etag
    body = final.body if final.body is not None else response.body
    return enc, etag.decode() if etag else None, codings.decode(body, enc)


def through(z, request: Request, response: Response, limit: int = 1 << 30):
    """`request` through every phase, `response` from the origin, no cache: the Exchange."""
    return run(EdgeContext(z, limit=limit), request, lambda sent: response, 0.0).exchange
