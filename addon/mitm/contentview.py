"""The "cloudflare edge" content view for mitmweb and the mitmproxy console, chosen by itself
for every flow the edge handled: the decision on top as readable YAML (for a 304, the
validator the browser sent and what it was compared with), the response headers before and
after the edge, then the body as mitmproxy's automatic view would show it."""

from __future__ import annotations

from typing import Any

import yaml
from mitmproxy import contentviews
from mitmproxy.contentviews import Contentview
from mitmproxy.contentviews import Metadata

from addon.exchange.record import FIELDS
from addon.http.headers import wire_text

META = "cf_edge"
# the record's fields in its own order, but for the time, the flag and the findings
SHOWN = tuple(name for name in FIELDS if name not in ("ts", "changed", "diagnoses"))
PRIORITY = 10  # above every view of mitmproxy's own (they return at most about 1)
VALIDATORS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
              "if-range")  # fmt: skip


class EdgeView(Contentview):
    name = "cloudflare edge"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        flow = metadata.flow
        record = getattr(flow, "metadata", {}).get(META) if flow is not None else None
        if not record:
            return "The Cloudflare edge addon did not handle this flow.\n"
        doc: dict[str, Any] = {"decision": {k: _plain(record[k]) for k in SHOWN
                                            if record.get(k) not in (None, [], {}, "")}}
        if record.get("diagnoses"):
            doc["origin diagnosis"] = [dict(d) for d in record["diagnoses"]]
        request = getattr(flow, "request", None)
        if record.get("not_modified") and request is not None:
            doc["revalidation"] = _revalidation(record, request)
        doc["headers from the origin (or the stored object)"] = _headers(
            record.get("headers_in", ()))
        response = getattr(flow, "response", None)
        if response is not None:
            doc["headers to the visitor"] = _headers(response.headers.fields)
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=88,
                              default_flow_style=False)
        return text + "\n# the body, as mitmproxy's automatic view shows it\n" + self._body(
            data, metadata)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        flow = metadata.flow
        return PRIORITY if flow is not None and getattr(flow, "metadata", {}).get(META) else -1

    def _body(self, data: bytes, metadata: Metadata) -> str:
        if not data:
            return "(no body)\n"
        best, view = -1.0, None
        for other in contentviews.registry.values():
            if other is self:
                continue
            try:
                priority = other.render_priority(data, metadata)
            except Exception:  # another view's problem is not this one's
                continue
            if view is None or priority > best:
                best, view = priority, other
        if view is None:
            return ""
        try:
            return view.prettify(data, metadata)
        except Exception:
            return contentviews.raw.prettify(data, metadata)


def _plain(value: Any) -> Any:
    """A value as YAML writes it plainly: StrEnums as strings, tuples as lists."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _headers(fields) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in fields:
        name = wire_text(k)
        out[name] = f"{out[name]}, {wire_text(v)}" if name in out else wire_text(v)
    return out


def _revalidation(record: dict[str, Any], request) -> dict[str, Any]:
    sent = {k: v for k, v in request.headers.items() if k.lower() in VALIDATORS}
    by = record["not_modified"]
    return {
        "304 from": str(by),
        "the browser sent": sent or "(no validator)",
        "compared with": {"ETag": record.get("etag_out") or "(none)"} if by == "edge" else
        "the origin compared them with its own validators; the edge relayed its 304",
    }


class ContentView:
    """Registers the view for as long as the addon is loaded."""

    def __init__(self) -> None:
        self.view = EdgeView()

    def load(self, loader) -> None:
        contentviews.add(self.view)

    def done(self) -> None:
        contentviews.remove(self.view)
