"""Which coding the edge would serve a visitor when it compresses (facts 0.3 to 0.11): the
compression rule's algorithms, else the plan's preference among what the visitor accepts,
above the minimum sizes and for compressible media types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from addon.compression import policy

if TYPE_CHECKING:
    from addon.compression.decision import ResponseInputs

SIZE_PROBE = max(policy.MIN_SIZE.values())


def edge_choice(i: ResponseInputs, accepted: frozenset[str], size: int
                 ) -> tuple[str | None, str]:
    """The coding the edge would serve this visitor, or None for no edge compression."""
    if i.status not in policy.COMPRESSIBLE_STATUSES:
        return None, f"status {i.status} is not compressed (only 200, 403 and 404, facts 0.5)"
    rule = i.compression_rule
    if rule is not None:
        tried: list[str] = []
        for name in rule.algorithms:
            if name == "none":
                return None, f"compression rule {rule.label} says none"
            if name == "default":
                choice, why = default_choice(i, accepted, size)
                return choice, f"compression rule {rule.label} falls back to default: {why}"
            candidates = (
                policy.AUTO_ORDER[i.plan] if name == "auto" else (policy.ALGORITHM_CODINGS[name],)
            )
            for coding in candidates:
                if coding in accepted and size >= policy.MIN_SIZE[coding]:
                    how = f"auto picked {coding} (order modelled)" if name == "auto" else name
                    return coding, (
                        f"compression rule {rule.label} chose {how}, the first of "
                        f"its algorithms the visitor accepts (facts 0.11)"
                    )
            tried.append(name)
        small = f" for a {size}-byte body" if size < SIZE_PROBE else ""
        return None, (
            f"compression rule {rule.label}: the visitor accepts none of "
            f"{_list(tried)}{small}, so no compression (facts 1.1.5)"
        )
    return default_choice(i, accepted, size)


def default_choice(
    i: ResponseInputs, accepted: frozenset[str], size: int
) -> tuple[str | None, str]:
    if i.media_type not in policy.COMPRESSIBLE_MEDIA_TYPES:
        shown = i.media_type or "(none)"
        return None, (
            f"media type {shown} is not in Cloudflare's list of compressible types (facts 0.3)"
        )
    order = tuple(c for c in policy.PLAN_DEFAULT_ORDER[i.plan] if c != "br" or i.brotli)
    brotli_note = "" if i.brotli else " with Brotli off"
    small = []
    for coding in order:
        if coding not in accepted:
            continue
        if size < policy.MIN_SIZE[coding]:
            small.append(coding)
            continue
        return coding, (
            f"the edge prefers {_list(order)} on the {i.plan} plan{brotli_note} and "
            f"the visitor accepts {coding} (facts 0.8)"
        )
    if small:
        return None, (
            f"the body is {size} bytes, below the minimum for {_list(small)} "
            "(48 bytes for gzip, 50 for Brotli and Zstandard, facts 0.4)"
        )
    return None, (
        f"the visitor accepts none of {_list(order)}, the {i.plan} plan's algorithms{brotli_note}"
    )


def _list(items) -> str:
    return ", ".join(items)
