"""HAR replays as faithful as the HAR allows: mitmproxy's HAR loader decodes every body and
drops `Content-Encoding` (mitmproxy/io/har.py, "Remove compression"), so a session replayed
from its HAR would look to the edge as if the origin never compressed anything. The HAR
itself still lists the origin's `Content-Encoding` for each entry: this addon reads it and,
before the edge sees the flow, encodes the body again with that coding and restores the
header. The sizes are then approximate (our encoder, not the origin's); the record's notes
say so. What cannot be restored (a coding this tool cannot write, a list of codings) is said
at the end of the run, in the event log and in the report's headline.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from mitmproxy import ctx
from mitmproxy import http

from addon.http import codings
from addon.mitm.run_report import RunReport

logger = logging.getLogger("cf_edge")

NOTE = "cf_edge_har"  # flow.metadata: what was done to a HAR entry's body
RESTORABLE = ("gzip", "br", "zstd", "deflate")
Key = tuple[str, str]  # method, URL: the loader keeps the HAR's order, so FIFO per key


class HarCodings:
    def __init__(self, report: RunReport) -> None:
        self.report = report
        self.recorded: dict[Key, list[str]] = {}
        self.path: str | None = None
        self.restored = 0
        self.unrestored: dict[str, int] = defaultdict(int)

    def configure(self, updated: set[str]) -> None:
        if "rfile" not in updated:
            return
        path = ctx.options.rfile
        self.recorded, self.path = {}, None
        if path and Path(path).suffix.lower() == ".har":
            try:
                self.recorded = recorded_codings(json.loads(Path(path).read_text("utf-8")))
                self.path = path
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("cf_edge: %s: cannot read the HAR's Content-Encoding (%s); "
                               "its bodies are replayed decoded, as mitmproxy loads them", path,
                               e)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.recorded or flow.live or flow.response is None:
            return
        key = (flow.request.method.upper(), flow.request.url)
        pending = self.recorded.get(key)
        if not pending:
            return
        coding = pending.pop(0)
        response = flow.response
        if "content-encoding" in response.headers or not response.raw_content:
            return  # not decoded by the loader, or nothing to encode
        if coding.lower() not in RESTORABLE:
            self.unrestored[coding] += 1
            flow.metadata[NOTE] = (f"the HAR lists Content-Encoding: {coding}, which this "
                                   "tool cannot re-create: replayed decoded, as identity")
            self.report.har(self.restored, dict(self.unrestored))  # the report is written first
            return
        size = len(response.raw_content)
        response.raw_content = codings.encode(response.raw_content, coding.lower())
        response.headers["content-encoding"] = coding
        if "content-length" in response.headers:
            response.headers["content-length"] = str(len(response.raw_content))
        self.restored += 1
        self.report.har(self.restored, dict(self.unrestored))
        flow.metadata[NOTE] = (f"HAR replay: the body ({size} bytes decoded) was encoded "
                               f"again as {coding}, the coding the HAR lists; sizes are "
                               "approximate")

    def done(self) -> None:
        if self.path is None:
            return
        lost = sum(self.unrestored.values())
        if self.restored or lost:
            logger.info("cf_edge: %s: %d response(s) encoded again with the Content-Encoding "
                        "the HAR lists (sizes approximate)", self.path, self.restored)
        if lost:
            logger.warning("cf_edge: %s: %d response(s) replayed decoded: the HAR lists a "
                           "coding this tool cannot re-create (%s)", self.path, lost,
                           ", ".join(sorted(self.unrestored)))


def recorded_codings(har: dict[str, Any]) -> dict[Key, list[str]]:
    """Each HAR entry's recorded Content-Encoding, by what mitmproxy's loader makes of it."""
    out: dict[Key, list[str]] = {}
    for entry in har["log"]["entries"]:
        if not entry.get("response", {}).get("content", {}).get("text"):
            continue  # no body, nothing the loader decoded
        headers = entry.get("response", {}).get("headers") or []
        coding = next((h.get("value", "") for h in headers
                       if str(h.get("name", "")).lower() == "content-encoding"), "")
        if not coding.strip() or coding.strip().lower() == "identity":
            continue
        key = (entry["request"]["method"].upper(), entry["request"]["url"])
        out.setdefault(key, []).append(coding.strip())
    return out
