"""The edge in mitmproxy: one Exchange (addon/exchange/machine.py) per visitor's flow,
driven across mitmproxy's hooks. Compute first, change the flow last: if anything fails,
the response goes out untouched and the reason is logged.

Hooks are synchronous; one returns a coroutine only when the exchange must wait (a fill of
the same object by another request, the origin check, a big re-code in a worker thread,
a second request to the origin), so the usual response costs no coroutine at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from mitmproxy import contentviews
from mitmproxy import ctx
from mitmproxy import http
from mitmproxy.utils import human

from addon.diagnosis import OriginDiagnosis
from addon.exchange import Answer
from addon.exchange import AskOrigin
from addon.exchange import Base
from addon.exchange import Delivered
from addon.exchange import EdgeContext
from addon.exchange import Exchange
from addon.exchange import FromCache
from addon.exchange import NeedRecode
from addon.exchange import Record
from addon.exchange import Step
from addon.exchange import errors
from addon.exchange.headers import TRACE_HEADER
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import wire_text
from addon.mitm import error_page
from addon.mitm import flowstate
from addon.mitm import options
from addon.mitm.cache import EdgeCache
from addon.mitm.contentview import EdgeView
from addon.mitm.convert import META
from addon.mitm.convert import annotate
from addon.mitm.convert import apply_final
from addon.mitm.convert import clock
from addon.mitm.convert import final_response
from addon.mitm.convert import forward_proxy
from addon.mitm.convert import request_facts
from addon.mitm.convert import response_facts
from addon.mitm.convert import stored_response
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.log import EdgeLog
from addon.mitm.origins import Origins
from addon.mitm.probe import OriginProbe
from addon.mitm.replay import ask_again
from addon.mitm.run_report import RunReport
from addon.mitm.zone_loader import ZoneLoader

logger = logging.getLogger("cf_edge")

DEFAULT_DECODE_LIMIT = "256m"
# Re-code on the event loop when the origin's body is at most INLINE_RAW bytes and decodes
# to at most INLINE_DECODED; anything larger goes to a worker thread (the codecs release
# the GIL), so small responses never wait behind a big one and never pay for the hop.
INLINE_RAW = 64 * 1024
INLINE_DECODED = 256 * 1024
INLINE_HTML = 64 * 1024  # rewriting costs about 20 ms per MB (lolhtml-notes): keep it short

Later = Coroutine[Any, Any, None] | None  # what a hook returns: a coroutine when it must wait


class Exchanges:
    def __init__(self, zones: ZoneLoader, cache: EdgeCache, origins: Origins, log: EdgeLog,
                 report: RunReport, probe: OriginProbe) -> None:
        self.zones, self.cache, self.origins = zones, cache, origins
        self.log, self.report, self.probe = log, report, probe
        self.limit = human.parse_size(DEFAULT_DECODE_LIMIT)
        self.trace = False
        self.anticomp = False  # mitmproxy's own option, read once per change
        self.diagnosis = OriginDiagnosis()

    def load(self, loader) -> None:
        loader.add_option(
            "cf_decode_limit", str, DEFAULT_DECODE_LIMIT,
            "Largest decoded body the edge re-codes (e.g. 512k, 64m, 1g). A body that decodes "
            "to more is passed through untouched and the reason logged, so a decompression "
            "bomb cannot exhaust memory.",
        )  # fmt: skip
        loader.add_option(
            "cf_trace", bool, False,
            f"Add a response header ({TRACE_HEADER.decode()}) that explains the edge's "
            "decision in one line, for the browser's developer tools.",
        )  # fmt: skip
        contentviews.add(EdgeView())
        error_page.install()

    def configure(self, updated: set[str]) -> None:
        if "cf_decode_limit" in updated:
            self.limit = options.size("cf_decode_limit")
        if "cf_trace" in updated:
            self.trace = bool(ctx.options.cf_trace)
        if "anticomp" in updated:
            self.anticomp = bool(ctx.options.anticomp)

    def done(self) -> None:
        error_page.uninstall()

    # ---- the request ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # the visitor's headers, before anticomp/anticache change them in `request`
        zone = self.zones.zone
        if zone is None or flowstate.of(flow) is not None:
            return  # no rules, or one of the edge's own requests
        if flow.metadata.get(META, {}).get("handled"):
            return  # converted in an earlier run over this recording
        try:
            ex = Exchange(EdgeContext(zone, self.cache.store, self.diagnosis, self.limit,
                                      self.trace), request_facts(flow), clock(flow), flow.live)
        except Exception:
            logger.exception("cf_edge: request left unchanged after an internal error: %s",
                             wire_text(flow.request.pretty_url))
            return
        flowstate.attach(flow, FlowState(ex))

    def request(self, flow: http.HTTPFlow) -> Later:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.VISITOR:
            return None
        if flow.response is not None:
            if flow.live:  # another addon answered already
                flowstate.detach(flow)
                return None
            state.recorded = response_facts(flow.response)  # replaying a recording
        try:
            step = state.exchange.begin()
            if flow.live and self.cache.busy(step):
                return self._request_waits(flow, state, step)
            if flow.live and isinstance(step, AskOrigin):
                self._claim(state, step)
                if not self.origins.recent(flow):
                    return self._check_origin(flow, state, step)
            self._to_origin_or_answer(flow, state, step)
        except Exception:
            logger.exception("cf_edge: %s: sent to the origin untouched after an internal "
                             "error", wire_text(flow.request.pretty_url))
            self._forget(flow, state)
        return None

    async def _request_waits(self, flow: http.HTTPFlow, state: FlowState,
                             step: AskOrigin | FromCache | Answer) -> None:
        """Another request fills the same object: wait for it (request collapsing)."""
        try:
            assert not isinstance(step, Answer)
            step = await self.cache.wait_turn(flow, state.exchange, step)
            if isinstance(step, AskOrigin):
                self._claim(state, step)
                if not self.origins.recent(flow):
                    await self._check_origin(flow, state, step)
                    return
            self._to_origin_or_answer(flow, state, step)
        except Exception:
            logger.exception("cf_edge: %s: sent to the origin untouched after an internal "
                             "error", wire_text(flow.request.pretty_url))
            self._forget(flow, state)

    async def _check_origin(self, flow: http.HTTPFlow, state: FlowState, step: AskOrigin
                            ) -> None:
        """Is the origin there? If not: Cloudflare's 52x, or the expired object STALE."""
        try:
            failure = await self.origins.check(flow)
            next_step: Step = step
            if failure is not None:
                self._release(state)
                next_step = state.exchange.failed(*failure)
            assert isinstance(next_step, AskOrigin | FromCache | Answer)
            self._to_origin_or_answer(flow, state, next_step)
        except Exception:
            logger.exception("cf_edge: %s: sent to the origin untouched after an internal "
                             "error", wire_text(flow.request.pretty_url))
            self._forget(flow, state)

    def _claim(self, state: FlowState, step: AskOrigin) -> None:
        """This flow fills the object: others wait for it (facts 6.17)."""
        if step.fill is not None:
            self.cache.claim(step.fill)
            state.fill = step.fill

    def _release(self, state: FlowState) -> None:
        if state.fill is not None:
            self.cache.release(state.fill)
            state.fill = None

    def _to_origin_or_answer(self, flow: http.HTTPFlow, state: FlowState,
                             step: AskOrigin | FromCache | Answer) -> None:
        state.step = step
        ex = state.exchange
        if isinstance(step, Answer):  # the edge answers (its /cdn-cgi/ paths, a 52x)
            self._answer(flow, state, step)
        elif isinstance(step, FromCache):  # HIT, UPDATING, STALE: the origin is not asked
            flow.response = stored_response(step.response, flow)
            if step.background is None:
                return
            if flow.live:
                try:
                    self.cache.revalidate(flow, ex, step)
                except Exception:  # the visitor is served either way
                    logger.warning("cf_edge: background revalidation of %s not started",
                                   wire_text(flow.request.pretty_url), exc_info=True)
            elif state.recorded is not None:  # the recorded answer stands for it
                ex.background_answered(state.recorded, clock(flow))
        elif flow.live:  # a recorded request was already sent: history is not rewritten
            self._edit_request(flow, ex, step)

    def _edit_request(self, flow: http.HTTPFlow, ex: Exchange, step: AskOrigin) -> None:
        """Towards the origin (facts 8.6, 8.7, 1.3), in one pass over the headers."""
        req, how = flow.request, step.request
        edits: list[tuple[bytes, bytes | None]] = [(name, None) for name in how.remove]
        edits += how.set
        if self.anticomp:  # mitmproxy's anticomp, when on, has the last word
            edits = [e for e in edits if e[0] != b"accept-encoding"]
        if forward_proxy(flow) and req.host:
            # a proxy replaces a Host that differs from the target's (RFC 9112 3.2.2)
            authority = ex.state.request.host.encode("utf-8", "surrogateescape")
            current = header(ex.state.request.headers, b"host")
            if current is not None and current != authority:
                edits.append((b"host", authority))
        req.headers.fields = edit_headers(req.headers.fields, edits)
        if req.method != how.method:
            req.method = how.method

    # ---- the response ----

    def response(self, flow: http.HTTPFlow) -> Later:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.VISITOR:
            return None
        try:
            if flow.response is None:
                self._forget(flow, state)
                return None
            ex = state.exchange
            if ex.state.request.method != flow.request.method:
                flow.request.method = ex.state.request.method  # HEAD went out as GET (1.7.1)
            if state.stream is not None:
                self._stream_ended(flow, state)
                return None
            return self._drive(flow, state, self._first(flow, state))
        except Exception as e:
            self._untouched(flow, state, e)
            return None

    def _first(self, flow: http.HTTPFlow, state: FlowState) -> Step:
        """The exchange's next step now that the flow has its response."""
        ex, response = state.exchange, flow.response
        assert response is not None
        if isinstance(state.step, FromCache):  # served from the cache in `request`
            return ex.from_cache()
        failure = _unusable(flow, ex) if flow.live else None
        if failure is None:
            return ex.answered(response_facts(response))
        step = ex.failed(*failure, unreachable=False)  # an answer Cloudflare would not take
        if isinstance(step, FromCache):
            flow.response = stored_response(step.response, flow)
            return ex.from_cache()
        return step

    def _drive(self, flow: http.HTTPFlow, state: FlowState, step: Step) -> Later:
        """The steps that need no waiting, here; the rest in a coroutine."""
        ex = state.exchange
        while isinstance(step, NeedRecode | AskOrigin):
            if isinstance(step, AskOrigin):
                if flow.live:
                    return self._drive_later(flow, state, step)
                step = ex.again_failed()  # a recording holds no second answer
                continue
            if len(step.raw) > INLINE_RAW:
                return self._drive_later(flow, state, step)
            done = ex.recode(INLINE_HTML if step.html else INLINE_DECODED)
            if done is None:  # decodes to more than is quick
                return self._drive_later(flow, state, step)
            step = done
        self._deliver(flow, state, step)
        return None

    async def _drive_later(self, flow: http.HTTPFlow, state: FlowState, step: Step) -> None:
        ex = state.exchange
        try:
            while isinstance(step, NeedRecode | AskOrigin):
                if isinstance(step, NeedRecode):
                    done = await asyncio.to_thread(ex.recode)
                    assert done is not None  # no budget: it finishes or passes through
                    step = done
                    continue
                again = await ask_again(flow, step.request, FlowState(ex, Role.REFETCH))
                if again is None:
                    step = ex.again_failed()
                else:
                    state.again = again
                    step = ex.answered(response_facts(again))
            self._deliver(flow, state, step)
        except Exception as e:
            self._untouched(flow, state, e)

    def _deliver(self, flow: http.HTTPFlow, state: FlowState, step: Step) -> None:
        """Everything computed: only now the flow changes."""
        ex = state.exchange
        if isinstance(step, Answer):  # the origin's answer was unusable: a 52x
            self._answer(flow, state, step)
            return
        assert isinstance(step, Delivered) and ex.source is not None
        if step.base is Base.AGAIN:
            flow.response = state.again
        elif step.base is Base.STORED:  # REVALIDATED, STALE
            assert ex.served is not None
            flow.response = stored_response(ex.served.response, flow)
        apply_final(flow, step.final)
        self._publish(flow, step.record, ex.source.headers)
        if ex.origin is not None and not ex.from_store:
            try:
                self.probe.consider(flow, ex, ex.origin, step.final.etag)
            except Exception:  # a diagnosis aid: never at the expense of the response
                logger.warning("cf_edge: origin probe of %s not started",
                               wire_text(flow.request.pretty_url), exc_info=True)
        self._forget(flow, state)

    def _stream_ended(self, flow: http.HTTPFlow, state: FlowState, cut: str = "") -> None:
        """The streamed body ended (or was cut)."""
        body, ex = state.stream, state.exchange
        assert body is not None and ex.origin is not None
        if cut:
            body.close()
        try:
            step = ex.stream_ended(body, clock(flow), cut)
        except Exception:
            logger.exception("cf_edge: %s: the end of a stream could not be recorded",
                             wire_text(flow.request.pretty_url))
            self._forget(flow, state)
            return
        self._publish(flow, step.record, ex.origin.headers)
        self._forget(flow, state)

    # ---- the origin failed ----

    def error(self, flow: http.HTTPFlow) -> Later:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.VISITOR:
            return None
        if state.stream is not None:
            self._stream_ended(flow, state, cut=flow.error.msg if flow.error else "cut")
            return None
        if flow.error is None or flow.response is not None or state.exchange.result:
            self._forget(flow, state)
            return None
        failure = errors.origin_failure(
            flow.error.msg, connected=flow.server_conn.timestamp_tcp_setup is not None,
            tls=flow.request.scheme == "https")
        if failure is None:  # the visitor went away, or mitmproxy's own limits
            self._forget(flow, state)
            return None
        self.origins.failed(flow)
        return self._answer_failure(flow, state, failure)

    async def _answer_failure(self, flow: http.HTTPFlow, state: FlowState, status: int
                              ) -> None:
        """Cloudflare's 52x, or the expired object served STALE (facts 6.21)."""
        assert flow.error is not None
        ex = state.exchange
        try:
            step: Step = ex.failed(status, flow.error.msg)
            if isinstance(step, FromCache):
                step = ex.from_cache()
                if isinstance(step, NeedRecode):
                    step = await asyncio.to_thread(ex.recode)
            assert isinstance(step, Answer | Delivered)
            sent = error_page.answer(flow, final_response(step.final))
        except Exception:
            logger.exception("cf_edge: the origin's failure was not answered: %s",
                             wire_text(flow.request.pretty_url))
            self._forget(flow, state)
            return
        if not sent and flow.live:
            step.record.status_out = 502
            step.record.notes.append(
                f"Cloudflare answers {step.final.status}; mitmproxy sent its own 502 instead, "
                "because it does not let an addon answer a failed exchange on "
                f"{flow.request.http_version} (mitmproxy PR #7999)")
        self._publish(flow, step.record)
        self._forget(flow, state)

    # ---- helpers ----

    def _answer(self, flow: http.HTTPFlow, state: FlowState, answer: Answer) -> None:
        """The edge answers itself (its /cdn-cgi/ paths, a 52x): the response, logged."""
        flow.response = final_response(answer.final)
        self._publish(flow, answer.record)
        self._forget(flow, state)

    def _publish(self, flow: http.HTTPFlow, record: Record, headers_in: Headers = ()) -> None:
        self.log.record(record)
        annotate(flow, record.as_dict(), headers_in)
        self.report.add(record)

    def _untouched(self, flow: http.HTTPFlow, state: FlowState, e: Exception) -> None:
        logger.warning("cf_edge: %s passed through untouched after an internal error: %r",
                       wire_text(flow.request.pretty_url), e, exc_info=True)
        self._forget(flow, state)

    def _forget(self, flow: http.HTTPFlow, state: FlowState) -> None:
        """The flow is done: its state goes (it is never saved), its cache lock too."""
        flowstate.detach(flow)
        self._release(state)


def _unusable(flow: http.HTTPFlow, ex: Exchange) -> tuple[int, str] | None:
    """A live origin response Cloudflare would have turned into a 52x (facts 14.4): headers
    over its limit (520), or one that came after its read timeout (524). mitmproxy cannot
    answer before the origin does, so a 524 reaches the visitor when the late response
    arrives."""
    resp = flow.response
    assert resp is not None
    if errors.headers_too_large(tuple(resp.headers.fields)):
        return 520, (f"the response headers are larger than the "
                     f"{errors.MAX_RESPONSE_HEADERS // 1024} KB Cloudflare accepts")
    timeout = ex.state.cache.read_timeout or errors.READ_TIMEOUT
    sent = flow.request.timestamp_end or flow.request.timestamp_start
    if resp.timestamp_start and sent and resp.timestamp_start - sent > timeout:
        return 524, (f"the origin took {resp.timestamp_start - sent:.0f} s to answer, more "
                     f"than the {timeout} s read timeout")
    return None
