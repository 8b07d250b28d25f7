"""Driving an exchange synchronously, without a proxy: `fetch` plays the origin. For
explain and the core tests; the mitmproxy layer drives the same machine across its hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from addon.exchange.answers import Answer
from addon.exchange.egress import Final
from addon.exchange.machine import Exchange
from addon.exchange.record import Record
from addon.exchange.steps import AskOrigin
from addon.exchange.steps import Delivered
from addon.exchange.steps import EdgeContext
from addon.exchange.steps import FromCache
from addon.exchange.steps import NeedRecode
from addon.exchange.steps import Step
from addon.http.messages import Request
from addon.http.messages import Response

Fetch = Callable[[Request], Response]


@dataclass
class Outcome:
    exchange: Exchange
    sent: list[Request] = field(default_factory=list)  # what the origin was asked, in order

    @property
    def result(self) -> Delivered | Answer:
        assert self.exchange.result is not None
        return self.exchange.result

    @property
    def final(self) -> Final:
        """What left for the visitor."""
        return self.result.final

    @property
    def record(self) -> Record:
        return self.result.record


def run(ctx: EdgeContext, request: Request, fetch: Fetch, now: float) -> Outcome:
    """One request through every phase; `fetch` gets each request as the edge sends it."""
    out = Outcome(Exchange(ctx, request, now))
    ex = out.exchange

    def ask(step: AskOrigin) -> Response:
        out.sent.append(step.request.applied_to(ex.state.request))
        return fetch(out.sent[-1])

    step: Step = ex.begin()
    while not isinstance(step, Delivered | Answer):
        if isinstance(step, AskOrigin):
            step = ex.answered(ask(step))
        elif isinstance(step, FromCache):
            if step.background is not None:  # stale-while-revalidate, answered at once here
                ex.background_answered(ask(AskOrigin(step.background)), now)
            step = ex.from_cache()
        elif isinstance(step, NeedRecode):
            done = ex.recode()
            assert done is not None  # without a budget it finishes or passes through
            step = done
        else:  # nothing streams without a proxy
            raise AssertionError(f"unexpected step {step!r}")
    return out
