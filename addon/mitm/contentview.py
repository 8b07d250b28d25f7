"""The "cloudflare edge" content view for mitmweb and the mitmproxy console: a flow's
decision record and its response headers before and after the edge."""

from __future__ import annotations

from mitmproxy import contentviews
from mitmproxy.contentviews import Contentview
from mitmproxy.contentviews import Metadata

from addon.exchange.record import FIELDS
from addon.http.headers import wire_text

META = "cf_edge"
# the record's fields in its own order, but for the time, the flag and the findings
SHOWN = tuple(name for name in FIELDS if name not in ("ts", "changed", "diagnoses"))


class EdgeView(Contentview):
    name = "cloudflare edge"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        flow = metadata.flow
        record = getattr(flow, "metadata", {}).get(META) if flow is not None else None
        if not record:
            return "The Cloudflare edge addon did not handle this flow."
        lines = ["decision:"]
        for key in SHOWN:
            value = record.get(key)
            if value not in (None, [], {}, ""):
                lines.append(f"  {key}: {value}")
        for d in record.get("diagnoses") or ():
            lines.append(f"  diagnosis {d['code']}: {d['message']} (fix: {d['fix']})")
        lines.append("response headers from the origin (or the stored object):")
        lines += [f"  {wire_text(k)}: {wire_text(v)}" for k, v in record.get("headers_in", ())]
        response = getattr(flow, "response", None)
        if response is not None:
            lines.append("response headers to the visitor:")
            lines += [f"  {wire_text(k)}: {wire_text(v)}" for k, v in response.headers.fields]
        return "\n".join(lines) + "\n"

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return -1  # chosen by name, never instead of the body's own view


class ContentView:
    """Registers the view for as long as the addon is loaded."""

    def __init__(self) -> None:
        self.view = EdgeView()

    def load(self, loader) -> None:
        contentviews.add(self.view)

    def done(self) -> None:
        contentviews.remove(self.view)
