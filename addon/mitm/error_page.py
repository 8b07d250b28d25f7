"""Let the `error` hook answer an HTTP/1 visitor, as Cloudflare answers a failed origin.

mitmproxy 12 sends its own 502 page when an exchange with the origin fails, after the
`error` hook, and ignores a response set there (mitmproxy issue #4854; PR #7999 proposes
the hook). For HTTP/1 visitors that page comes from one function,
`mitmproxy.proxy.layers.http._http1.make_error_response(status, message)`, called with the
very message object the `error` hook saw as `flow.error.msg`. The edge wraps that function:
an answer registered for that message object goes out instead; any other call is
mitmproxy's own. HTTP/2 and HTTP/3 build their error inline, so those visitors still get
mitmproxy's 502, and the log says so. tests/e2e/test_origin_errors.py pins this against the
mitmproxy installed.
"""

from __future__ import annotations

from collections import OrderedDict

from mitmproxy import http
from mitmproxy.net.http import http1

try:
    from mitmproxy.proxy.layers.http import _http1
except ImportError:  # another mitmproxy layout: the edge only logs its 52x
    _http1 = None  # type: ignore[assignment]

_PENDING: OrderedDict[int, tuple[str, bytes]] = OrderedDict()  # id(message) -> answer
_MAX_PENDING = 256  # answers whose visitor went away are dropped, oldest first


def _make_error_response(status_code: int, message: str = "") -> bytes:
    pending = _PENDING.pop(id(message), None)
    if pending is not None and pending[0] is message:
        return pending[1]
    return _ORIGINAL(status_code, message)


_ORIGINAL = getattr(_http1, "make_error_response", None)


def available() -> bool:
    return _ORIGINAL is not None


def install() -> None:
    if _http1 is not None and _ORIGINAL is not None:
        _http1.make_error_response = _make_error_response


def uninstall() -> None:
    if _http1 is not None and _ORIGINAL is not None:
        _http1.make_error_response = _ORIGINAL
    _PENDING.clear()


def answer(flow: http.HTTPFlow, response: http.Response) -> bool:
    """Register `response` as the answer to the failed exchange of `flow`; False when it
    cannot go out (an HTTP/2 or HTTP/3 visitor, or no hook into mitmproxy)."""
    if (flow.error is None or not available() or not flow.live
            or _http1.make_error_response is not _make_error_response
            or not flow.request.http_version.startswith("HTTP/1")):
        return False
    message = flow.error.msg
    response.headers["connection"] = "close"  # mitmproxy closes it after an error
    _PENDING[id(message)] = (message, http1.assemble_response(response))
    while len(_PENDING) > _MAX_PENDING:
        _PENDING.popitem(last=False)
    return True
