"""The edge's request and response pipeline, phase by phase, in Cloudflare's order.

Request:  http_config_settings -> http_request_cache_settings -> origin request headers
Response: http_response_compression -> content coding + ETag -> response headers

Each phase is a small function over plain data; later features (HTML rewriting, the
edge cache) slot in as further phases. Nothing here knows about mitmproxy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from addon import codings
from addon.accept_encoding import IDENTITY
from addon.accept_encoding import parse_accept_encoding
from addon.compression_policy import ORIGIN_ACCEPT_ENCODING
from addon.decision import CompressionRule
from addon.decision import Decision
from addon.decision import ResponseInputs
from addon.decision import decide
from addon.decision import origin_coding
from addon.decision import precheck
from addon.etag import parse_etag
from addon.facts import RequestFacts
from addon.facts import ResponseFacts
from addon.facts import header
from addon.facts import header_values
from addon.rules import FieldValues
from addon.zone import DISABLED_BY_RESPECT_STRONG_ETAGS
from addon.zone import HTML_FEATURES
from addon.zone import Zone


@dataclass(frozen=True)
class RequestState:
    """What the request phases decided; carried to the response."""

    request: RequestFacts
    visitor_accept_encoding: str | None
    origin_accept_encoding: str | None  # what the origin is sent; None removes the header
    respect_strong_etags: bool
    features: dict[str, Any]  # zone settings after configuration rules
    rules: tuple[str, ...] = ()  # labels of the rules that matched, in phase order


@dataclass(frozen=True)
class ResponsePlan:
    """The decision and everything needed to apply it to a response."""

    decision: Decision
    body: bytes | None  # new raw body, or None to keep the origin's
    headers: dict[str, str | None]  # header -> new value; None deletes it
    drop_content_length: bool
    rules: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


# ---- request phases -------------------------------------------------------------------------


def on_request(zone: Zone, request: RequestFacts) -> RequestState:
    env = FieldValues(request)
    features = dict(zone.settings)
    matched: list[str] = []
    # http_config_settings: set_config, last match wins per setting (facts 4.4)
    for rule in zone.matching("configuration_rules", env):
        features.update(rule.action_parameters)
        matched.append(rule.label)
    # http_request_cache_settings: set_cache_settings, last match wins (facts 5.1.7)
    cache: dict[str, Any] = {}
    for rule in zone.matching("cache_rules", env):
        cache.update(rule.action_parameters)
        matched.append(rule.label)
    rse = bool(cache.get("respect_strong_etags", False))
    if rse:
        for name in DISABLED_BY_RESPECT_STRONG_ETAGS:  # facts 2.2.3
            features[name] = False
    visitor = header(request.headers, b"accept-encoding")
    visitor_ae = visitor.decode("latin-1") if visitor is not None else None
    # facts 1.3.1 / 1.3.3: overwritten unless Respect Strong ETags forwards the visitor's
    origin_ae = visitor_ae if rse else ORIGIN_ACCEPT_ENCODING
    return RequestState(request, visitor_ae, origin_ae, rse, features, tuple(matched))


# ---- response phases ------------------------------------------------------------------------


def on_response(zone: Zone, state: RequestState, response: ResponseFacts) -> ResponsePlan:
    """Decide, then re-encode the body if needed. CPU-bound: run it off the event loop."""
    env = FieldValues(state.request, response)
    rules = list(state.rules)
    # http_response_compression: compress_response, last match wins (facts 0.11)
    compression = None
    for rule in zone.matching("compression_rules", env):
        compression = CompressionRule(rule.label, rule.action_parameters["algorithms"])
    if compression:
        rules.append(compression.label)

    content_encoding = tuple(
        v.decode("latin-1").strip() for v in header_values(response.headers, b"content-encoding")
    )
    media = env["http.response.content_type.media_type"].decode("latin-1")
    inputs = ResponseInputs(
        method=state.request.method,
        status=response.status,
        media_type=media,
        content_encoding=content_encoding,
        cache_control=(header(response.headers, b"cache-control") or b"").decode("latin-1"),
        etag=parse_etag([v.decode("latin-1") for v in header_values(response.headers, b"etag")]),
        streamed=response.streamed or response.body is None,
        identity_size=None,
        visitor=parse_accept_encoding(state.visitor_accept_encoding),
        plan=zone.plan,
        brotli=bool(zone.settings.get("brotli", True)),
        respect_strong_etags=state.respect_strong_etags,
        compression_rule=compression,
    )
    identity = None
    decision = precheck(inputs)
    if decision is None:
        src = origin_coding(content_encoding)
        assert src is not None and response.body is not None
        try:
            identity = codings.decode(response.body, src)
            inputs = replace(inputs, identity_size=len(identity))
        except codings.DecodeError as e:
            inputs = replace(inputs, decode_error=str(e))
        decision = decide(inputs)
    notes = _html_feature_notes(state, inputs)
    if not decision.changed:
        return ResponsePlan(decision, None, {}, False, tuple(rules), notes)
    assert identity is not None
    new_body = codings.encode(identity, decision.encoding_out)
    headers: dict[str, str | None] = {
        "content-encoding": None if decision.encoding_out == IDENTITY else decision.encoding_out,
        "etag": decision.etag_out,
        "vary": _vary_with_accept_encoding(header(response.headers, b"vary")),
    }
    return ResponsePlan(decision, new_body, headers, True, tuple(rules), notes)


def _vary_with_accept_encoding(vary: bytes | None) -> str:
    current = vary.decode("latin-1") if vary else ""
    names = [n.strip().lower() for n in current.split(",") if n.strip()]
    if "accept-encoding" in names or "*" in names:
        return current
    return f"{current}, Accept-Encoding" if current else "Accept-Encoding"


def _html_feature_notes(state: RequestState, inputs: ResponseInputs) -> tuple[str, ...]:
    """Name HTML features that real Cloudflare would run here; a later phase emulates them."""
    if inputs.media_type not in ("text/html", "application/xhtml+xml"):
        return ()
    if "no-transform" in inputs.cache_control.lower():
        return ()
    active = [label for key, label in HTML_FEATURES.items() if state.features.get(key)]
    if not active:
        return ()
    return (
        f"{', '.join(active)} on for this HTML response: real Cloudflare removes its ETag "
        "(facts 2.2.4); HTML rewriting is not emulated in this version",
    )


# ---- the log record -------------------------------------------------------------------------


def record(
    state: RequestState, response: ResponseFacts, plan: ResponsePlan, url: str
) -> dict[str, Any]:
    """One JSON Lines record; also stored in flow.metadata (plain types only)."""
    d = plan.decision
    etag_in = header(response.headers, b"etag")
    return {
        "ts": round(time.time(), 3),
        "method": state.request.method,
        "url": url,
        "status": response.status,
        "accept_encoding": state.visitor_accept_encoding,
        "origin_accept_encoding": state.origin_accept_encoding,
        "encoding_in": d.encoding_in,
        "encoding_out": d.encoding_out,
        "action": d.action,
        "etag_in": etag_in.decode("latin-1") if etag_in is not None else None,
        "etag_out": d.etag_out,
        "etag_action": d.etag_action,
        "changed": d.changed,
        "reason": d.reason,
        "basis": d.basis,
        "table_row": d.table_row or None,
        "respect_strong_etags": state.respect_strong_etags,
        "rules": list(plan.rules),
        "notes": list(plan.notes),
        "bytes_in": len(response.body or b""),
        "bytes_out": len(plan.body) if plan.body is not None else len(response.body or b""),
    }
