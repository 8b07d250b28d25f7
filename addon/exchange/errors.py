"""Cloudflare's answers when the origin fails: the 52x errors (facts 6.21, 14.4).

Which error a failure is, and the page the edge sends for it: the status, `cf-ray`,
`server: cloudflare`, and a small HTML page of our own in the layout of Cloudflare's (what
happened, the Ray ID, the time, which of browser, edge and host failed). Cloudflare adds
no `cf-cache-status` to a response it generates (facts 8.2).

Sources: developers.cloudflare.com/support/troubleshooting/http-status-codes/
cloudflare-5xx-errors/ (one page per code), .../cloudflare-error-headers/ (cf-error-type).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from addon.http.headers import Headers


@dataclass(frozen=True)
class OriginError:
    status: int
    title: str
    what: str  # what Cloudflare's page says happened, in our words


ERRORS = {e.status: e for e in (
    OriginError(520, "Web server is returning an unknown error",
                "the origin's answer was empty, malformed or cut off, or its headers were "
                "too large"),
    OriginError(521, "Web server is down", "the origin refused the connection"),
    OriginError(522, "Connection timed out",
                "the connection to the origin could not be completed in time"),
    OriginError(523, "Origin is unreachable",
                "the origin's address could not be resolved or reached"),
    OriginError(524, "A timeout occurred",
                "the origin accepted the request but sent no response in time"),
    OriginError(525, "SSL handshake failed", "the TLS handshake with the origin failed"),
    OriginError(526, "Invalid SSL certificate",
                "the origin's certificate could not be validated"),
)}
CONNECT_TIMEOUT = 19.0  # 522: no SYN+ACK within 19 s (the 522 page)
READ_TIMEOUT = 120  # 524: the Proxy Read Timeout, 120 s by default (the 524 page)
MAX_RESPONSE_HEADERS = 128 * 1024  # 520: "Headers exceeding 128 KB" (the 520 page)


def classify(message: str, connected: bool, tls: bool = False) -> int:
    """The 52x for a failed exchange, from mitmproxy's (or the OS's) error text and whether
    a TCP connection to the origin had been set up."""
    text = message.lower()
    if "certificate" in text or "cert_verify" in text:
        return 526
    if tls and ("tls" in text or "ssl" in text or "handshake" in text):
        return 525
    if connected:
        return 520
    if "refused" in text or "errno 111" in text:
        return 521
    if "timed out" in text or "timeout" in text:
        return 522
    if any(word in text for word in ("name or service", "nodename", "getaddrinfo",
                                     "unreachable", "no route", "no address", "errno -")):
        return 523
    return 521


def origin_failure(message: str, connected: bool, tls: bool = False) -> int | None:
    """The 52x for a failed exchange, or None when it was not the origin that failed (the
    visitor went away, a proxy limit, a killed flow)."""
    text = message.lower()
    if ("client" in text or "killed" in text or "exceeds" in text or "too large" in text
            or "request" in text):
        return None
    return classify(message, connected, tls)


def error_page(status: int, ray: str, host: str, detail: str, now: float | None = None
               ) -> tuple[Headers, bytes]:
    """The headers and body of the edge's answer for a 52x."""
    e = ERRORS[status]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    host_text = html.escape(host)
    body = f"""<!DOCTYPE html>
<html lang="en-US">
<head>
<meta charset="UTF-8">
<title>{host_text} | {status}: {html.escape(e.title)}</title>
<meta name="robots" content="noindex, nofollow">
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222 }}
.code {{ color: #888; font-size: 0.6em; margin-left: 0.5em }}
.path {{ display: flex; gap: 1em; margin: 2em 0 }}
.path div {{ flex: 1; border: 1px solid #ddd; padding: 1em; text-align: center }}
.error {{ border-color: #bd2426 !important; color: #bd2426 }}
footer {{ color: #666; font-size: 0.9em; border-top: 1px solid #ddd; padding-top: 1em }}
</style>
</head>
<body>
<header>
<h1>{html.escape(e.title)}<span class="code">Error code {status}</span></h1>
<p>{html.escape(when)}</p>
</header>
<section class="path">
<div><strong>You</strong><br>Browser<br>Working</div>
<div><strong>Emulated edge</strong><br>Cloudflare<br>Working</div>
<div class="error"><strong>{host_text}</strong><br>Host<br>Error</div>
</section>
<section>
<h2>What happened?</h2>
<p>{html.escape(e.what[0].upper() + e.what[1:])}: {html.escape(detail)}.</p>
<h2>What can I do?</h2>
<p>Check that the origin is running and reachable from this proxy, then reload.</p>
</section>
<footer>
<p>Cloudflare Ray ID: <strong>{html.escape(ray.split("-")[0])}</strong> &bull;
This page was made by a local emulation of Cloudflare's edge (a mitmproxy addon), not by
Cloudflare.</p>
</footer>
</body>
</html>
""".encode()
    headers: Headers = (
        (b"content-type", b"text/html; charset=UTF-8"),
        (b"cache-control", b"private, max-age=0, no-store, no-cache, must-revalidate"),
        (b"expires", b"Thu, 01 Jan 1970 00:00:01 GMT"),
        (b"server", b"cloudflare"),
        (b"cf-ray", ray.encode()),
        (b"cf-error-type", str(status).encode()),
        (b"content-length", str(len(body)).encode()),
    )
    return headers, body


def headers_too_large(headers: Headers) -> bool:
    """The origin's header block is larger than Cloudflare accepts (the 520 page)."""
    return sum(len(k) + len(v) + 4 for k, v in headers) > MAX_RESPONSE_HEADERS
