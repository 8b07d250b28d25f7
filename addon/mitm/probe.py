"""cf_diagnose_probe: once per URL with a strong ETag, the edge asks the origin again with
the weakened W/ tag a browser behind Cloudflare sends; a 200 means the origin's 304s are
lost behind Cloudflare (addon/diagnosis.py judges)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from mitmproxy import ctx
from mitmproxy import http

from addon import diagnosis
from addon.exchange import Exchange
from addon.http.conditional import CONDITIONAL_HEADERS
from addon.http.messages import Response
from addon.mitm import flowstate
from addon.mitm import options
from addon.mitm.convert import request_facts
from addon.mitm.convert import response_facts
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.log import EdgeLog
from addon.mitm.replay import send_copy
from addon.mitm.run_report import RunReport

logger = logging.getLogger("cf_edge")

MARK = "cf_edge_probe"  # flow.metadata of a probe: the URL it probes


class OriginProbe:
    def __init__(self, log: EdgeLog, report: RunReport) -> None:
        self.log, self.report = log, report
        self.enabled = False
        self.probed: OrderedDict[str, None] = OrderedDict()  # URLs probed, oldest first

    def load(self, loader) -> None:
        loader.add_option(
            "cf_diagnose_probe", bool, False,
            "Origin diagnosis: once per URL with a strong ETag, ask the origin again with the "
            "weakened W/ tag a browser behind Cloudflare sends, to find origins whose 304s "
            "are lost (one extra origin request per URL).",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_diagnose_probe" in updated:
            self.enabled = bool(ctx.options.cf_diagnose_probe)

    def consider(self, flow: http.HTTPFlow, ex: Exchange, origin: Response,
                 visitor_etag: bytes | None) -> None:
        """After a visitor's response from the origin: probe its URL, once."""
        if not self.enabled or not flow.live:
            return
        url = flow.request.pretty_url
        tag = diagnosis.probe_needed(request_facts(flow), origin, visitor_etag)
        if tag is None or url in self.probed:
            return
        self.probed[url] = None
        if len(self.probed) > diagnosis.REMEMBERED_URLS:
            self.probed.popitem(last=False)
        edits = [(name, None) for name in CONDITIONAL_HEADERS] + [(b"if-none-match", tag)]
        send_copy(flow, {MARK: url}, FlowState(ex, Role.PROBE), edits)

    def response(self, flow: http.HTTPFlow) -> None:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.PROBE:
            return
        flowstate.detach(flow)
        if flow.response is None:
            return
        finding = diagnosis.probe_finding(request_facts(flow), response_facts(flow.response))
        url = flow.metadata[MARK]
        if finding is None:
            flow.comment = (f"Cloudflare edge: probe of {url}: the origin answered "
                            f"{flow.response.status_code} to the weakened tag")
            return
        flow.comment = f"Cloudflare edge: probe of {url}: {finding.message}"
        logger.warning("cf_edge: origin diagnosis for %s: %s. Fix: %s", url, finding.message,
                       finding.fix)
        self.report.add_finding(url, finding.as_dict)
        self.log.line({"ts": round(time.time(), 3), "url": url, "probe": True,
                       "status": flow.response.status_code, "diagnoses": [finding.as_dict]})

    def error(self, flow: http.HTTPFlow) -> None:
        state = flowstate.of(flow)
        if state is not None and state.role is Role.PROBE:
            flowstate.detach(flow)
