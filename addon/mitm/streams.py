"""Which bodies stream through the edge instead of being buffered, decided in the
`responseheaders` hook, the last moment before mitmproxy sends the headers: event streams,
bodies over cf_stream, whatever mitmproxy's stream_large_bodies streams, and requests whose
configuration rules set Response Body Buffering to none. The exchange decides on the
headers; the body then passes through its transformation (compression/stream.py).
"""

from __future__ import annotations

import logging

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy.utils import human

from addon.cache import ORIGIN_FAILURES
from addon.compression.stream import Threaded
from addon.exchange import Exchange
from addon.exchange.recode import human_size
from addon.http.fields import media_type
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm import options
from addon.mitm.convert import has_body
from addon.mitm.convert import response_facts
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.stream_switch import LateStream
from addon.vocabulary import CacheStatus

logger = logging.getLogger("cf_edge")

DEFAULT_STREAM = "16m"
LATER = "decided when mitmproxy switches to streaming"


def _type_and_length(fields: tuple[tuple[bytes, bytes], ...]) -> tuple[bytes | None, int | None]:
    """Content-Type and Content-Length, in one pass over the raw fields."""
    content_type = length = None
    for k, v in fields:
        if len(k) == 12 and k.lower() == b"content-type":
            content_type = v
        elif len(k) == 14 and k.lower() == b"content-length":
            length = int(v) if v.strip().isdigit() else None
    return content_type, length


class Streams:
    def __init__(self) -> None:
        self.threshold: int | None = None  # bodies longer than this stream
        self.option = "cf_stream"  # the option that set the threshold

    def load(self, loader) -> None:
        loader.add_option(
            "cf_stream", str | None, DEFAULT_STREAM,
            "Bodies longer than this (e.g. 512k, 1m, 64m) pass through the edge as they "
            "arrive instead of being buffered: decided at once from a Content-Length, once "
            "this much has arrived otherwise. Event streams always stream. Unset: only "
            "event streams and what mitmproxy's stream_large_bodies streams.",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if not {"cf_stream", "stream_large_bodies"} & updated:
            return
        ours = options.size("cf_stream") if ctx.options.cf_stream else None
        try:
            theirs = human.parse_size(ctx.options.stream_large_bodies)
        except ValueError:
            theirs = None
        sizes = [n for n in (ours, theirs) if n]
        self.threshold = min(sizes) if sizes else None
        self.option = "cf_stream" if self.threshold == ours else "stream_large_bodies"
        if self.threshold is not None and self.threshold != theirs:
            # a body of unknown length only starts streaming when mitmproxy's own option
            # says so (which streams large uploads to the origin too)
            ctx.options.update(stream_large_bodies=str(self.threshold))
            logger.info("cf_edge: stream_large_bodies set to %s (cf_stream): a body of "
                        "unknown length streams through the edge once that much has arrived",
                        human_size(self.threshold))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = flowstate.of(flow)
        resp = flow.response
        if state is None or state.role is not Role.VISITOR or resp is None or not flow.live \
                or state.exchange.from_store or state.exchange.result is not None:
            return  # not ours, answered from the cache or by the edge
        try:
            why = self._because(flow, state.exchange)
            if why is not None and why is not LATER:
                self._start(flow, state, why)
            elif why is LATER and self.threshold is not None:
                # unknown length: mitmproxy buffers it until stream_large_bodies, then
                # switches to streaming; the edge decides at that moment
                at = self.threshold
                why = (f"more than {human_size(at)} ({self.option}) arrived without a "
                       "Content-Length")
                LateStream.watch(resp, lambda: self._start(flow, state, why, at))
        except Exception:
            logger.exception("cf_edge: %s: the edge could not prepare the stream; it passes "
                             "untouched", wire_text(flow.request.pretty_url))

    def _because(self, flow: http.HTTPFlow, ex: Exchange) -> str | None:
        """Why this response's body streams through the edge, or None."""
        resp = flow.response
        assert resp is not None
        if not has_body(flow):
            return None
        lk = ex.lookup
        if (lk is not None and lk.status is CacheStatus.EXPIRED and lk.obj is not None
                and lk.obj.stale_on_error and resp.status_code in ORIGIN_FAILURES):
            return None  # buffered, so that the stored object can be served STALE
        content_type, length = _type_and_length(resp.headers.fields)
        if media_type(content_type) == b"text/event-stream":
            return "an event stream (text/event-stream) is never buffered"
        if ex.state.features.get("response_body_buffering") == "none":
            return "Response Body Buffering is none for this request (facts 3.0.3)"
        if self.threshold is not None and length is not None and length > self.threshold:
            return (f"its Content-Length, {length} bytes, is more than "
                    f"{human_size(self.threshold)} ({self.option})")
        if resp.stream:
            return "mitmproxy's stream_large_bodies streams it"
        if self.threshold is not None and length is None and resp.status_code != 304:
            return LATER  # its length is not known: it may pass the threshold as it comes
        return None

    def _start(self, flow: http.HTTPFlow, state: FlowState, why: str,
               size_hint: int | None = None) -> None:
        """Decide on the headers, set them, and let the body through the transformation."""
        resp = flow.response
        assert resp is not None
        step = state.exchange.streams(response_facts(resp, streaming=True, size_hint=size_hint),
                                      why)
        body = Threaded(step.body)
        fields = step.final.headers
        if resp.is_http2 or resp.is_http3:
            fields = tuple((k.lower(), v) for k, v in fields)
        # everything computed: the headers go out after this, then the body through `body`
        resp.headers.fields = fields
        resp.stream = body
        state.step, state.stream = step, body
