"""The edge's response decision: facts in, plan out. No I/O, no codecs.

Which encoding the visitor gets and what happens to the ETag, following the documented
ETag tables (facts 2.1) where they apply and the modelled procedure (facts 2.3) elsewhere.
Every outcome carries a sentence saying why, and whether that is documented or modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

from addon.compression import policy as policy
from addon.compression.choice import edge_choice
from addon.config.zone import ETAG_REMOVAL_DOCUMENTED
from addon.html import labels
from addon.http import etag as etags
from addon.http.accept_encoding import DECODABLE
from addon.http.accept_encoding import IDENTITY
from addon.http.accept_encoding import parse_accept_encoding
from addon.vocabulary import Action
from addon.vocabulary import Basis
from addon.vocabulary import ETagAction

DOCUMENTED, MODELLED = Basis.DOCUMENTED, Basis.MODELLED

# facts 2.1: (respect strong etags, codings the visitor accepts, origin coding) -> row
_TABLE_ROWS = {
    (True, frozenset({"gzip", "br"}), "gzip"): 1,
    (True, frozenset({"gzip", "br"}), "br"): 2,
    (True, frozenset({"br"}), "gzip"): 3,
    (True, frozenset({"gzip"}), "br"): 4,
    (True, frozenset({"gzip"}), IDENTITY): 5,
    (False, frozenset({"gzip", "br"}), "gzip"): 1,
    (False, frozenset({"gzip", "br"}), "br"): 2,
    (False, frozenset({"br"}), "gzip"): 3,
    (False, frozenset({"gzip"}), "br"): 4,
    (False, frozenset({"gzip"}), IDENTITY): 5,
}


@dataclass(frozen=True)
class CompressionRule:
    """The last matching compression rule (phase http_response_compression)."""

    label: str
    algorithms: tuple[str, ...]  # Cloudflare names: gzip, brotli, zstd, none, auto, default


class ResponseInputs(NamedTuple):
    """Everything the decision depends on; a tuple, so hashing it for the cache is cheap."""

    method: str
    status: int
    media_type: str
    content_encoding: tuple[str, ...]  # the origin's Content-Encoding values, as received
    no_transform: bool  # the origin sent Cache-Control: no-transform
    etag_kind: str | None  # strong | weak | malformed, None without an ETag
    streamed: bool
    # Length of the decoded body, counted up to SIZE_PROBE (all the decision compares it
    # with); None when unknown: not decoded yet, or it could not be decoded.
    identity_size: int | None
    decode_error: str = ""
    etag_problem: str = ""  # why a malformed ETag is malformed
    partial: bool = False  # 206 or Content-Range: the body is a byte range of the encoding
    accepted: frozenset[str] = frozenset()  # which of gzip, br, zstd the visitor accepts
    accepts_deflate: bool = False  # deflate is never produced, only kept when accepted
    plan: str = "pro"
    brotli: bool = True
    respect_strong_etags: bool = False
    compression_rule: CompressionRule | None = None
    # HTML features that rewrite this response (zone setting ids), and the Polish mode
    # when Polish applies to it; both decided from the request and headers alone
    rewriters: tuple[str, ...] = ()
    polish: str = ""


@dataclass(frozen=True)
class Decision:
    encoding_in: str  # coding token ("identity" when the origin sent none); raw if unsupported
    encoding_out: str
    action: Action
    etag_action: ETagAction
    etag_out: bytes | None  # exactly the bytes the visitor gets
    reason: str
    basis: Basis
    table_row: str = ""

    @property
    def changed(self) -> bool:
        return self.action is not Action.PASS


def origin_coding(values: tuple[str, ...]) -> str | None:
    """The origin's coding when the edge can decode it (one of DECODABLE), else None."""
    if not values:
        return IDENTITY
    if len(values) == 1:
        token = values[0].strip().lower()
        if token in DECODABLE or token == "":
            return token or IDENTITY
    return None


# The decision compares the decoded size only with these minimums (facts 0.4): one size
# from each interval they cut stands for every size in it.
SIZE_PROBE = max(policy.MIN_SIZE.values())
_SIZE_CLASSES = (0, *sorted(set(policy.MIN_SIZE.values())))


# ResponseInputs hold no per-resource values (the ETag's bytes stay out, the size is
# counted only up to SIZE_PROBE), so decisions repeat across responses and are cached.
_CACHE = 4096


@lru_cache(maxsize=1024)  # visitors send few distinct values
def accepted_codings(accept_encoding: str | None) -> frozenset[str]:
    """Which of the codings the edge makes the visitor accepts."""
    visitor = parse_accept_encoding(accept_encoding)
    return frozenset(c for c in ("gzip", "br", "zstd") if visitor.accepts(c))


def decide(i: ResponseInputs, etag: etags.ETag | None) -> Decision:
    return _with_etag(_decide_cached(i), etag)


def decide_without_body(i: ResponseInputs, etag: etags.ETag | None) -> Decision | None:
    """The decision when it is the same pass-through whatever the decoded size; else None.

    Then the origin's body is never decoded, not even to measure it.
    """
    d = _without_body_cached(i)
    return None if d is None else _with_etag(d, etag)


def pass_through(i: ResponseInputs, etag: etags.ETag | None, reason: str, basis: Basis
                 ) -> Decision:
    """A decision to leave the response as the origin sent it, for a reason found late."""
    return _with_etag(_cite(_passthrough(i, reason, basis)), etag)


@lru_cache(maxsize=_CACHE)
def _decide_cached(i: ResponseInputs) -> Decision:
    return _cite(_early(i) or _decide(i, i.identity_size))


@lru_cache(maxsize=_CACHE)
def _without_body_cached(i: ResponseInputs) -> Decision | None:
    early = _early(i)
    if early is not None:
        return _cite(early)
    outcomes = []
    for size in reversed(_SIZE_CLASSES):  # the largest first: the usual transform
        d = _decide(i, size)
        if d.changed:
            return None
        outcomes.append(d)
    d = outcomes[0]
    if any(o.reason != d.reason for o in outcomes):
        d = replace(d, reason=f"{d.reason} (the same at any body size, so it was not decoded)")
    return _cite(d)


def _with_etag(d: Decision, etag: etags.ETag | None) -> Decision:
    """The cached decision with this response's own ETag bytes."""
    if etag is None:
        return d
    if d.etag_action is ETagAction.REMOVED:
        out = None
    else:
        out = etag.raw if not d.changed else etags.transform(etag)[1]
    return Decision(d.encoding_in, d.encoding_out, d.action, d.etag_action, out, d.reason,
                    d.basis, d.table_row)


def _cite(d: Decision) -> Decision:
    cite = f"{d.table_row}, documented" if d.table_row else d.basis
    return replace(d, reason=f"{d.reason} [{cite}]")


def _passthrough(i: ResponseInputs, reason: str, basis: Basis, row: str = "") -> Decision:
    enc_in = ", ".join(i.content_encoding) or IDENTITY
    action = ETagAction.KEPT if i.etag_kind else ETagAction.ABSENT
    return Decision(enc_in, enc_in, Action.PASS, action, None, reason, basis, row)


def _early(i: ResponseInputs) -> Decision | None:
    def passthrough(reason: str, basis: Basis) -> Decision:
        return _passthrough(i, reason, basis)

    if i.streamed:
        return passthrough(
            "the response was streamed (stream_large_bodies), so its headers and "
            "body had already left; nothing could be changed",
            MODELLED,
        )
    if i.status < 200 or i.status in policy.NO_BODY_STATUSES:
        return passthrough(
            f"status {i.status} has no body; only 200, 403 and 404 responses are "
            "compressed (facts 0.5)",
            DOCUMENTED,
        )
    if i.partial:
        return passthrough(
            f"status {i.status} with a byte range of the origin's representation: a partial "
            "body is never decoded or re-encoded, its Content-Range describes the origin's "
            "bytes (facts 1.2.3, 1.8)",
            DOCUMENTED,
        )
    if i.no_transform:
        return passthrough(
            "the origin sent Cache-Control: no-transform, so the edge changes "
            "neither encoding nor ETag and keeps Content-Length (facts 0.6, 1.4.3)",
            DOCUMENTED,
        )
    if origin_coding(i.content_encoding) is None:
        enc_in = ", ".join(i.content_encoding)
        return passthrough(
            f"the origin's Content-Encoding '{enc_in}' is none of gzip, br, zstd and "
            "deflate, which are all the edge decodes; passed through untouched (facts 1.4.5)",
            MODELLED,
        )
    return None


def _decide(i: ResponseInputs, size: int | None) -> Decision:
    """The decision past the early pass-throughs, for a decoded body of `size` bytes."""
    enc_in = ", ".join(i.content_encoding) or IDENTITY
    src = origin_coding(i.content_encoding)
    assert src is not None

    def passthrough(reason: str, basis: Basis, row: str = "") -> Decision:
        return _passthrough(i, reason, basis, row)

    if size is None:
        return passthrough(f"the origin's {src} body could not be decoded ({i.decode_error}); "
                           "passed through untouched rather than guess", MODELLED)
    if i.rewriters:
        return _rewrite(i, enc_in, size)
    if i.polish:
        return _polish(i, enc_in)

    accepted = i.accepted
    src_accepted = src in accepted or (src == "deflate" and i.accepts_deflate)
    row_no = _TABLE_ROWS.get((i.respect_strong_etags, accepted, src))
    rse = "on" if i.respect_strong_etags else "off"
    row = f"ETag table (Respect Strong ETags {rse}), row {row_no}" if row_no else ""
    shown = tuple(c for c in ("gzip", "br", "zstd") if c in accepted)  # a fixed order
    shown += ("deflate",) if i.accepts_deflate else ()
    visitor = f"visitor accepts {_list(shown) or 'no compression'}"

    if i.respect_strong_etags:
        return _decide_respecting(i, enc_in, src, src_accepted, visitor, row)

    wanted, why = edge_choice(i, accepted, size)
    tabled = row and i.compression_rule is None and i.brotli and i.plan != "enterprise"
    basis = DOCUMENTED if tabled else MODELLED
    row = row if tabled else ""
    if wanted is not None:
        if wanted == src:
            return passthrough(
                f"{why}; the origin already sent {src}, so it passed through untouched", basis, row
            )
        verb = "compressed as" if src == IDENTITY else f"decoded from {src} and re-encoded as"
        return _transform(i, enc_in, wanted, f"{why}; the body was {verb} {wanted}", basis, row)
    if src == IDENTITY:
        return passthrough(f"{why}; sent uncompressed as the origin sent it", basis, row)
    if src_accepted:
        return passthrough(
            f"{why}; the {visitor}, including the origin's {src}, so the origin's "
            "encoding was kept (facts 1.4.1)",
            DOCUMENTED if src in ("gzip", "br") else MODELLED,
            row,
        )
    return _transform(i, enc_in, IDENTITY, f"{why}; the {visitor}, not the origin's {src}, "
                      "so the body was decoded to identity (facts 1.4.2)", basis, row)


def _decide_respecting(i: ResponseInputs, enc_in: str, src: str, src_accepted: bool,
                       visitor: str, row: str) -> Decision:
    """Respect Strong ETags on: the origin's encoding is kept or decoded, never re-encoded
    (facts 2.1, the tables' first half)."""

    def passthrough(reason: str, basis: Basis, row: str = "") -> Decision:
        return _passthrough(i, reason, basis, row)

    rule_note = (
        f"; compression rule {i.compression_rule.label} not applied because Respect "
        "Strong ETags keeps the origin's encoding (modelled)"
        if i.compression_rule
        else ""
    )
    basis = DOCUMENTED if row and not i.compression_rule else MODELLED
    if src == IDENTITY:
        return passthrough(
            "Respect Strong ETags is on: the edge never compresses an "
            f"uncompressed origin body ({visitor}){rule_note}",
            basis,
            row,
        )
    if src_accepted:
        return passthrough(
            f"Respect Strong ETags is on and the {visitor}, including the "
            f"origin's {src}: passed through with the ETag intact{rule_note}",
            basis,
            row,
        )
    return _transform(
        i,
        enc_in,
        IDENTITY,
        f"Respect Strong ETags is on but the {visitor}, not the origin's {src}: "
        f"decoded to identity (never re-encoded){rule_note}",
        basis,
        row,
    )


def _rewrite(i: ResponseInputs, enc_in: str, size: int) -> Decision:
    """An HTML feature rewrites the body: decoded, rewritten, encoded as the edge chooses,
    and the ETag removed whether or not anything was found to rewrite (facts 2.3 step 2)."""
    names = labels(i.rewriters)
    wanted, why = edge_choice(i, i.accepted, size)
    out = wanted or IDENTITY
    coded = f"encoded as {out}" if wanted else "sent uncompressed"
    documented = all(n in ETAG_REMOVAL_DOCUMENTED for n in i.rewriters)
    if i.etag_kind is None:
        etag_why = "there was no ETag"
    elif documented:
        etag_why = (f"the ETag was removed: with {names} on, Cloudflare removes an HTML "
                    "page's ETag, weak or strong (facts 2.2.4, 3.2.6)")
    else:
        etag_why = (f"the ETag was removed: {names} rewrite the page for every response, so "
                    "no validator can stay (modelled, facts 2.3 step 2, 3.3.6)")
    reason = (f"{names} on for this {i.media_type} response: the body was decoded, "
              f"rewritten and {coded} ({why}); {etag_why}")
    action = ETagAction.REMOVED if i.etag_kind else ETagAction.ABSENT
    return Decision(enc_in, out, Action.REWRITE, action, None, reason,
                    DOCUMENTED if documented else MODELLED)


def _changed_etag(i: ResponseInputs, because: str) -> tuple[ETagAction, str]:
    """What a change of the body does to the ETag (facts 2.3 step 4), and why."""
    etag_action = ETagAction(etags.TRANSFORM_ACTIONS[i.etag_kind])
    etag_why = {
        "weakened": f"the strong ETag was weakened because {because}",
        "kept": "the weak ETag stays weak",
        "removed": f"the malformed ETag was removed ({i.etag_problem}; facts 0.1, 2.2.8)",
        "absent": "there was no ETag",
    }[etag_action]
    return etag_action, etag_why


def _polish(i: ResponseInputs, enc_in: str) -> Decision:
    etag_action, etag_why = _changed_etag(i, "Polish changes the bytes")
    reason = (f"Polish ({i.polish}) optimizes this {i.media_type} image and adds cf-polished "
              f"(facts 3.5.1, 3.5.4); {etag_why} (facts 3.5.6). The image bytes are not "
              "recompressed here: the emulator shows the headers a polished image gets")
    return Decision(enc_in, enc_in, Action.POLISH, etag_action, None, reason, MODELLED)


def _transform(
    i: ResponseInputs, enc_in: str, out: str, reason: str, basis: Basis, row: str
) -> Decision:
    etag_action, etag_why = _changed_etag(i, "the body changed")
    src = origin_coding(i.content_encoding)
    action = (Action.COMPRESS if src == IDENTITY else Action.DECOMPRESS if out == IDENTITY
              else Action.TRANSCODE)
    return Decision(enc_in, out, action, etag_action, None, f"{reason}; {etag_why}", basis, row)


def _list(items) -> str:
    return ", ".join(items)
