"""The content phase: compression rules (http_response_compression, facts 0.11), which
HTML features and Polish apply, and the content coding and ETag decision (the ETag tables,
facts 2.1), as header edits and, when the body must change, a re-coding job.

Cheap: the body is not decoded here, except at most SIZE_PROBE bytes of it when the
decision depends on the size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from functools import lru_cache

from addon import html
from addon import polish
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
from addon.config.parameters import CompressParameters
from addon.config.zone import Zone
from addon.exchange.request import RequestState
from addon.exchange.request import hostname
from addon.expressions import FieldValues
from addon.http import codings
from addon.http.accept_encoding import IDENTITY
from addon.http.accept_encoding import parse_accept_encoding
from addon.http.cache_control import parse_cache_control
from addon.http.etag import ETag
from addon.http.etag import parse_etag
from addon.http.fields import media_type
from addon.http.headers import wire_text
from addon.http.messages import Response
from addon.vocabulary import Action

UTF8_NAMES = ("utf-8", "utf8", "us-ascii", "ascii")


@dataclass(frozen=True)
class Recode:
    """The body must be decoded from `source` and encoded as `target` (CPU-bound)."""

    source: str
    target: str
    html: html.HtmlJob | None = None  # rewrite the decoded page with these features


@dataclass  # not frozen: made for every response, and frozen init is 3x slower
class Content:
    """What the content phase decided, and the header edits that carry it out."""

    decision: Decision
    inputs: ResponseInputs
    etag: ETag | None  # the origin's
    edits: dict[bytes, bytes | None]  # header -> new value (exact bytes); None deletes it
    drop_content_length: bool = False
    recode: Recode | None = None  # the body must change (see exchange/recode.py)
    rules: tuple[str, ...] = ()  # the compression rule that matched
    notes: tuple[str, ...] = ()


class SizeProbes:
    """Size probes remembered by the body's length and hash, a bounded number of them: the
    same stylesheet passed through again, or a stored object served again, skips creating
    a decoder, which costs more than the rest of a pass-through decision. Held by whoever
    runs many exchanges (EdgeContext), not by this module."""

    MAX = 4096
    BODY_MAX = 64 * 1024  # hashing a bigger body would cost more than decoding its start

    def __init__(self) -> None:
        self.known: dict[tuple[str, int, int], tuple[int | None, str]] = {}

    def size(self, body: bytes, coding: str) -> tuple[int | None, str]:
        if len(body) > self.BODY_MAX:
            return _probe_size(body, coding)
        key = (coding, len(body), hash(body))
        known = self.known.get(key)
        if known is None:
            known = self.known[key] = _probe_size(body, coding)
            if len(self.known) > self.MAX:
                self.known.pop(next(iter(self.known)))  # oldest first: a plain bound
        return known


def content_phase(zone: Zone, state: RequestState, response: Response,
                  probes: SizeProbes | None = None) -> Content:
    compression = _compression_rule(zone, state, response)
    index = response.index

    def joined(name: bytes) -> bytes | None:
        values = index.get(name)
        return b", ".join(values) if values else None

    notes: list[str] = []
    media = media_type(joined(b"content-type")).decode("latin-1")
    rewriters, polish_mode = _features(zone, state, response, media, joined, notes)
    etag = parse_etag(index.get(b"etag", []))
    inputs, size_note = _inputs(zone, state, response, index, media, etag, compression,
                                rewriters, polish_mode)
    decision = None if inputs.identity_size is not None else decide_without_body(inputs, etag)
    if decision is None:
        if inputs.identity_size is None:
            src = origin_coding(inputs.content_encoding)
            assert src is not None and response.body is not None
            size, error = (probes.size(response.body, src) if probes is not None
                           else _probe_size(response.body, src))
            inputs = inputs._replace(identity_size=size, decode_error=error)
        decision = decide(inputs, etag)
    if size_note and decision.changed:  # only then could the size have mattered
        notes.append(size_note)
    rules = (compression.label,) if compression else ()
    content = Content(decision, inputs, etag, {}, rules=rules, notes=tuple(notes))
    if decision.changed:
        _carry_out(content, zone, state, response, joined)
    return content


def _compression_rule(zone: Zone, state: RequestState, response: Response
                      ) -> CompressionRule | None:
    """compress_response, last match wins (facts 0.11)."""
    compression = None
    if zone.compression_rules:
        env = FieldValues(state.request, response)
        for rule in zone.matching("compression_rules", env):
            assert isinstance(rule.action_parameters, CompressParameters)
            compression = CompressionRule(rule.label, rule.action_parameters.algorithms)
    return compression


def _features(zone: Zone, state: RequestState, response: Response, media: str,
              joined: Callable[[bytes], bytes | None], notes: list[str]
              ) -> tuple[tuple[str, ...], str]:
    """The HTML features that rewrite this response, and the Polish mode for an image."""
    if media in html.HTML_TYPES:
        rewriters = html.active_features(state.features, media, zone.plan)
        declared = html.charset.from_content_type(joined(b"content-type"))
        if rewriters and response.streaming and declared and declared.strip(
                "\"'").lower().replace("_", "-") not in UTF8_NAMES:
            notes.append(f"a streamed page in {declared} is not rewritten: the edge rewrites "
                         "streamed pages in UTF-8 only (modelled), so "
                         f"{html.labels(rewriters)} left it as it was")
            rewriters = ()
        if state.turned_off:
            notes.append(f"Respect Strong ETags turned off {html.labels(state.turned_off)} for "
                         "this request (facts 2.2.3), so they did not rewrite the page")
        if state.uninspected:
            notes.append("Response Body Buffering is none for this request: the body streams "
                         f"uninspected, so {html.labels(state.uninspected)} did not rewrite the "
                         "page (facts 3.0.3)")
        return rewriters, ""
    if media.startswith("image/"):
        vary = [wire_text(v).strip().lower() for v in (joined(b"vary") or b"").split(b",")]
        verdict = polish.applies(str(state.features.get("polish", "off")), zone.plan, media,
                                 response.status, vary,
                                 parse_cache_control(joined(b"cache-control")))
        if verdict.note:
            notes.append(verdict.note)
        return (), verdict.mode
    return (), ""


def _inputs(zone: Zone, state: RequestState, response: Response,
            index: dict[bytes, list[bytes]], media: str, etag: ETag | None,
            compression: CompressionRule | None, rewriters: tuple[str, ...], polish_mode: str
            ) -> tuple[ResponseInputs, str]:
    """Everything the decision depends on, and a note when the size was assumed."""
    content_encoding = tuple(wire_text(v).strip() for v in index.get(b"content-encoding", ()))
    src = origin_coding(content_encoding)
    body = response.body
    size_note = ""
    if state.head and not body or response.streaming:
        what = "a streamed body" if response.streaming else "HEAD"
        identity_size, size_note = _size_from_headers(src, index.get(b"content-length"),
                                                      response.size_hint, what)
    else:  # an identity body's size is known without decoding anything
        identity_size = (min(len(body), SIZE_PROBE) if src == IDENTITY and body is not None
                         else None)
    cache_control = index.get(b"cache-control")
    accepted, deflate = visitor_codings(state.visitor_accept_encoding)
    inputs = ResponseInputs(
        method=state.request.method,
        status=response.status,
        media_type=media,
        content_encoding=content_encoding,
        no_transform=bool(cache_control) and "no-transform" in parse_cache_control(
            b", ".join(cache_control)),
        etag_kind=etag.kind if etag else None,
        etag_problem=etag.problem if etag else "",
        streamed=response.streamed or (body is None and not response.streaming),
        identity_size=identity_size,
        partial=response.status == 206 or b"content-range" in index,
        accepted=accepted,
        accepts_deflate=deflate,
        plan=zone.plan,
        brotli=bool(zone.settings.get("brotli", True)),
        respect_strong_etags=state.respect_strong_etags,
        compression_rule=compression,
        rewriters=rewriters,
        polish=polish_mode,
    )
    return inputs, size_note


@lru_cache(maxsize=1024)  # visitors send few distinct values
def visitor_codings(accept_encoding: str | None) -> tuple[frozenset[str], bool]:
    """Which of gzip, br and zstd the visitor accepts, and whether it accepts deflate."""
    return (accepted_codings(accept_encoding),
            parse_accept_encoding(accept_encoding).accepts("deflate"))


def _carry_out(content: Content, zone: Zone, state: RequestState, response: Response,
               joined: Callable[[bytes], bytes | None]) -> None:
    """The header edits, and the re-coding job, of a decision that changes something."""
    decision = content.decision
    head_only = state.head and not response.body and not response.streaming
    if decision.action is Action.POLISH:
        size = len(response.body or b"")
        if response.body is None or head_only:
            length = joined(b"content-length") or b""
            size = int(length) if length.strip().isdigit() else 0
        content.edits = {b"etag": decision.etag_out, b"cf-polished": polish.header(size)}
        return
    content.edits = coding_headers(decision, joined(b"vary"))
    content.drop_content_length = True
    if head_only:  # the GET's headers (facts 1.7.4), no body to re-code
        return
    job = None
    if decision.action is Action.REWRITE:
        host = hostname(state.request.host)
        job = html.HtmlJob(content.inputs.rewriters,
                           html.charset.from_content_type(joined(b"content-type")),
                           zone.https_hosts or (host,), host)
    source = origin_coding(content.inputs.content_encoding) or IDENTITY
    content.recode = Recode(source, decision.encoding_out, job)


def coding_headers(decision: Decision, vary: bytes | None) -> dict[bytes, bytes | None]:
    out = decision.encoding_out
    return {
        b"content-encoding": None if out == IDENTITY else out.encode(),
        b"etag": decision.etag_out,
        b"vary": vary_with_accept_encoding(vary),
    }


def vary_with_accept_encoding(vary: bytes | None) -> bytes:
    """The origin's Vary bytes with Accept-Encoding appended once."""
    current = vary or b""
    names = [n.strip().lower() for n in current.split(b",")]
    if b"accept-encoding" in names or b"*" in names:
        return current
    return current + b", Accept-Encoding" if current.strip() else b"Accept-Encoding"


def passed_through(content: Content, reason: str) -> Content:
    """The content phase's verdict replaced by a pass-through found late (the body could
    not be decoded or rewritten)."""
    decision = pass_through(content.inputs, content.etag, reason, MODELLED)
    return replace(content, decision=decision, edits={}, drop_content_length=False,
                   recode=None)


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


def _probe_size(body: bytes, coding: str) -> tuple[int | None, str]:
    """The decoded size up to SIZE_PROBE, or why the body cannot be decoded."""
    try:
        return codings.decoded_size_at_least(body, coding, SIZE_PROBE), ""
    except codings.DecodeError as e:
        return None, str(e)
