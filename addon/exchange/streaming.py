"""The exchange of a body that streams through the edge: decided on the origin's headers,
carried out piece by piece (compression/stream.py), recorded when it ends. A mixin of
Exchange (machine.py), whose state it shares.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from addon import cache
from addon.compression.stream import BodyStream
from addon.exchange.content import content_phase
from addon.exchange.headers import headers_phase
from addon.exchange.recode import Body
from addon.exchange.recode import stream_body
from addon.exchange.record import record
from addon.exchange.steps import Delivered
from addon.exchange.steps import Stream
from addon.exchange.visitor import visitor_response
from addon.http.messages import Response

if TYPE_CHECKING:
    from addon.exchange.machine import Exchange


class StreamingTransitions:
    def streams(self: Exchange, response: Response, why: str) -> Stream:
        """The origin's headers of a body that will stream through the edge (`response`
        without a body, `streaming` set): decided now, carried out piece by piece."""
        self.origin = response
        lk, keep = self.lookup, 0
        if lk is not None:
            rules = self._response_cache_rules(response)
            self.cache_rules = rules.labels
            self.cached_as = rules.response  # the headers the stored object gets
            self.served, keep = cache.before_body(self.ctx.store, lk, self.state.request,
                                                  rules.response, self.ctx.zone.plan,
                                                  rules.strip, self.now)
        source = self.served.response if self.served is not None else response
        content = content_phase(self.ctx.zone, self.state, source, self.ctx.probes)
        body = stream_body(content, keep)
        headers = headers_phase(self.state, self.served, content, Body())
        extra = self._trace(content, headers)
        final = visitor_response(source, content, Body(), headers, self.state.visitor,
                                 self.ctx.limit, streaming=True, extra=extra)
        self.streaming = (content, Body(), headers, final, why)
        self.content, self.body, self.headers = content, Body(), headers
        return Stream(final, body)

    def stream_ended(self: Exchange, body: BodyStream, now: float, cut: str = ""
                     ) -> Delivered:
        """The streamed body ended (or was cut): the cache keeps it if it ended whole, and
        the record says what passed."""
        assert self.streaming is not None and self.origin is not None
        content, _, headers, final, why = self.streaming
        notes = []
        kept = None if cut else body.stored
        lk, store, served = self.lookup, self.ctx.store, self.served
        if kept is not None and lk is not None and store is not None and served is not None \
                and served.key is not None:
            whole = replace(self.cached_as or self.origin, body=kept, streaming=False)
            stored = cache.after_origin(store, lk, self.state.request, whole,
                                        self.ctx.zone.plan, self.strip, now)
            if stored.stored:
                notes.append(f"stored in the edge cache as it streamed ({len(kept)} bytes)")
        r = record(self.state, self.origin, content, Body(), headers, served, final,
                   self.cache_rules)
        r.streamed = why
        r.bytes_in, r.bytes_out = body.bytes_in, body.bytes_out
        if body.features():
            r.features = body.features()
        if body.error:
            notes.append(f"the body broke while it streamed ({body.error}): the visitor got "
                         "it cut short there")
        if cut:
            notes.append(f"the stream was cut after {body.bytes_in} bytes from the origin "
                         f"({cut}); nothing was stored")
        r.notes += notes
        self.result = Delivered(final, r)
        return self.result
