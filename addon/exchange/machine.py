"""One visitor's request through the edge, as a state machine: the phase order, written
once, for every way of driving it.

An Exchange runs the request phases when it is made, then tells its driver, step by step,
what it needs (sans I/O, in the spirit of h11 and hishel):

    AskOrigin   send this request to the origin (`answered()` or `failed()` follows)
    FromCache   the visitor is served a stored object (`from_cache()` follows), maybe
                revalidated in the background meanwhile
    NeedRecode  the body must be re-coded (`recode()` follows, in a thread if it is big)
    Stream      the body streams through this transformation (`stream_ended()` follows)
    Delivered   done: this response leaves, this record is logged
    Answer      done: the edge answers itself (its /cdn-cgi/ paths, a 52x)

The mitmproxy layer drives it across hooks and threads (addon/mitm/requests.py,
responses.py, streams.py); explain, the demo and the core tests drive it synchronously
(exchange/run.py). Nothing else restates the order:

    request phases -> /cdn-cgi/ -> cache lookup -> origin (or a stored object)
    -> cache response rules, fill or revalidation -> content phase -> re-code
    -> response-headers phase -> last phase (egress) -> record and diagnosis
"""

from __future__ import annotations

from dataclasses import replace

from addon import cache
from addon.cache import Lookup
from addon.cache import OriginRequest
from addon.cache import Served
from addon.exchange import egress
from addon.exchange.answers import Answer
from addon.exchange.answers import edge_answer
from addon.exchange.answers import origin_error
from addon.exchange.content import Content
from addon.exchange.content import content_phase
from addon.exchange.headers import TRACE_HEADER
from addon.exchange.headers import EdgeHeaders
from addon.exchange.headers import headers_phase
from addon.exchange.headers import trace
from addon.exchange.recode import Body
from addon.exchange.recode import recode
from addon.exchange.record import Record
from addon.exchange.record import record
from addon.exchange.request import RequestState
from addon.exchange.request import origin_headers
from addon.exchange.request import request_phases
from addon.exchange.response_cache import CacheRules
from addon.exchange.response_cache import response_cache_rules
from addon.exchange.steps import FULL_REPRESENTATION
from addon.exchange.steps import AskOrigin
from addon.exchange.steps import Base
from addon.exchange.steps import Delivered
from addon.exchange.steps import EdgeContext
from addon.exchange.steps import FromCache
from addon.exchange.steps import NeedRecode
from addon.exchange.steps import Step
from addon.exchange.streaming import StreamingTransitions
from addon.exchange.visitor import visitor_response
from addon.http.conditional import usable_etag
from addon.http.headers import header_values
from addon.http.messages import Request
from addon.http.messages import Response
from addon.vocabulary import CacheStatus
from addon.vocabulary import NotModifiedBy


class Exchange(StreamingTransitions):
    def __init__(self, ctx: EdgeContext, request: Request, now: float, live: bool = True
                 ) -> None:
        self.ctx, self.now, self.live = ctx, now, live
        self.state: RequestState = request_phases(ctx.zone, request)
        self.lookup: Lookup | None = None
        self.served: Served | None = None
        self.origin: Response | None = None  # the origin's answer in use
        self.answers = 0  # how many the origin gave (a second when the first was unusable)
        self.refetching = False  # asked again because a 304 could not update the object
        self.source: Response | None = None  # what the visitor's copy is made of
        self.cache_rules: tuple[str, ...] = ()  # cache response rules that matched
        self.strip: tuple[bytes, ...] = ()  # headers they strip before storing
        self.cached_as: Response | None = None  # a streamed response, as the cache reads it
        self.asked_again: list[str] = []
        self.waited = False  # for another request filling the same key
        self.from_store = False  # served without the origin (HIT, UPDATING, STALE at once)
        self.pending: tuple[Content, Body] | None = None  # a delivery waiting to finish
        self.streaming: tuple[Content, Body, EdgeHeaders, egress.Final, str] | None = None
        self.background = ""  # what the stale-while-revalidate revalidation did
        # the phases' verdicts once delivered, for whoever explains the exchange
        self.content: Content | None = None
        self.body: Body | None = None
        self.headers: EdgeHeaders | None = None
        self.result: Delivered | Answer | None = None

    @property
    def decision(self):  # noqa: ANN201 - the content phase's Decision, once it was made
        return self.content.decision if self.content is not None else None

    # ---- request side ----

    def begin(self) -> Answer | AskOrigin | FromCache:
        """/cdn-cgi/ answers, then the cache lookup."""
        answer = edge_answer(self.state)
        if answer is not None:
            self.result = answer
            return answer
        return self._look()

    def look_again(self, now: float) -> AskOrigin | FromCache:
        """Another request was filling this key; it is done (or the wait timed out)."""
        self.now, self.waited = now, True
        return self._look()

    def _look(self) -> AskOrigin | FromCache:
        state = self.state
        lk = cache.lookup(self.ctx.store, state.cache, state.request, self.now)
        if self.waited:
            lk = replace(lk, reason=f"{lk.reason}; waited for a concurrent request that was "
                         "filling this key (facts 6.17)")
        self.lookup = lk
        if lk.origin is None:  # HIT or UPDATING: the origin is not asked
            self.served = cache.serve_stored(lk, self.now)
            self.from_store = True
            if self.ctx.store is not None:
                self.ctx.store.hit()
            background = (self._to_origin(lk.background) if lk.background is not None
                          else None)
            return FromCache(self.served.response, background)
        fill = lk.key if lk.status in (CacheStatus.MISS, CacheStatus.EXPIRED) else None
        return AskOrigin(self._to_origin(lk.origin), fill)

    def _to_origin(self, how: OriginRequest) -> OriginRequest:
        """The cache's request with the edge's own headers (facts 8.6, 1.3)."""
        return replace(how, set=(*how.set, *origin_headers(self.state)))

    def background_answered(self, response: Response, now: float) -> str:
        """The stale-while-revalidate revalidation came back (replaying a recording, the
        recorded answer stands for it); what it did to the stored object."""
        lk, store = self.lookup, self.ctx.store
        if store is None or lk is None or lk.obj is None:
            return "the cache is off"
        rules = self._response_cache_rules(response)
        self.background = cache.after_background(store, lk, self.state.request, rules.response,
                                                 self.ctx.zone.plan, rules.strip, now)
        return self.background

    # ---- the origin's answer, or its failure ----

    def failed(self, status: int, detail: str, unreachable: bool = True
               ) -> Answer | FromCache:
        """The origin cannot be reached (`status` is the 52x Cloudflare answers), or its
        answer cannot be used (`unreachable` false): an expired object that may be served
        stale wins over the error (facts 6.21)."""
        lk = self.lookup
        if lk is not None and lk.status is CacheStatus.EXPIRED and lk.obj is not None \
                and lk.obj.stale_on_error:
            why = (f"the origin cannot be reached ({detail}, {status})" if unreachable
                   else f"{detail} ({status})")
            self.served = cache.serve_stale(lk, self.now, why)
            self.from_store = True
            return FromCache(self.served.response)
        self.result = origin_error(self.state, status, detail)
        return self.result

    def answered(self, response: Response) -> Step:
        """The origin's (buffered) answer: the cache fills or revalidates, then delivery."""
        self.answers += 1
        second = self.answers > 1
        self.origin = response
        lk = self.lookup
        if lk is None:  # no cache phase ran
            return self._deliver(response)
        rules = self._response_cache_rules(response)
        self.cache_rules = rules.labels
        served = cache.after_origin(self.ctx.store, lk, self.state.request, rules.response,
                                    self.ctx.zone.plan, rules.strip, self.now,
                                    recorded=not self.live)
        if rules.note:
            served = replace(served, reason=f"{served.reason}; {rules.note}")
        if second and self.refetching:
            served = replace(served, reason=f"{self.asked_again[-1]}; then {served.reason}")
        self.served = served
        if served.refetch is not None and self.live and not second:
            self.asked_again.append(served.reason)  # a 304 that may not update the object
            self.refetching = True
            return AskOrigin(self._to_origin(served.refetch), again=True)
        return self._deliver(served.response)

    def again_failed(self) -> Step:
        """The second request got nothing usable: the first answer stands."""
        if self.asked_again:
            self.asked_again.pop()
        if self.pending is not None:  # a range the visitor cannot read goes out as it is
            content, body = self.pending
            self.pending = None
            return self._finish(content, body, full_wanted=False)
        assert self.served is not None
        return self._deliver(self.served.response)

    def _response_cache_rules(self, response: Response) -> CacheRules:
        rules = response_cache_rules(self.ctx.zone, self.state.request, response)
        self.strip = rules.strip
        return rules

    # ---- delivery ----

    def from_cache(self) -> NeedRecode | Delivered:
        """Deliver the stored object FromCache announced."""
        assert self.served is not None
        step = self._deliver(self.served.response)
        assert not isinstance(step, AskOrigin)  # only an origin's answer is asked again
        return step

    def _deliver(self, source: Response) -> NeedRecode | Delivered | AskOrigin:
        self.source = source
        state = self.state
        if state.head and source.body:  # the GET fetched for a cacheable HEAD (facts 1.7.1)
            state = replace(state, request=replace(state.request, method="GET"))
        content = content_phase(self.ctx.zone, state, source, self.ctx.probes)
        if content.recode is not None:
            assert source.body is not None
            self.pending = (content, Body())
            return NeedRecode(source.body, content.recode.html is not None)
        return self._finish(content, Body())

    def recode(self, budget: int | None = None) -> Delivered | AskOrigin | None:
        """Re-code the body (CPU-bound: the driver chooses the thread). With a budget,
        None when the body decodes to more: the driver retries without one."""
        assert self.pending is not None and self.source is not None
        content, _ = self.pending
        assert self.source.body is not None
        done = recode(content, self.source.body, self.ctx.limit, budget)
        if done is None:
            return None
        self.pending = None
        return self._finish(*done)

    def _finish(self, content: Content, body: Body, full_wanted: bool = True
                ) -> Delivered | AskOrigin:
        state, served, source = self.state, self.served, self.source
        assert source is not None
        headers = headers_phase(state, served, content, body)
        rules = self.cache_rules
        extra = self._trace(content, headers)
        if source.streamed:  # its headers and body already left: only say what they were
            final = egress.observe(state.visitor, source.status, source.headers)
        else:
            final = visitor_response(source, content, body, headers, state.visitor,
                                     self.ctx.limit, extra=extra)
        if final.need_full and full_wanted and self.live and not self.from_store \
                and self.answers == 1:
            # a range of an encoding the visitor cannot read: the full decoded 200 (1.8.1)
            self.pending = (content, body)
            self.refetching = False
            self.asked_again.append(f"{final.unresolved}: the edge asked the origin for the "
                                    "full response and sent it whole instead of the range "
                                    "(facts 1.8.1)")
            return AskOrigin(self._to_origin(FULL_REPRESENTATION), again=True)
        self.content, self.body, self.headers = content, body, headers
        r = record(state, source, content, body, headers, served, final, rules)
        self._annotate(r)
        base = Base.FIRST
        if served is not None and served.from_store and not self.from_store:
            base = Base.STORED
        elif self.answers > 1:
            base = Base.AGAIN
        self.result = Delivered(final, r, base)
        return self.result

    def _trace(self, content: Content, headers: EdgeHeaders) -> tuple[tuple[bytes, bytes], ...]:
        """cf_trace's header, when it is on."""
        if not self.ctx.trace:
            return ()
        rules = (*self.state.rules, *content.rules, *self.cache_rules)
        return ((TRACE_HEADER, trace(self.served, content, headers, rules)),)

    def _annotate(self, r: Record) -> None:
        """What the record says besides the response: a second request, the background
        revalidation, and what the origin's answer shows of the origin (diagnosis)."""
        if self.asked_again:
            r.asked_again = list(self.asked_again)
        if self.background:
            r.background = self.background
        diagnosis, origin, lk = self.ctx.diagnosis, self.origin, self.lookup
        if diagnosis is None:
            return
        mismatch = diagnosis.relayed_304(r.url, r.status_out,
                                         r.not_modified is NotModifiedBy.ORIGIN, r.etag_out)
        if mismatch is not None:
            r.diagnoses = [mismatch.as_dict]
        if origin is None or self.from_store:
            return
        forwarded = not self.live or lk is None or lk.status is CacheStatus.DYNAMIC
        stored = None
        if lk is not None and lk.key is not None and lk.obj is not None and self.served:
            stored = (lk.key, usable_etag(header_values(lk.obj.headers, b"etag")),
                      self.served.status)
        findings = diagnosis.of_origin(self.state.request, origin, forwarded, stored,
                                       " ".join(self.asked_again))
        if findings:
            r.diagnoses = [*(r.diagnoses or ()), *(f.as_dict for f in findings)]
