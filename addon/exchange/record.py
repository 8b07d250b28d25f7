"""The log record: one per handled response, written as a JSON line (cf_log), kept in the
flow's metadata (mitmweb, the content view), counted by the report. Its fields, in order,
with what each means, are the one list the content view, the report and docs/log.md take
theirs from.

Header values are shown as they went on the wire (see http.headers.wire_text).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

from addon.cache import Served
from addon.exchange import egress
from addon.exchange.content import Content
from addon.exchange.headers import EdgeHeaders
from addon.exchange.recode import Body
from addon.exchange.request import RequestState
from addon.http.headers import wire_text
from addon.http.messages import Response
from addon.vocabulary import Action
from addon.vocabulary import Basis
from addon.vocabulary import CacheStatus
from addon.vocabulary import ETagAction
from addon.vocabulary import NotModifiedBy

JSON = json.JSONEncoder(ensure_ascii=False)


def _doc(text: str, default: Any = None, optional: bool = False,
         factory: Any = None) -> Any:
    meta = {"doc": text, "optional": optional}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Record:
    ts: float = _doc("when the edge handled the response (Unix time)", 0.0)
    method: str = _doc("the visitor's method", "")
    url: str = _doc("the URL the visitor asked for (with the host it used)", "")
    status: int | None = _doc("the status of the origin's response (or of the stored "
                              "object); none when the origin sent nothing usable")
    accept_encoding: str | None = _doc("the visitor's Accept-Encoding")
    origin_accept_encoding: str | None = _doc("the Accept-Encoding the origin was sent")
    encoding_in: str = _doc("the coding of the origin's body", "identity")
    encoding_out: str = _doc("the coding of the visitor's body", "identity")
    action: Action = _doc("what the edge did to the body: pass, compress, decompress, "
                          "transcode, rewrite (an HTML feature ran), polish, served (a "
                          "/cdn-cgi/ path the edge answered), error (a 52x)", Action.PASS)
    media_type: str | None = _doc("the response's media type (text/html, image/png ...)")
    etag_in: str | None = _doc("the origin's ETag")
    etag_out: str | None = _doc("the ETag the visitor got")
    etag_action: ETagAction = _doc("kept, weakened, removed or absent", ETagAction.ABSENT)
    last_modified_out: str | None = _doc("the Last-Modified the visitor got (what a browser "
                                         "can revalidate with when there is no ETag)")
    changed: bool = _doc("the edge changed the response's coding, body or ETag", False)
    reason: str = _doc("why, in one sentence, ending in [ETag table (...), row N, "
                       "documented], [documented] or [modelled]; 'facts N.M' cites "
                       "docs/facts.md", "")
    basis: Basis = _doc("documented or modelled", Basis.MODELLED)
    table_row: str | None = _doc("the row of Cloudflare's ETag table that applied")
    respect_strong_etags: bool = _doc("Respect Strong ETags was on for the request", False)
    rules: list[str] = _doc('the rules that matched, in phase order, as section[position] '
                            '"description"', factory=list)
    notes: list[str] = _doc("what else the edge noticed or assumed", factory=list)
    features: dict[str, dict[str, int]] = _doc("what each HTML feature changed", factory=dict)
    bytes_in: int = _doc("body bytes from the origin (or the stored object)", 0)
    bytes_out: int = _doc("body bytes to the visitor", 0)
    cache_status: CacheStatus | None = _doc("cf-cache-status: DYNAMIC, MISS, BYPASS, HIT, "
                                            "EXPIRED, REVALIDATED, UPDATING or STALE")
    cache_key: str | None = _doc("the object's cache key (none for DYNAMIC)")
    cache_reason: str | None = _doc("why the cache did what it did, with the facts cited")
    age: int | None = _doc("the Age sent (none when not served from cache)")
    not_modified: NotModifiedBy | None = _doc("edge when the edge answered 304 itself, "
                                              "origin when it relayed the origin's 304")
    status_out: int = _doc("the status the visitor got (304, 206, 416 or 52x when the edge "
                           "made them)", 0)
    unresolved: str | None = _doc("why a coding the visitor did not accept went out anyway",
                                  optional=True)
    egress: list[str] | None = _doc("what the last phase had to repair", optional=True)
    asked_again: list[str] | None = _doc("why the edge asked the origin a second time",
                                         optional=True)
    diagnoses: list[dict[str, str]] | None = _doc("origin diagnosis findings: code, message, "
                                                  "fix", optional=True)
    streamed: str | None = _doc("why the body streamed through the edge", optional=True)
    origin_error: dict[str, Any] | None = _doc("the 52x the edge answered: status, title, "
                                               "detail", optional=True)
    background: str | None = _doc("what a stale-while-revalidate revalidation did",
                                  optional=True)

    def as_dict(self) -> dict[str, Any]:
        """What flow.metadata (saved with tnetstring) and the JSON line carry: the statuses
        are StrEnums, strings to both; optional fields only when they say something."""
        out = dict(self.__dict__)
        for name in OPTIONAL:
            if out[name] is None:
                del out[name]
        return out

    def json_line(self) -> bytes:
        line = JSON.encode(self.as_dict()) + "\n"
        return line.encode("utf-8", "backslashreplace")


FIELDS = tuple(f.name for f in fields(Record))
OPTIONAL = tuple(f.name for f in fields(Record) if f.metadata.get("optional"))
DOCS = {f.name: f.metadata["doc"] for f in fields(Record)}


def read_log(path: Path) -> list[dict[str, Any]]:
    """The complete records of a JSON Lines log, which may be being written: a record the
    writer has not finished yet (its line has no newline) is left for the next read."""
    try:
        text = path.read_text(encoding="utf-8", errors="backslashreplace")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line]


def docs_table() -> str:
    """The table of docs/log.md, which a test keeps equal to this."""
    rows = ["| field | meaning |", "|---|---|"]
    for name in FIELDS:
        only = " (only when present)" if name in OPTIONAL else ""
        rows.append(f"| `{name}` | {DOCS[name]}{only} |")
    return "\n".join(rows)


def record(state: RequestState, source: Response, content: Content, body: Body,
           headers: EdgeHeaders, served: Served | None, final: egress.Final | None = None,
           rules: tuple[str, ...] = ()) -> Record:
    """The record of a response: `source` is what the visitor's copy was made of; with
    `final`, the outgoing fields (status, coding, ETag, bytes) are what actually left.
    `rules`: the labels of the response-phase rules, after the request's."""
    d = content.decision
    etag_in = content.etag.raw if content.etag is not None else None
    body_in = len(source.body or b"")
    r = Record(
        ts=round(time.time(), 3),
        method=wire_text(state.request.method),
        url=wire_text(state.request.url),
        status=source.status,
        accept_encoding=state.visitor_accept_encoding,
        origin_accept_encoding=state.origin_accept_encoding,
        encoding_in=d.encoding_in,
        encoding_out=d.encoding_out,
        action=d.action,
        media_type=content.inputs.media_type or None,
        etag_in=wire_text(etag_in) if etag_in is not None else None,
        etag_out=wire_text(d.etag_out) if d.etag_out is not None else None,
        etag_action=d.etag_action,
        last_modified_out=_last_modified(served, source),
        changed=d.changed,
        reason=d.reason,
        basis=d.basis,
        table_row=d.table_row or None,
        respect_strong_etags=state.respect_strong_etags,
        rules=[*state.rules, *content.rules, *rules],
        notes=[*content.notes, *headers.notes],
        features=body.features,
        bytes_in=body_in,
        bytes_out=_bytes_out(headers, body, body_in),
        cache_status=served.status if served else None,
        cache_key=served.key if served else None,
        cache_reason=served.reason if served else None,
        age=served.age if served else None,
        not_modified=headers.not_modified,
        status_out=(304 if headers.not_modified is NotModifiedBy.EDGE
                    else headers.range_status or source.status),
    )
    if final is not None:
        _what_went_out(r, final, etag_in, d.etag_out, state.request.method)
    return r


def _last_modified(served: Served | None, source: Response) -> str | None:
    """The Last-Modified the visitor gets: the edge's own for an object without
    validators (Smart Edge Revalidation, facts 2.4.4), else the origin's."""
    if served is not None and served.last_modified is not None:
        return wire_text(served.last_modified)
    values = source.index.get(b"last-modified")
    return wire_text(values[0]) if values else None


def _bytes_out(headers: EdgeHeaders, body: Body, body_in: int) -> int:
    """The body bytes the visitor got: none for a 304 or HEAD, the range for a 206."""
    if headers.not_modified is NotModifiedBy.EDGE or headers.head:
        return 0
    if headers.range_body is not None:
        return len(headers.range_body)
    return len(body.data) if body.data is not None else body_in


def _what_went_out(r: Record, final: egress.Final, etag_in: bytes | None,
                   planned_etag: bytes | None, method: str) -> None:
    """The outgoing fields from the response that left. Unless the last phase repaired
    something (or it is a 304), its coding and ETag are the decision's."""
    r.status_out = final.status
    no_body = method.upper() == "HEAD" or final.status in (204, 304)
    r.bytes_out = 0 if no_body else (len(final.body) if final.body is not None
                                     else r.bytes_out)
    if final.unresolved:
        r.unresolved = final.unresolved
    if final.repairs:
        r.egress = list(final.repairs)
    elif final.status != 304:  # a 304 carries only some of the headers
        return
    coding = final.content_encoding
    if coding != r.encoding_out:  # a repair that decoded the body decompressed it
        r.encoding_out = coding
        if r.action is Action.PASS:
            r.action, r.changed = Action.DECOMPRESS, True
    etag_out = final.etag
    if etag_out != planned_etag:
        r.etag_out = wire_text(etag_out) if etag_out is not None else None
        r.etag_action = (ETagAction.ABSENT if etag_in is None and etag_out is None
                         else ETagAction.REMOVED if etag_out is None
                         else ETagAction.KEPT if etag_out == etag_in
                         else ETagAction.WEAKENED)
