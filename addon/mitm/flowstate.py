"""The edge's state of one flow between mitmproxy's hooks: one typed object in
flow.metadata. It never reaches a saved flow (`-w`, mitmweb's save): the hook that ends the
flow takes it off, and a copy of the flow does not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from mitmproxy import http

from addon.compression.stream import Threaded
from addon.exchange import Exchange
from addon.exchange import Step
from addon.http.messages import Response

KEY = "cf_edge_state"


class Role(Enum):
    VISITOR = "a visitor's request"
    BACKGROUND = "the edge's stale-while-revalidate revalidation"
    REFETCH = "the edge asking the origin again for a visitor's request"
    PROBE = "an origin-diagnosis probe (cf_diagnose_probe)"


@dataclass(eq=False)
class FlowState:
    exchange: Exchange
    role: Role = Role.VISITOR
    step: Step | None = None  # the last step the exchange asked for
    recorded: Response | None = None  # replaying: the response the recording holds
    stream: Threaded | None = None  # the body streaming through, once it started
    fill: str | None = None  # the cache key this flow fills (others wait for it)
    again: http.Response | None = None  # the origin's second answer, when it was asked again

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None  # flow.copy() and flow.backup() do not carry it


def of(flow: http.HTTPFlow) -> FlowState | None:
    state = flow.metadata.get(KEY)
    return state if isinstance(state, FlowState) else None


def attach(flow: http.HTTPFlow, state: FlowState) -> None:
    flow.metadata[KEY] = state


def detach(flow: http.HTTPFlow) -> FlowState | None:
    state = flow.metadata.pop(KEY, None)
    return state if isinstance(state, FlowState) else None
