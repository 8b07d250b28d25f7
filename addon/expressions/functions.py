"""Rules-language functions (facts 7.3): implementations over bytes, as Cloudflare's are.

Every function returns None (a missing value) when an input is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_PERCENT_U = re.compile(rb"%u([0-9A-Fa-f]{4})")

# Functions Cloudflare has but this emulator does not evaluate.
CLOUDFLARE_ONLY_FUNCTIONS = {
    "lookup_json_string", "lookup_json_integer", "remove_bytes", "decode_base64", "split",
    "join", "regex_replace", "wildcard_replace", "remove_query_args", "to_string", "uuidv4",
    "cidr", "cidr6", "is_timed_hmac_valid_v0", "bit_slice", "encode_base64", "sha256",
    "has_key", "has_value", "cf.random_seed",
}  # fmt: skip


def any_(values: list[Any] | None) -> bool | None:
    return None if values is None else any(v is True for v in values)


def all_(values: list[Any] | None) -> bool | None:
    return None if values is None else all(v is True for v in values)


def starts_with(value: bytes | None, prefix: bytes | None) -> bool | None:
    return None if value is None or prefix is None else value.startswith(prefix)


def ends_with(value: bytes | None, suffix: bytes | None) -> bool | None:
    return None if value is None or suffix is None else value.endswith(suffix)


def lower(value: bytes | None) -> bytes | None:
    return None if value is None else value.lower()  # bytes.lower is ASCII-only, as documented


def upper(value: bytes | None) -> bytes | None:
    return None if value is None else value.upper()


def len_(value: bytes | list | None) -> int | None:
    return None if value is None else len(value)


def concat(*values: Any) -> Any:
    if any(v is None for v in values):
        return None
    if isinstance(values[0], list):
        return [item for v in values for item in v]
    return b"".join(values)


def substring(value: bytes | None, start: int | None, end: int | None = None) -> bytes | None:
    if value is None or start is None:
        return None
    return value[start:end]


def url_decode(value: bytes | None, options: bytes = b"") -> bytes | None:
    """`%xx` and `+`; option `r` decodes until stable, `u` also decodes `%uXXXX`."""
    if value is None:
        return None
    for _ in range(64 if b"r" in options else 1):
        out = value.replace(b"+", b" ")
        if b"u" in options:
            out = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)).encode("utf-8"), out)
        out = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), out)
        if out == value:
            break
        value = out
    return value


IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "any": any_, "all": all_, "starts_with": starts_with, "ends_with": ends_with,
    "lower": lower, "upper": upper, "len": len_, "concat": concat, "substring": substring,
    "url_decode": url_decode,
}  # fmt: skip
