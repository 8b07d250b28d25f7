"""The edge's response side: the origin's answer (or the stored object served in `request`)
goes through the rest of the exchange, and only then does the flow change. The steps that
need no waiting run in the hook itself; a big re-code (in a worker thread) or a second
request to the origin continues in a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from mitmproxy import http

from addon.exchange import Answer
from addon.exchange import AskOrigin
from addon.exchange import Base
from addon.exchange import Delivered
from addon.exchange import Exchange
from addon.exchange import FromCache
from addon.exchange import NeedRecode
from addon.exchange import Step
from addon.exchange import errors
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm.convert import apply_final
from addon.mitm.convert import clock
from addon.mitm.convert import response_facts
from addon.mitm.convert import stored_response
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.outcomes import Outcomes
from addon.mitm.probe import OriginProbe
from addon.mitm.replay import ask_again

logger = logging.getLogger("cf_edge")

# Re-code on the event loop when the origin's body is at most INLINE_RAW bytes and decodes
# to at most INLINE_DECODED; anything larger goes to a worker thread (the codecs release
# the GIL), so small responses never wait behind a big one and never pay for the hop.
INLINE_RAW = 64 * 1024
INLINE_DECODED = 256 * 1024
INLINE_HTML = 64 * 1024  # rewriting costs about 20 ms per MB (docs/performance.md)

Later = Coroutine[Any, Any, None] | None  # what a hook returns: a coroutine when it must wait


class EdgeResponses:
    def __init__(self, outcomes: Outcomes, probe: OriginProbe) -> None:
        self.outcomes, self.probe = outcomes, probe

    def response(self, flow: http.HTTPFlow) -> Later:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.VISITOR:
            return None
        try:
            if flow.response is None:
                self.outcomes.forget(flow, state)
                return None
            ex = state.exchange
            if ex.state.request.method != flow.request.method:
                flow.request.method = ex.state.request.method  # HEAD went out as GET (1.7.1)
            if state.stream is not None:
                self.stream_ended(flow, state)
                return None
            return self._drive(flow, state, self._first(flow, state))
        except Exception as e:
            self.outcomes.untouched(flow, state, e)
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
            self.outcomes.untouched(flow, state, e)

    def _deliver(self, flow: http.HTTPFlow, state: FlowState, step: Step) -> None:
        """Everything computed: only now the flow changes."""
        ex = state.exchange
        if isinstance(step, Answer):  # the origin's answer was unusable: a 52x
            self.outcomes.answer(flow, state, step)
            return
        assert isinstance(step, Delivered) and ex.source is not None
        if step.base is Base.AGAIN:
            flow.response = state.again
        elif step.base is Base.STORED:  # REVALIDATED, STALE
            assert ex.served is not None
            flow.response = stored_response(ex.served.response, flow)
        apply_final(flow, step.final)
        self.outcomes.publish(flow, step.record, ex.source.headers)
        if ex.origin is not None and not ex.from_store:
            try:
                self.probe.consider(flow, ex, ex.origin, step.final.etag)
            except Exception:  # a diagnosis aid: never at the expense of the response
                logger.warning("cf_edge: origin probe of %s not started",
                               wire_text(flow.request.pretty_url), exc_info=True)
        self.outcomes.forget(flow, state)

    def stream_ended(self, flow: http.HTTPFlow, state: FlowState, cut: str = "") -> None:
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
            self.outcomes.forget(flow, state)
            return
        self.outcomes.publish(flow, step.record, ex.origin.headers)
        self.outcomes.forget(flow, state)


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
