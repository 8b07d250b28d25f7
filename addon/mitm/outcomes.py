"""What becomes of a visitor's flow once its exchange is done, whichever hook finishes it:
the record logged, put on the flow and counted, the flow's state dropped, its cache lock
released.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from addon.exchange import Answer
from addon.exchange import Record
from addon.http.headers import Headers
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm.cache import EdgeCache
from addon.mitm.convert import annotate
from addon.mitm.convert import final_response
from addon.mitm.flowstate import FlowState
from addon.mitm.har import NOTE as HAR_NOTE
from addon.mitm.log import EdgeLog
from addon.mitm.run_report import RunReport

logger = logging.getLogger("cf_edge")


class Outcomes:
    def __init__(self, log: EdgeLog, report: RunReport, cache: EdgeCache) -> None:
        self.log, self.report, self.cache = log, report, cache

    def publish(self, flow: http.HTTPFlow, record: Record, headers_in: Headers = ()) -> None:
        if (note := flow.metadata.get(HAR_NOTE)) is not None:
            record.notes = [*record.notes, note]  # what the HAR replay did to the body
        entry = record.as_dict()
        self.log.record(record, entry)  # written before annotate() adds to the entry
        annotate(flow, entry, headers_in)
        self.report.add(record)

    def answer(self, flow: http.HTTPFlow, state: FlowState, answer: Answer) -> None:
        """The edge answers itself (its /cdn-cgi/ paths, a 52x): the response, logged."""
        flow.response = final_response(answer.final)
        self.publish(flow, answer.record)
        self.forget(flow, state)

    def untouched(self, flow: http.HTTPFlow, state: FlowState, e: Exception) -> None:
        logger.warning("cf_edge: %s passed through untouched after an internal error: %r",
                       wire_text(flow.request.pretty_url), e, exc_info=True)
        self.forget(flow, state)

    def release(self, state: FlowState) -> None:
        """The flow no longer fills its object: whoever waits for it looks again."""
        if state.fill is not None:
            self.cache.release(state.fill)
            state.fill = None

    def forget(self, flow: http.HTTPFlow, state: FlowState) -> None:
        """The flow is done: its state goes (it is never saved), its cache lock too."""
        flowstate.detach(flow)
        self.release(state)
