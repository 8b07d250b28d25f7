"""ETag grammar (RFC 9110 section 8.8.3) and the edge's ETag conversions (facts 0.1, 2.2, 2.3)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text
_ETAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')


@dataclass(frozen=True)
class ETag:
    raw: str  # the header value(s) as received, joined with ", " when several
    kind: str  # "strong" | "weak" | "malformed"
    problem: str = ""  # why a malformed tag is malformed

    @property
    def weakened(self) -> str:
        return "W/" + self.raw if self.kind == "strong" else self.raw


def parse_etag(values: list[str]) -> ETag | None:
    """Classify the origin's ETag field(s); None when there is none."""
    if not values:
        return None
    raw = ", ".join(values)
    if len(values) > 1:
        return ETag(raw, "malformed", f"{len(values)} ETag fields; a response carries one")
    value = values[0]
    m = _ETAG.fullmatch(value)
    if m:
        return ETag(raw, "weak" if m.group(1) else "strong")
    return ETag(raw, "malformed", _problem(value))


def _problem(value: str) -> str:
    if value.startswith(("w/", "W\\", 'W"')):
        return "weak prefix is not exactly W/"
    inner = value[2:] if value.startswith("W/") else value
    if not inner.startswith('"') and not inner.endswith('"'):
        return "not double-quoted"
    if not (inner.startswith('"') and inner.endswith('"') and len(inner) >= 2):
        return "unbalanced double quote"
    return "contains a character not allowed in an entity tag (space, control or quote)"


def transform(etag: ETag | None) -> tuple[str, str | None]:
    """The edge changed the body: strong -> weak, weak kept, malformed removed.

    Returns (action, new header value or None to remove it).
    """
    if etag is None:
        return "absent", None
    if etag.kind == "strong":
        return "weakened", etag.weakened
    if etag.kind == "weak":
        return "kept", etag.raw
    return "removed", None
