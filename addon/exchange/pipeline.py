"""The edge's request and response pipeline, phase by phase, in Cloudflare's order.

Request:  /cdn-cgi/ -> http_config_settings -> http_request_cache_settings -> cache lookup
          -> origin request headers
Response: http_response_cache_settings -> cache fill / revalidation -> (the stored object or
          the origin's response) http_response_compression -> HTML features / Polish ->
          content coding + ETag -> response headers, the edge's 304, HEAD

Each phase is a small function over plain data; later features (HTML rewriting, the
edge cache) slot in as further phases. Nothing here knows about mitmproxy.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from addon import cache
from addon import html
from addon import polish
from addon.cache.settings import NO_PARAMETERS
from addon.compression import stream as streaming
from addon.compression.decision import DOCUMENTED
from addon.compression.decision import MODELLED
from addon.compression.decision import SIZE_PROBE
from addon.compression.decision import CompressionRule
from addon.compression.decision import Decision
from addon.compression.decision import ResponseInputs
from addon.compression.decision import accepted_codings
from addon.compression.decision import decide
from addon.compression.decision import decide_without_body
from addon.compression.decision import origin_coding
from addon.compression.decision import pass_through
from addon.compression.policy import ORIGIN_ACCEPT_ENCODING
from addon.config.parameters import BrowserTTL
from addon.config.parameters import CacheParameters
from addon.config.parameters import CacheResponseParameters
from addon.config.parameters import CompressParameters
from addon.config.zone import DISABLED_BY_RESPECT_STRONG_ETAGS
from addon.config.zone import Zone
from addon.exchange import egress
from addon.exchange import errors as origin_errors
from addon.expressions import FieldValues
from addon.html import cdn_cgi
from addon.http import codings
from addon.http import ranges
from addon.http.accept_encoding import IDENTITY
from addon.http.accept_encoding import parse_accept_encoding
from addon.http.cache_control import parse_cache_control
from addon.http.conditional import CONDITIONAL_HEADERS
from addon.http.conditional import not_modified
from addon.http.etag import ETag
from addon.http.etag import parse_etag
from addon.http.fields import media_type
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import header_index
from addon.http.headers import wire_text
from addon.http.messages import Request
from addon.http.messages import Response

COLO = "LCL"  # cf-ray's data-centre code; no real IATA code, so nobody mistakes it for one
# facts 8.5: consumed by the edge, never sent to visitors
NOT_FORWARDED = (b"cloudflare-cdn-cache-control", b"cache-tag", b"x-accel-buffering",
                 b"x-accel-charset", b"x-accel-limit-rate", b"x-accel-redirect")  # fmt: skip
# RFC 9110 15.4.5: what a 304 carries, plus the edge's own headers (facts 2.4.5)
NOT_MODIFIED_HEADERS = frozenset({b"etag", b"cache-control", b"expires", b"vary",
                                  b"last-modified", b"date", b"content-location", b"age",
                                  b"cf-cache-status", b"cf-ray", b"server"})
TRACE_HEADER = b"x-cf-edge-trace"  # cf_trace: ours, so no cf- prefix that Cloudflare owns


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class RequestState:
    """What the request phases decided; carried to the response."""

    request: Request
    visitor_accept_encoding: str | None
    # What the origin is sent (None: no header). With Respect Strong ETags on, the
    # visitor's own header goes out untouched and this is its text, for the log.
    origin_accept_encoding: str | None
    respect_strong_etags: bool
    features: dict[str, Any]  # zone settings after configuration rules
    rules: tuple[str, ...] = ()  # labels of the rules that matched, in phase order
    turned_off: tuple[str, ...] = ()  # features Respect Strong ETags switched off
    cache: cache.CacheSettings = cache.CacheSettings(False, "no cache settings")
    ray: str = ""  # cf-ray, sent to the origin and to the visitor (facts 8.1)
    uninspected: tuple[str, ...] = ()  # features Response Body Buffering none switched off


@dataclass(frozen=True)
class Recode:
    """The body must be decoded from `source` and encoded as `target` (CPU-bound)."""

    source: str
    target: str
    html: html.HtmlJob | None = None  # rewrite the decoded page with these features


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class ResponsePlan:
    """The decision and everything needed to apply it to a response."""

    decision: Decision
    inputs: ResponseInputs
    etag: ETag | None  # the origin's
    recode: Recode | None  # set until the body has been re-coded (see recode())
    headers: dict[bytes, bytes | None]  # header -> new value (exact bytes); None deletes it
    drop_content_length: bool
    rules: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    body: bytes | None = None  # the new raw body, once re-coded; None keeps the origin's
    features: dict[str, dict[str, int]] = field(default_factory=dict)  # what each changed
    # the response-headers phase (applied whether or not the body changed)
    served: cache.Served | None = None  # where the visitor's copy came from
    edge_headers: tuple[tuple[bytes, bytes | None], ...] = ()  # None deletes
    not_modified: str | None = None  # "edge" (a 304 made here) | "origin" (relayed)
    head: bool = False  # the visitor asked HEAD: headers of the GET, no body
    range_status: int | None = None  # 206 or 416 served from a cached object (facts 1.8)
    range_body: bytes | None = None
    undecodable: str = ""  # why the body cannot be decoded (tried already): not again


# ---- request phases -------------------------------------------------------------------------


def on_request(zone: Zone, request: Request) -> RequestState:
    env = FieldValues(request)
    features = dict(zone.settings)
    matched: list[str] = []
    # http_config_settings: set_config, last match wins per setting (facts 4.4)
    for rule in zone.matching("configuration_rules", env):
        features.update(rule.action_parameters)
        matched.append(rule.label)
    # http_request_cache_settings: set_cache_settings, last match wins (facts 5.1.7)
    cache_params = NO_PARAMETERS
    for rule in zone.matching("cache_rules", env):
        assert isinstance(rule.action_parameters, CacheParameters)
        cache_params = cache_params.then(rule.action_parameters)
        matched.append(rule.label)
    rse = bool(cache_params.respect_strong_etags)
    turned_off = ()
    if rse:
        turned_off = tuple(n for n in DISABLED_BY_RESPECT_STRONG_ETAGS if features.get(n))
        for name in DISABLED_BY_RESPECT_STRONG_ETAGS:  # facts 2.2.3
            features[name] = False
    uninspected: tuple[str, ...] = ()
    if features.get("response_body_buffering") == "none":  # streamed uninspected (3.0.3)
        uninspected = tuple(n for n in html.FEATURES if features.get(n))
        for name in html.FEATURES:
            features[name] = False
    visitor = header(request.headers, b"accept-encoding")
    visitor_ae = wire_text(visitor) if visitor is not None else None
    # facts 1.3.1 / 1.3.3: overwritten unless Respect Strong ETags forwards the visitor's
    origin_ae = visitor_ae if rse else ORIGIN_ACCEPT_ENCODING
    settings = cache.cache_settings(request.method, request.target, cache_params, zone.plan)
    return RequestState(request, visitor_ae, origin_ae, rse, features, tuple(matched),
                        turned_off, settings, f"{os.urandom(8).hex()}-{COLO}", uninspected)


def origin_headers(state: RequestState) -> tuple[tuple[bytes, bytes], ...]:
    """The request headers the edge sets towards the origin (facts 8.6)."""
    req = state.request
    forwarded = header(req.headers, b"x-forwarded-for")
    ip = req.client_ip.encode()
    scheme = req.scheme.encode()
    return (
        (b"cf-ray", state.ray.encode()),
        (b"cf-connecting-ip", ip),
        (b"x-forwarded-for", forwarded + b", " + ip if forwarded else ip),
        (b"x-forwarded-proto", scheme),
        (b"cf-visitor", b'{"scheme":"%s"}' % scheme),
        (b"cdn-loop", b"cloudflare"),
    )


def cache_response_rules(zone: Zone, state: RequestState, response: Response
                         ) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """http_response_cache_settings (facts 5.2): the headers stripped before caching, and
    the rules that matched. Last match wins per setting."""
    if not zone.cache_response_rules:
        return (), ()
    params = CacheResponseParameters()
    labels = []
    for rule in zone.matching("cache_response_rules", FieldValues(state.request, response)):
        assert isinstance(rule.action_parameters, CacheResponseParameters)
        params = params.then(rule.action_parameters)
        labels.append(rule.label)
    return params.stripped, tuple(labels)


def edge_answer(state: RequestState) -> tuple[int, list[tuple[bytes, bytes]], bytes,
                                              dict[str, Any]] | None:
    """The edge answers its own /cdn-cgi/ paths without the origin (status, headers, body,
    log record); None for any other path."""
    path = state.request.target.split("?", 1)[0]
    if not cdn_cgi.is_cdn_cgi(path):
        return None
    status, headers, body, what = cdn_cgi.answer(path)
    reason = f"answered by the edge itself ({what}); the origin was not contacted"
    decision = Decision(IDENTITY, IDENTITY, "served", "absent", None, reason, MODELLED)
    inputs = ResponseInputs(state.request.method, status, "", (), False, None, False,
                            min(len(body), SIZE_PROBE))
    plan = ResponsePlan(decision, inputs, None, None, {}, False, state.rules, body=body)
    final = egress.enforce(visitor_of(state), status, tuple(headers), body)
    entry = record(state, Response(status, tuple(headers), body), plan, final)
    return final.status, list(final.headers), final.body or b"", entry


def origin_error(state: RequestState, status: int, detail: str, now: float | None = None
                 ) -> tuple[int, Headers, bytes, dict[str, Any]]:
    """The edge's answer when the origin failed (a 52x, facts 6.21, 14.4): status,
    headers, body (none for HEAD) and the log record."""
    e = origin_errors.ERRORS[status]
    headers, body = origin_errors.error_page(status, state.ray, _hostname(state.request.host),
                                             detail, now)
    if state.request.method.upper() == "HEAD":
        body = b""
    reason = (f"{e.what} ({detail}): Cloudflare answers {status} {e.title} with a page of its "
              "own (facts 6.21, 14.4)")
    decision = Decision(IDENTITY, IDENTITY, "error", "absent", None, reason, DOCUMENTED)
    inputs = ResponseInputs(state.request.method, status, "text/html", (), False, None, False,
                            SIZE_PROBE)
    plan = ResponsePlan(decision, inputs, None, None, {}, False, state.rules, body=body)
    final = egress.enforce(visitor_of(state), status, headers, body)
    entry = record(state, Response(status, headers, body), plan, final)
    entry["status"] = None  # the origin sent nothing usable
    entry["origin_error"] = {"status": status, "title": e.title, "detail": detail}
    return final.status, final.headers, final.body or b"", entry


# ---- response phases ------------------------------------------------------------------------


def on_response(zone: Zone, state: RequestState, response: Response) -> ResponsePlan:
    """Decide what the visitor gets. Cheap: the body is not decoded here, except at most
    SIZE_PROBE bytes of it when the decision depends on the size."""
    rules = state.rules
    # http_response_compression: compress_response, last match wins (facts 0.11)
    compression = None
    if zone.compression_rules:
        env = FieldValues(state.request, response)
        for rule in zone.matching("compression_rules", env):
            assert isinstance(rule.action_parameters, CompressParameters)
            compression = CompressionRule(rule.label, rule.action_parameters.algorithms)
        if compression:
            rules = (*rules, compression.label)

    index = header_index(response.headers)

    def joined(name: bytes) -> bytes | None:
        values = index.get(name)
        return b", ".join(values) if values else None

    content_encoding = tuple(wire_text(v).strip() for v in index.get(b"content-encoding", ()))
    etag = parse_etag(index.get(b"etag", []))
    body = response.body
    src = origin_coding(content_encoding)
    content_type = joined(b"content-type")
    media = media_type(content_type).decode("latin-1")
    cache_control = parse_cache_control(joined(b"cache-control"))
    notes: list[str] = []
    rewriters: tuple[str, ...] = ()
    polish_mode = ""
    if media in html.HTML_TYPES:
        rewriters = html.active_features(state.features, media, zone.plan)
        declared = html.charset.from_content_type(joined(b"content-type"))
        if rewriters and response.streaming and declared and declared.strip(
                "\"'").lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
            notes.append(f"a streamed page in {declared} is not rewritten: the edge rewrites "
                         "streamed pages in UTF-8 only (modelled), so "
                         f"{_labels(rewriters)} left it as it was")
            rewriters = ()
        if state.turned_off:
            notes.append(f"Respect Strong ETags turned off {_labels(state.turned_off)} for this "
                         "request (facts 2.2.3), so they did not rewrite the page")
        if state.uninspected:
            notes.append("Response Body Buffering is none for this request: the body streams "
                         f"uninspected, so {_labels(state.uninspected)} did not rewrite the "
                         "page (facts 3.0.3)")
    elif media.startswith("image/"):
        vary = [wire_text(v).strip().lower() for v in (joined(b"vary") or b"").split(b",")]
        verdict = polish.applies(str(state.features.get("polish", "off")), zone.plan, media,
                                 response.status, vary, cache_control)
        polish_mode = verdict.mode
        if verdict.note:
            notes.append(verdict.note)
    head = state.request.method.upper() == "HEAD"
    if head and not body or response.streaming:
        what = "a streamed body" if response.streaming else "HEAD"
        identity_size, size_note = _size_from_headers(src, index.get(b"content-length"),
                                                      response.size_hint, what)
    else:
        size_note = ""
        # an identity body's size is known without decoding anything
        identity_size = (min(len(body), SIZE_PROBE) if src == IDENTITY and body is not None
                         else None)
    visitor = parse_accept_encoding(state.visitor_accept_encoding)
    inputs = ResponseInputs(
        method=state.request.method,
        status=response.status,
        media_type=media,
        content_encoding=content_encoding,
        no_transform="no-transform" in cache_control,
        etag_kind=etag.kind if etag else None,
        etag_problem=etag.problem if etag else "",
        streamed=response.streamed or (body is None and not response.streaming),
        identity_size=identity_size,
        partial=response.status == 206 or b"content-range" in index,
        accepted=accepted_codings(state.visitor_accept_encoding),
        accepts_deflate=visitor.accepts("deflate"),
        plan=zone.plan,
        brotli=bool(zone.settings.get("brotli", True)),
        respect_strong_etags=state.respect_strong_etags,
        compression_rule=compression,
        rewriters=rewriters,
        polish=polish_mode,
    )
    decision = None if inputs.identity_size is not None else decide_without_body(inputs, etag)
    if decision is None:
        if inputs.identity_size is None:
            assert src is not None and body is not None
            size, error = _probe_size(body, src)
            inputs = inputs._replace(identity_size=size, decode_error=error)
        decision = decide(inputs, etag)
    if size_note and decision.changed:  # only then could the size have mattered
        notes.append(size_note)
    if not decision.changed:
        return ResponsePlan(decision, inputs, etag, None, {}, False, rules, tuple(notes))
    if decision.action == "polish":
        size = len(body or b"")
        if body is None or head and not body:
            length = joined(b"content-length") or b""
            size = int(length) if length.strip().isdigit() else 0
        polished = {b"etag": decision.etag_out, b"cf-polished": polish.header(size)}
        return ResponsePlan(decision, inputs, etag, None, polished, False, rules, tuple(notes))
    if head and not body and not response.streaming:  # the GET's headers (facts 1.7.4)
        return ResponsePlan(decision, inputs, etag, None, _coding_headers(decision, joined),
                            True, rules, tuple(notes))
    out = decision.encoding_out
    new_headers = _coding_headers(decision, joined)
    job = None
    if decision.action == "rewrite":
        job = html.HtmlJob(rewriters, html.charset.from_content_type(content_type),
                           zone.https_hosts or (_hostname(state.request.host),),
                           _hostname(state.request.host))
    recode = Recode(src or IDENTITY, out, job)
    return ResponsePlan(decision, inputs, etag, recode, new_headers, True, rules, tuple(notes))


def _coding_headers(decision: Decision, joined: Callable[[bytes], bytes | None]
                   ) -> dict[bytes, bytes | None]:
    out = decision.encoding_out
    return {
        b"content-encoding": None if out == IDENTITY else out.encode(),
        b"etag": decision.etag_out,
        b"vary": _vary_with_accept_encoding(joined(b"vary")),
    }


def _size_from_headers(coding: str | None, length: list[bytes] | None, at_least: int | None,
                       what: str) -> tuple[int | None, str]:
    """The decoded size, as far as the decision needs it, when the body is not there to
    look at (a HEAD, a body that will be streamed): an identity Content-Length is that
    size; otherwise it is not known, and the origin compressing it, or not saying how long
    it is, is taken to mean a body above the minimums (modelled)."""
    known = length and len(length) == 1 and length[0].strip().isdigit()
    if known and (coding == IDENTITY or int(length[0]) == 0):  # empty is empty when encoded
        return min(int(length[0]), SIZE_PROBE), ""
    if at_least is not None and at_least >= SIZE_PROBE:
        return SIZE_PROBE, ""
    if coding == IDENTITY:
        return SIZE_PROBE, (f"{what} without a Content-Length: the body size is unknown, so "
                            "the decision is taken for a body above the 48/50-byte minimums "
                            "(modelled)")
    return SIZE_PROBE, (f"{what} of a {coding} body: its decoded size is unknown, so the "
                        "decision is taken for a body above the 48/50-byte minimums "
                        "(modelled)")


_PROBED: dict[tuple[str, int, int], tuple[int | None, str]] = {}
_PROBED_MAX = 4096
_PROBED_BODY_MAX = 64 * 1024


def _probe_size(body: bytes, coding: str) -> tuple[int | None, str]:
    """The decoded size up to SIZE_PROBE (or the decode error), remembered by the body's
    hash: the same stylesheet passed through again, or a cached object served again, skips
    creating a decoder, which costs more than the rest of a pass-through decision."""
    if len(body) > _PROBED_BODY_MAX:  # hashing a big body would cost more than decoding
        return _probe_uncached(body, coding)
    key = (coding, len(body), hash(body))
    known = _PROBED.get(key)
    if known is not None:
        return known
    result = _probe_uncached(body, coding)
    if len(_PROBED) >= _PROBED_MAX:
        _PROBED.pop(next(iter(_PROBED)))  # oldest first: a plain bound, no recency needed
    _PROBED[key] = result
    return result


def _probe_uncached(body: bytes, coding: str) -> tuple[int | None, str]:
    try:
        return codings.decoded_size_at_least(body, coding, SIZE_PROBE), ""
    except codings.DecodeError as e:
        return None, str(e)


def recode(plan: ResponsePlan, raw: bytes, limit: int, budget: int | None = None
           ) -> ResponsePlan | None:
    """Re-code the body as planned. CPU-bound: the caller chooses the thread.

    A body that fails to decode, or decodes to more than `limit` bytes, is passed through
    untouched with the reason. With a `budget` smaller than `limit`, returns None once more
    than `budget` bytes were decoded, for the caller to retry off the event loop.
    """
    assert plan.recode is not None
    cap = limit if budget is None else min(budget, limit)
    job = plan.recode.html
    features: dict[str, dict[str, int]] = {}
    try:
        if job is None:
            body = codings.transcode(raw, plan.recode.source, plan.recode.target, cap)
        else:
            page = codings.transcode(raw, plan.recode.source, IDENTITY, cap)
            result = html.rewrite(page, job)
            body = codings.encode(result.body, plan.recode.target)
            features = result.counts
    except html.RewriteError as e:
        reason = (f"the HTML page could not be rewritten byte-faithfully ({e}); passed "
                  "through untouched rather than corrupt it")
        return _passed_through(plan, reason)
    except codings.TooLarge as e:
        if cap < limit:
            return None
        if e.size is not None:
            reason = (f"the identity body is {e.size} bytes, more than the decode limit "
                      f"(cf_decode_limit, {human_size(limit)}), so it was passed through "
                      "untouched without being read: the proxy's memory stays bounded")
        else:
            reason = (f"the {plan.recode.source} body decodes to more than the decode limit "
                      f"(cf_decode_limit, {human_size(limit)}), so decoding stopped there and "
                      "the response was passed through untouched: the proxy's memory stays "
                      "bounded")
        return _passed_through(plan, reason)
    except codings.DecodeError as e:
        reason = (f"the origin's body could not be decoded ({e}); passed through untouched "
                  "rather than guess")
        return _passed_through(plan, reason)
    return _evolve(plan, recode=None, body=body, features=features)


def _passed_through(plan: ResponsePlan, reason: str) -> ResponsePlan:
    decision = pass_through(plan.inputs, plan.etag, reason, MODELLED)
    return ResponsePlan(decision, plan.inputs, plan.etag, None, {}, False, plan.rules, plan.notes,
                        served=plan.served, undecodable=reason)


def deliver(zone: Zone, state: RequestState, served: cache.Served,
            rules: tuple[str, ...] = ()) -> ResponsePlan:
    """The delivery phases for what the visitor is served: the origin's response or a stored
    object. A HEAD served from cache gets the headers the GET would get (facts 1.7.4)."""
    if state.request.method.upper() == "HEAD" and served.response.body:
        # the edge fetched the GET for it (a cacheable HEAD, facts 1.7.1)
        state = replace(state, request=replace(state.request, method="GET"))
    plan = on_response(zone, state, served.response)
    return _evolve(plan, served=served, rules=(*plan.rules, *rules) if rules else plan.rules)


@dataclass
class Outcome:
    """One exchange, start to end (see exchange())."""

    state: RequestState
    plan: ResponsePlan
    final: egress.Final  # what left for the visitor
    source: Response  # what the visitor's copy was made from
    sent: tuple[Request, ...]  # what the origin was asked, in order

    def record(self) -> dict[str, Any]:
        return record(self.state, self.source, self.plan, self.final)


# What the edge asks when an answer cannot be used: the whole representation, unconditional
FULL_REPRESENTATION = cache.OriginRequest("GET", CONDITIONAL_HEADERS)


def exchange(zone: Zone, store: cache.Store, request: Request,
             fetch: Callable[[Request], Response], now: float,
             limit: int = 1 << 30) -> Outcome:
    """One request through every phase without a proxy (explain, the core tests), in the
    adapter's order: `fetch` plays the origin for the request as the edge sends it."""
    state = on_request(zone, request)
    lk = cache.lookup(store, state.cache, state.request, now)
    rules: tuple[str, ...] = ()
    sent: list[Request] = []

    def ask(how: cache.OriginRequest) -> Response:
        sent.append(how.applied_to(state.request))
        return fetch(sent[-1])

    if lk.origin is None:
        served = cache.serve_stored(lk, now)
        store.hit()
        if lk.background is not None:  # stale-while-revalidate, answered at once here
            answer = ask(lk.background)
            strip, _ = cache_response_rules(zone, state, answer)
            cache.after_background(store, lk, sent[-1], answer, zone.plan, strip, now)
    else:
        answer = ask(lk.origin)
        strip, rules = cache_response_rules(zone, state, answer)
        served = cache.after_origin(store, lk, state.request, answer, zone.plan, strip, now)
        if served.refetch is not None:  # a 304 that cannot update the stored object
            why = served.reason
            answer = ask(served.refetch)
            strip, rules = cache_response_rules(zone, state, answer)
            served = cache.after_origin(store, lk, state.request, answer, zone.plan, strip,
                                        now)
            served = replace(served, reason=f"{why}; then {served.reason}")
    plan, final = _deliver_final(zone, state, served, rules, limit)
    if final.need_full and lk.origin is not None:
        # a range of an encoding the visitor cannot read: the full decoded 200 (facts 1.8.1)
        answer = ask(FULL_REPRESENTATION)
        strip, rules = cache_response_rules(zone, state, answer)
        served = cache.after_origin(store, lk, state.request, answer, zone.plan, strip, now)
        plan, final = _deliver_final(zone, state, served, rules, limit)
    return Outcome(state, plan, final, served.response, tuple(sent))


def _deliver_final(zone: Zone, state: RequestState, served: cache.Served,
                   rules: tuple[str, ...], limit: int) -> tuple[ResponsePlan, egress.Final]:
    plan = deliver(zone, state, served, rules)
    if plan.recode is not None:
        done = recode(plan, served.response.body or b"", limit)
        assert done is not None  # no budget: it finishes or passes through
        plan = done
    plan = finish(plan, state)
    source = served.response
    final = visitor_response(plan, source.status, source.headers, source.body,
                             visitor_of(state), limit)
    return plan, final


def finish(plan: ResponsePlan, state: RequestState) -> ResponsePlan:
    """The response-headers phase, once the body is final: cf-cache-status, Age, cf-ray,
    server (facts 8.1 to 8.5), the Browser Cache TTL (6.10), the edge's own 304 (2.4.5) and
    HEAD (1.7.1)."""
    served = plan.served
    if served is None:
        return plan
    response = served.response
    edits: list[tuple[bytes, bytes | None]] = [
        (b"cf-cache-status", served.status.encode()),
        (b"server", b"cloudflare"),
        (b"cf-ray", state.ray.encode()),
    ]
    if served.age is not None:
        edits.append((b"age", str(served.age).encode()))
    if served.last_modified is not None:
        edits.append((b"last-modified", served.last_modified))
    present = {k.lower() for k, _ in response.headers}
    edits += [(name, None) for name in NOT_FORWARDED if name in present]
    edits += [(name, None) for name in served.removed]
    if state.cache.browser_ttl.mode == "override_origin":
        browser = _browser_ttl(state.cache.browser_ttl,
                               header(response.headers, b"cache-control"))
        if browser is not None:
            edits.append((b"cache-control", browser))
    by = None
    range_status, range_body, notes = None, None, plan.notes
    if response.status == 304:
        by = "origin"
    elif served.stored and response.status == 200:
        last_modified = served.last_modified or header(response.headers, b"last-modified")
        visitor = state.request.headers
        if not_modified(visitor, plan.decision.etag_out, last_modified):
            by = "edge"  # conditionals take precedence over Range (facts 1.8.7)
        elif (wanted := header(visitor, b"range")) is not None:
            range_status, range_body, described, note = _byte_range(
                plan, response, wanted, header(visitor, b"if-range"), last_modified)
            edits += described
            notes += (note,)
    head = state.request.method.upper() == "HEAD"
    upgraded = plan.features.get("automatic_https_rewrites", {}).get("own_host", 0)
    if upgraded and state.request.scheme == "http":
        notes += (f"Automatic HTTPS Rewrites turned {upgraded} link(s) to this very host into "
                  "https:// while this page came over plain HTTP: the browser then asks the "
                  "proxy over HTTPS, which works once it trusts mitmproxy's CA (README, "
                  "\"HTTPS in the browser\"), or browse the site over HTTPS",)
    return _evolve(plan, edge_headers=tuple(edits), not_modified=by, head=head,
                   range_status=range_status, range_body=range_body, notes=notes)


def _byte_range(plan: ResponsePlan, response: Response, wanted: bytes,
                if_range: bytes | None, last_modified: bytes | None
                ) -> tuple[int | None, bytes | None, list[tuple[bytes, bytes]], str]:
    """A Range served from a stored object (facts 1.8): the status (None: the whole 200),
    the body, the headers that describe it, and the note for the log."""
    d = plan.decision
    if d.encoding_out != IDENTITY:
        return None, None, [], (f"Range ignored: the visitor gets {d.encoding_out}, and ranges "
                                "are served of the identity representation only (facts "
                                "1.8.1, 1.8.10, modelled)")
    body = plan.body if plan.body is not None else response.body or b""
    answer = ranges.evaluate(wanted, if_range, len(body), d.etag_out, last_modified)
    assert answer is not None
    note = f"Range: {answer.reason}"
    if answer.status == 206:
        data, described = ranges.partial_body(answer, body,
                                              header(response.headers, b"content-type"))
        return 206, data, described, note
    if answer.status == 416:
        return 416, b"", [(b"content-range", b"bytes */%d" % len(body))], note
    return None, None, [], note


def _chunked(fields: Headers) -> bool:
    return any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in fields)


def visitor_response(plan: ResponsePlan, status: int, fields: Headers, body: bytes | None,
                     visitor: egress.Visitor, limit: int = 1 << 30,
                     streaming: bool = False) -> egress.Final:
    """What the visitor gets, from the origin's (or stored) status, header fields and raw
    body. One pass over the headers; everything the plan does not mean to change keeps its
    bytes. The invariant of the last phase (egress) is checked on the result."""
    assert plan.recode is None or streaming
    edits: list[tuple[bytes, bytes | None]] = []
    if plan.decision.changed:
        if plan.body is not None:
            body = plan.body
        edits += plan.headers.items()  # bytes in, bytes out: nothing re-encoded
        if plan.drop_content_length:
            # Cloudflare drops Content-Length of what it re-codes (facts 0.7, 1.6.1); the
            # last phase frames it for the visitor's protocol
            edits.append((b"content-length", None))
            if (plan.body is not None or streaming) and not _chunked(fields):
                edits.append((b"transfer-encoding", b"chunked"))
    edits += plan.edge_headers
    if plan.not_modified == "edge":
        status, body = 304, b""
    elif plan.range_status is not None and plan.range_body is not None:
        status, body = plan.range_status, plan.range_body
        edits += [(b"transfer-encoding", None),
                  (b"content-length", str(len(plan.range_body)).encode())]
    out = edit_headers(fields, edits) if edits else fields
    if status == 304:
        out = tuple((k, v) for k, v in out if k.lower() in NOT_MODIFIED_HEADERS)
    if plan.head:  # HEAD: the GET's headers, Content-Length included, no body
        body = b""
        if _chunked(out):
            out = tuple((k, v) for k, v in out if k.lower() != b"content-length")
    undecodable = plan.undecodable or (
        f"it could not be decoded: {plan.inputs.decode_error}" if plan.inputs.decode_error
        else "")
    return egress.enforce(visitor, status, out, body, may_transform=not plan.inputs.no_transform,
                          limit=limit, undecodable=undecodable)


def stream_body(plan: ResponsePlan, keep: int = 0) -> streaming.BodyStream:
    """What carries out the plan on a body that streams: the re-coding and rewriting of
    plan.recode, or a pass-through; `keep` bytes of the origin's are kept for the cache."""
    job = plan.recode
    if job is None:
        return streaming.BodyStream(keep=keep)
    rewrite = html.StreamRewrite(job.html) if job.html is not None else None
    return streaming.BodyStream(job.source, job.target, rewrite, keep)


def visitor_of(state: RequestState) -> egress.Visitor:
    return egress.Visitor(state.request.method, state.request.http_version,
                          state.visitor_accept_encoding)


def _bytes_out(plan: ResponsePlan, body_in: int) -> int:
    """The body bytes the visitor got: none for a 304 or HEAD, the range for a 206."""
    if plan.not_modified == "edge" or plan.head:
        return 0
    if plan.range_body is not None:
        return len(plan.range_body)
    return len(plan.body) if plan.body is not None else body_in


def _evolve(plan: ResponsePlan, **changes: Any) -> ResponsePlan:
    """dataclasses.replace without its introspection, which costs ~10 us per call on the
    hot path; the plan is frozen only against accidental changes."""
    new = object.__new__(ResponsePlan)
    new.__dict__.update(plan.__dict__, **changes)
    return new


def with_trace(plan: ResponsePlan, state: RequestState) -> ResponsePlan:
    """cf_trace: one response header that says what the edge did, why, and by which rule."""
    d = plan.decision
    parts = [f"{d.action} {d.encoding_in}->{d.encoding_out}",
             f"ETag {d.etag_action}" + (f" {wire_text(plan.etag.raw)}" if plan.etag else "")
             + (f"->{wire_text(d.etag_out)}" if d.etag_out and d.etag_action == "weakened"
                else "")]
    if plan.served is not None:
        parts.append(f"cache {plan.served.status}")
    if plan.not_modified:
        parts.append(f"304 by {plan.not_modified}")
    parts.append(d.reason)
    if plan.rules:
        parts.append("rules: " + ", ".join(plan.rules))
    line = "; ".join(parts)
    value = line.encode("ascii", "backslashreplace").replace(b"\r", b" ").replace(b"\n", b" ")
    return _evolve(plan, edge_headers=(*plan.edge_headers, (TRACE_HEADER, value)))


def _browser_ttl(params: BrowserTTL, value: bytes | None) -> bytes | None:
    """Browser Cache TTL override: applied only when the origin's max-age is lower or
    absent (facts 6.10, 5.1.3); None leaves Cache-Control as the origin sent it."""
    if params.mode != "override_origin" or params.default is None:
        return None
    ttl = params.default
    current = parse_cache_control(value).get("max-age")
    if current is not None and current.isdigit() and int(current) >= ttl:
        return None
    if not value:
        return b"max-age=%d" % ttl
    if current is None:
        return value + b", max-age=%d" % ttl
    return re.sub(rb"(?i)max-age\s*=\s*\S+?(?=\s*(,|$))", b"max-age=%d" % ttl, value, count=1)


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _vary_with_accept_encoding(vary: bytes | None) -> bytes:
    """The origin's Vary bytes with Accept-Encoding appended once."""
    current = vary or b""
    names = [n.strip().lower() for n in current.split(b",")]
    if b"accept-encoding" in names or b"*" in names:
        return current
    return current + b", Accept-Encoding" if current.strip() else b"Accept-Encoding"


def _labels(names: tuple[str, ...]) -> str:
    return html.labels(names)


def _hostname(host: str) -> str:
    """The host name of a Host value, without port or brackets."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


# ---- the log record -------------------------------------------------------------------------


def record(state: RequestState, response: Response, plan: ResponsePlan,
           final: egress.Final | None = None) -> dict[str, Any]:
    """One JSON Lines record; also stored in flow.metadata (plain types only).

    Header values are shown as they went on the wire (see facts.wire_text). With `final`,
    the outgoing fields (status, coding, ETag, bytes) are what actually left.
    """
    d = plan.decision
    etag_in = plan.etag.raw if plan.etag is not None else None
    body_in = len(response.body or b"")
    served = plan.served
    entry = {
        "ts": round(time.time(), 3),
        "method": wire_text(state.request.method),
        "url": wire_text(state.request.url),
        "status": response.status,
        "accept_encoding": state.visitor_accept_encoding,
        "origin_accept_encoding": state.origin_accept_encoding,
        "encoding_in": d.encoding_in,
        "encoding_out": d.encoding_out,
        "action": d.action,
        "etag_in": wire_text(etag_in) if etag_in is not None else None,
        "etag_out": wire_text(d.etag_out) if d.etag_out is not None else None,
        "etag_action": d.etag_action,
        "changed": d.changed,
        "reason": d.reason,
        "basis": d.basis,
        "table_row": d.table_row or None,
        "respect_strong_etags": state.respect_strong_etags,
        "rules": list(plan.rules),
        "notes": list(plan.notes),
        "features": plan.features,
        "bytes_in": body_in,
        "bytes_out": _bytes_out(plan, body_in),
        "cache_status": served.status if served else None,
        "cache_key": served.key if served else None,
        "cache_reason": served.reason if served else None,
        "age": served.age if served else None,
        "not_modified": plan.not_modified,
        "status_out": 304 if plan.not_modified == "edge" else plan.range_status or response.status,
    }
    if final is not None:
        _what_went_out(entry, final, etag_in, d.etag_out, state.request.method)
    return entry


def _what_went_out(entry: dict[str, Any], final: egress.Final, etag_in: bytes | None,
                   planned_etag: bytes | None, method: str) -> None:
    """The record's outgoing fields from the response that left. Unless the last phase
    repaired something (or it is a 304), its coding and ETag are the decision's."""
    entry["status_out"] = final.status
    no_body = method.upper() == "HEAD" or final.status in (204, 304)
    entry["bytes_out"] = 0 if no_body else (len(final.body) if final.body is not None
                                            else entry["bytes_out"])
    if final.unresolved:
        entry["unresolved"] = final.unresolved
    if final.repairs:
        entry["egress"] = list(final.repairs)
    elif final.status != 304:  # a 304 carries only some of the headers
        return
    _repaired(entry, final, etag_in, planned_etag)


def _repaired(entry: dict[str, Any], final: egress.Final, etag_in: bytes | None,
              planned_etag: bytes | None) -> None:
    """The coding and ETag as they left; a repair that decoded the body turns a
    pass-through into a decompression."""
    coding = final.content_encoding
    if coding != entry["encoding_out"]:
        entry["encoding_out"] = coding
        if entry["action"] == "pass":
            entry["action"] = "decompress"
            entry["changed"] = True
    etag_out = final.etag
    if etag_out != planned_etag:
        entry["etag_out"] = wire_text(etag_out) if etag_out is not None else None
        entry["etag_action"] = ("absent" if etag_in is None and etag_out is None
                                else "removed" if etag_out is None
                                else "kept" if etag_out == etag_in
                                else "weakened")
