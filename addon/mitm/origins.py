"""Is the origin there? Checked before a request needs it, so that the edge can answer a
dead origin with Cloudflare's 521, 522, 523, 525 or 526 (facts 14.4) instead of the 502
mitmproxy would send before any hook runs again.

An origin that answered within the last RECENT seconds is not checked again, so steady
traffic pays nothing; the check is one TCP connection (and a TLS handshake for https
origins), closed at once. An origin can still fail between the check and mitmproxy's own
connection: the `error` hook then answers (mitm/error_page.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import OrderedDict

import certifi
from mitmproxy import ctx
from mitmproxy import http

from addon.exchange import errors as origin_errors
from addon.mitm import options

logger = logging.getLogger("cf_edge")

RECENT = 2.0  # seconds an answer vouches for its origin
REMEMBERED = 1024  # origins remembered, least recently answered first out


def _key(flow: http.HTTPFlow) -> tuple[str, str, int]:
    return flow.request.scheme, flow.request.host, flow.request.port


class Origins:
    """Which origins answered lately; the check before a request needs one; and the
    options that let the edge answer for a dead origin."""

    def __init__(self) -> None:
        self.answered_at: OrderedDict[tuple[str, str, int], float] = OrderedDict()
        self.connect_timeout = origin_errors.CONNECT_TIMEOUT

    def load(self, loader) -> None:
        loader.add_option(
            "cf_connect_timeout", str, f"{origin_errors.CONNECT_TIMEOUT:g}",
            "Seconds the edge waits for a connection to the origin before it answers 522 "
            "Connection timed out (Cloudflare waits 19 s).",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_connect_timeout" in updated:
            self.connect_timeout = options.seconds("cf_connect_timeout")
        if {"mode", "connection_strategy"} & updated:
            _connect_lazily()
        if "mode" in updated:
            _keep_the_visitors_host()

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.live and flow.server_conn.timestamp_tcp_setup is not None:
            self.answered(flow)

    def answered(self, flow: http.HTTPFlow) -> None:
        key = _key(flow)
        self.answered_at[key] = time.monotonic()
        self.answered_at.move_to_end(key)
        if len(self.answered_at) > REMEMBERED:
            self.answered_at.popitem(last=False)

    def failed(self, flow: http.HTTPFlow) -> None:
        self.answered_at.pop(_key(flow), None)

    def recent(self, flow: http.HTTPFlow) -> bool:
        """The origin answered within RECENT seconds: no check needed (the hot path)."""
        seen = self.answered_at.get(_key(flow))
        return seen is not None and time.monotonic() - seen < RECENT

    async def check(self, flow: http.HTTPFlow) -> tuple[int, str] | None:
        """(52x, what failed) when the origin cannot be reached; None when it can, or when
        it is not ours to check (through an upstream proxy)."""
        if ctx.options.mode and ctx.options.mode[0].startswith("upstream:"):
            return None
        if self.recent(flow):
            return None
        scheme, host, port = _key(flow)
        tls = _tls_context() if scheme == "https" else None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls,
                                        server_hostname=host if tls else None),
                self.connect_timeout)
        except TimeoutError:
            return 522, f"no connection to {host}:{port} within {self.connect_timeout:g} s"
        except ssl.SSLCertVerificationError as e:
            return 526, f"the certificate of {host}:{port} is not valid: {e.verify_message}"
        except ssl.SSLError as e:
            return 525, f"the TLS handshake with {host}:{port} failed: {e.reason or e}"
        except socket.gaierror as e:
            return 523, f"{host} cannot be resolved: {e.strerror}"
        except OSError as e:
            return origin_errors.classify(str(e), connected=False), (
                f"connecting to {host}:{port} failed: {e.strerror or e}")
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):  # closing is all it was asked for
            await writer.wait_closed()
        self.answered(flow)
        return None


def _connect_lazily() -> None:
    """Cloudflare connects to the origin for a request; mitmproxy by default connects when
    the visitor does, and in reverse mode drops the visitor's connection without an answer
    when the origin is down. Lazy connections let the edge answer 52x."""
    modes = ctx.options.mode or []
    if ctx.options.connection_strategy == "eager" and not any(
            m.startswith("upstream:") for m in modes):
        ctx.options.update(connection_strategy="lazy")
        logger.info("cf_edge: connection_strategy set to lazy: the origin is connected when a "
                    "request needs it, so a dead origin gets Cloudflare's 52x answers")


def _keep_the_visitors_host() -> None:
    """Cloudflare sends the origin the host the visitor asked for; mitmproxy's reverse mode
    by default replaces it with the origin's, before any hook, so the log, the report and
    `http.host` in the rules would see the origin's name instead of the visitor's."""
    modes = ctx.options.mode or []
    if not ctx.options.keep_host_header and any(m.startswith("reverse:") for m in modes):
        ctx.options.update(keep_host_header=True)
        logger.info("cf_edge: keep_host_header set: the origin gets the Host the visitor "
                    "asked for, as behind Cloudflare, and the log and the rules see it")


def _tls_context() -> ssl.SSLContext:
    """As mitmproxy verifies the origin: not at all with ssl_insecure (Cloudflare's Full
    mode), else against its trusted CAs (Full (strict), where a bad certificate is 526)."""
    if ctx.options.ssl_insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(
        cafile=ctx.options.ssl_verify_upstream_trusted_ca or certifi.where(),
        capath=ctx.options.ssl_verify_upstream_trusted_confdir)
