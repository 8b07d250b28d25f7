"""When the exchange with the origin fails (mitmproxy's `error` hook): Cloudflare's 52x,
or the expired object served STALE (facts 6.21), answered to an HTTP/1 visitor through
error_page.py; a stream cut short is recorded as such.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from mitmproxy import http

from addon.exchange import Answer
from addon.exchange import Delivered
from addon.exchange import FromCache
from addon.exchange import NeedRecode
from addon.exchange import Step
from addon.exchange import errors
from addon.http.headers import wire_text
from addon.mitm import error_page
from addon.mitm import flowstate
from addon.mitm.convert import final_response
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.origins import Origins
from addon.mitm.outcomes import Outcomes
from addon.mitm.responses import EdgeResponses

logger = logging.getLogger("cf_edge")

Later = Coroutine[Any, Any, None] | None  # what a hook returns: a coroutine when it must wait


class OriginFailures:
    def __init__(self, outcomes: Outcomes, origins: Origins, responses: EdgeResponses) -> None:
        self.outcomes, self.origins, self.responses = outcomes, origins, responses

    def load(self, loader) -> None:
        error_page.install()

    def done(self) -> None:
        error_page.uninstall()

    def error(self, flow: http.HTTPFlow) -> Later:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.VISITOR:
            return None
        if state.stream is not None:
            self.responses.stream_ended(flow, state, cut=flow.error.msg if flow.error else "cut")
            return None
        if flow.error is None or flow.response is not None or state.exchange.result:
            self.outcomes.forget(flow, state)
            return None
        failure = errors.origin_failure(
            flow.error.msg, connected=flow.server_conn.timestamp_tcp_setup is not None,
            tls=flow.request.scheme == "https")
        if failure is None:  # the visitor went away, or mitmproxy's own limits
            self.outcomes.forget(flow, state)
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
            self.outcomes.forget(flow, state)
            return
        if not sent and flow.live:
            step.record.status_out = 502
            step.record.notes.append(
                f"Cloudflare answers {step.final.status}; mitmproxy sent its own 502 instead, "
                "because it does not let an addon answer a failed exchange on "
                f"{flow.request.http_version} (mitmproxy PR #7999)")
        self.outcomes.publish(flow, step.record)
        self.outcomes.forget(flow, state)
