"""What the edge answers itself, without the origin: its own /cdn-cgi/ paths, and its error
page when the origin failed (a 52x, facts 6.21, 14.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from addon.compression.decision import DOCUMENTED
from addon.compression.decision import MODELLED
from addon.compression.decision import SIZE_PROBE
from addon.compression.decision import Decision
from addon.compression.decision import ResponseInputs
from addon.exchange import egress
from addon.exchange import errors
from addon.exchange.content import Content
from addon.exchange.headers import EdgeHeaders
from addon.exchange.recode import Body
from addon.exchange.record import Record
from addon.exchange.record import record
from addon.exchange.request import RequestState
from addon.exchange.request import hostname
from addon.html import cdn_cgi
from addon.http.accept_encoding import IDENTITY
from addon.http.messages import Response
from addon.vocabulary import Action
from addon.vocabulary import Basis
from addon.vocabulary import ETagAction


@dataclass(frozen=True)
class Answer:
    """The edge answers the visitor itself: this response, this record."""

    final: egress.Final
    record: Record


def edge_answer(state: RequestState) -> Answer | None:
    """The answer to one of the edge's own /cdn-cgi/ paths; None for any other path."""
    path = state.request.target.split("?", 1)[0]
    if not cdn_cgi.is_cdn_cgi(path):
        return None
    status, headers, body, what = cdn_cgi.answer(path)
    reason = f"answered by the edge itself ({what}); the origin was not contacted"
    return _answer(state, status, tuple(headers), body, Action.SERVED, reason, MODELLED, "")


def origin_error(state: RequestState, status: int, detail: str, now: float | None = None
                 ) -> Answer:
    """The edge's error page when the origin failed: no body for HEAD."""
    e = errors.ERRORS[status]
    headers, body = errors.error_page(status, state.ray, hostname(state.request.host), detail,
                                      now)
    if state.head:
        body = b""
    reason = (f"{e.what} ({detail}): Cloudflare answers {status} {e.title} with a page of its "
              "own (facts 6.21, 14.4)")
    answer = _answer(state, status, headers, body, Action.ERROR, reason, DOCUMENTED, "text/html")
    answer.record.status = None  # the origin sent nothing usable
    answer.record.origin_error = {"status": status, "title": e.title, "detail": detail}
    return answer


def _answer(state: RequestState, status: int, headers: tuple[tuple[bytes, bytes], ...],
            body: bytes, action: Action, reason: str, basis: Basis, media: str) -> Answer:
    decision = Decision(IDENTITY, IDENTITY, action, ETagAction.ABSENT, None, reason, basis)
    inputs = ResponseInputs(state.request.method, status, media, (), False, None, False,
                            SIZE_PROBE if media else min(len(body), SIZE_PROBE))
    content = Content(decision, inputs, None, {})
    final = egress.enforce(state.visitor, status, headers, body)
    r = record(state, Response(status, headers, body), content, Body(body), EdgeHeaders(),
               None, final)
    return Answer(final, r)
