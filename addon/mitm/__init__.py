"""The mitmproxy layer, the only part of the product that imports mitmproxy: small addons,
each with its own options and hooks, sharing per-flow state through one typed object in
flow.metadata (flowstate.py).

    ZoneLoader      cf_rules: the rules file, reloaded when it changes
    EdgeLog         cf_log, cf_eventlog: the JSON Lines log and the event log
    RunReport       cf_report: the report of the run
    EdgeCache       cf_cache, cf_cache_size: the store, its commands, request collapsing,
                    stale-while-revalidate
    Origins         cf_connect_timeout: is the origin there (the 52x answers)
    OriginProbe     cf_diagnose_probe: the origin diagnosis's extra request
    HarCodings      a HAR replay: each body encoded again as the HAR says the origin sent it
    EdgeRequests    cf_decode_limit, cf_trace: each visitor's exchange, its request side
    Streams         cf_stream: bodies that stream through the edge
    EdgeResponses   the response side of the exchange
    OriginFailures  the origin failed: a 52x, or a stale object
    ContentView     the "cloudflare edge" content view
"""

from __future__ import annotations

from addon.diagnosis import OriginDiagnosis
from addon.mitm.cache import EdgeCache
from addon.mitm.contentview import ContentView
from addon.mitm.failures import OriginFailures
from addon.mitm.har import HarCodings
from addon.mitm.log import EdgeLog
from addon.mitm.origins import Origins
from addon.mitm.outcomes import Outcomes
from addon.mitm.probe import OriginProbe
from addon.mitm.requests import EdgeRequests
from addon.mitm.responses import EdgeResponses
from addon.mitm.run_report import RunReport
from addon.mitm.streams import Streams
from addon.mitm.zone_loader import ZoneLoader

OPTIONS = ("cf_rules", "cf_log", "cf_eventlog", "cf_report", "cf_cache", "cf_cache_size",
           "cf_connect_timeout", "cf_diagnose_probe", "cf_stream", "cf_decode_limit",
           "cf_trace")  # fmt: skip


def addons() -> list[object]:
    """The edge's addons, in the order mitmproxy calls their hooks."""
    zones = ZoneLoader(OPTIONS)
    log, report, cache, origins = EdgeLog(), RunReport(), EdgeCache(), Origins()
    outcomes = Outcomes(log, report, cache)
    probe = OriginProbe(log, report)
    requests = EdgeRequests(zones, cache, origins, outcomes, OriginDiagnosis())
    responses = EdgeResponses(outcomes, probe)
    failures = OriginFailures(outcomes, origins, responses)
    return [zones, log, report, cache, origins, probe, HarCodings(report), requests,
            Streams(), responses, failures, ContentView()]
