"""ETag grammar (RFC 9110 section 8.8.3) and the edge's ETag conversions (facts 0.1, 2.2, 2.3).

Values stay bytes from the origin to the visitor, so an ETag with obs-text (bytes 0x80-0xFF)
goes out exactly as it came in, with `W/` prepended where the edge weakens it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text
_ETAG = re.compile(rb'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')


@dataclass(frozen=True)
class ETag:
    raw: bytes  # the header value(s) as received, joined with ", " when several
    kind: str  # "strong" | "weak" | "malformed"
    problem: str = ""  # why a malformed tag is malformed

    @property
    def weakened(self) -> bytes:
        return b"W/" + self.raw if self.kind == "strong" else self.raw


def parse_etag(values: list[bytes]) -> ETag | None:
    """Classify the origin's ETag field(s); None when there is none."""
    if not values:
        return None
    raw = b", ".join(values)
    if len(values) > 1:
        return ETag(raw, "malformed", f"{len(values)} ETag fields; a response carries one")
    return _parse_one(values[0])


@lru_cache(maxsize=4096)  # resources keep their tags: the same value comes back often
def _parse_one(value: bytes) -> ETag:
    m = _ETAG.fullmatch(value)
    if m:
        return ETag(value, "weak" if m.group(1) else "strong")
    return ETag(value, "malformed", _problem(value))


def _problem(value: bytes) -> str:
    if value.startswith((b"w/", b"W\\", b'W"')):
        return "weak prefix is not exactly W/"
    inner = value[2:] if value.startswith(b"W/") else value
    if not inner.startswith(b'"') and not inner.endswith(b'"'):
        return "not double-quoted"
    if not (inner.startswith(b'"') and inner.endswith(b'"') and len(inner) >= 2):
        return "unbalanced double quote"
    return "contains a character not allowed in an entity tag (space, control or quote)"


# What a change of the body does to an ETag of each kind (None: no ETag).
TRANSFORM_ACTIONS = {"strong": "weakened", "weak": "kept", "malformed": "removed", None: "absent"}


def transform(etag: ETag | None) -> tuple[str, bytes | None]:
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
