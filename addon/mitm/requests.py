"""The edge's request side: each visitor's flow gets its Exchange (the request phases run),
then the exchange begins: the edge answers itself, serves a stored object, or sends the
request on to the origin changed as Cloudflare changes it. A request waits only when
another one is filling the same object (request collapsing) or the origin must be checked.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy.utils import human

from addon.diagnosis import OriginDiagnosis
from addon.exchange import Answer
from addon.exchange import AskOrigin
from addon.exchange import EdgeContext
from addon.exchange import Exchange
from addon.exchange import FromCache
from addon.exchange import Step
from addon.exchange.content import SizeProbes
from addon.exchange.headers import TRACE_HEADER
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm import options
from addon.mitm.cache import EdgeCache
from addon.mitm.convert import META
from addon.mitm.convert import clock
from addon.mitm.convert import forward_proxy
from addon.mitm.convert import request_facts
from addon.mitm.convert import response_facts
from addon.mitm.convert import stored_response
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.origins import Origins
from addon.mitm.outcomes import Outcomes
from addon.mitm.zone_loader import ZoneLoader

logger = logging.getLogger("cf_edge")

DEFAULT_DECODE_LIMIT = "256m"

Later = Coroutine[Any, Any, None] | None  # what a hook returns: a coroutine when it must wait


class EdgeRequests:
    def __init__(self, zones: ZoneLoader, cache: EdgeCache, origins: Origins,
                 outcomes: Outcomes, diagnosis: OriginDiagnosis) -> None:
        self.zones, self.cache, self.origins = zones, cache, origins
        self.outcomes, self.diagnosis = outcomes, diagnosis
        self.limit = human.parse_size(DEFAULT_DECODE_LIMIT)
        self.trace = False
        self.anticomp = False  # mitmproxy's own option, read once per change
        self.probes = SizeProbes()
        self.shared: EdgeContext | None = None  # what every exchange shares, until it changes
        self.skipped = 0  # flows the edge had handled already (replaying its own output)

    def done(self) -> None:
        if self.skipped:
            logger.warning("cf_edge: %d flow(s) skipped: the edge had already handled them "
                           "(this recording is the edge's own output; replay the original "
                           "instead)", self.skipped)

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

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_decode_limit" in updated:
            self.limit = options.size("cf_decode_limit")
        if "cf_trace" in updated:
            self.trace = bool(ctx.options.cf_trace)
        if "anticomp" in updated:
            self.anticomp = bool(ctx.options.anticomp)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # the visitor's headers, before anticomp/anticache change them in `request`
        zone = self.zones.zone
        if zone is None or flowstate.of(flow) is not None:
            return  # no rules, or one of the edge's own requests
        if flow.metadata.get(META, {}).get("handled"):
            self.skipped += 1  # converted in an earlier run over this recording
            self.outcomes.report.skipped()
            return
        shared = self.shared
        if shared is None or shared.zone is not zone or shared.store is not self.cache.store \
                or shared.limit != self.limit or shared.trace != self.trace:
            shared = self.shared = EdgeContext(zone, self.cache.store, self.diagnosis,
                                               self.limit, self.trace, self.probes)
        try:
            ex = Exchange(shared, request_facts(flow), clock(flow), flow.live)
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
            self.outcomes.forget(flow, state)
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
            self.outcomes.forget(flow, state)

    async def _check_origin(self, flow: http.HTTPFlow, state: FlowState, step: AskOrigin
                            ) -> None:
        """Is the origin there? If not: Cloudflare's 52x, or the expired object STALE."""
        try:
            failure = await self.origins.check(flow)
            next_step: Step = step
            if failure is not None:
                self.outcomes.release(state)
                next_step = state.exchange.failed(*failure)
            assert isinstance(next_step, AskOrigin | FromCache | Answer)
            self._to_origin_or_answer(flow, state, next_step)
        except Exception:
            logger.exception("cf_edge: %s: sent to the origin untouched after an internal "
                             "error", wire_text(flow.request.pretty_url))
            self.outcomes.forget(flow, state)

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
            self.outcomes.answer(flow, state, step)
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
