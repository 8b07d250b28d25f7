"""Rules-language functions (facts 7.3): implementations over bytes, as Cloudflare's are.

Every function returns None (a missing value) when an input is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from addon.expressions.schema import BOOL
from addon.expressions.schema import BYTES
from addon.expressions.schema import INT
from addon.expressions.schema import Type
from addon.expressions.schema import array

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


class Call(Protocol):
    """What a function's check sees of one call: the types of its arguments (the first
    one's element type when it is mapped over `[*]`), and how to reject an argument."""

    types: list[Type]
    whole: Type  # the first argument's own type (an array when it is mapped over `[*]`)

    def need(self, i: int, ok: bool, what: str) -> None:
        """Reject argument i (0-based) unless `ok`; `what` says what it must be."""

    def literal(self, i: int) -> bytes | None:
        """Argument i when it is a string literal, else None."""

    def fail(self, i: int, message: str) -> Exception:
        """An error pointing at argument i."""


@dataclass(frozen=True)
class Function:
    """One function of the Rules language: its implementation, how many arguments it
    takes, and the check of their types, which returns the result type (for one element
    when the first argument is mapped over `[*]`)."""

    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int
    check: Callable[[Call], Type]
    field_first: bool = True  # the first argument is a field or function, not a literal


def _bools(c: Call) -> Type:
    c.need(0, c.whole == array(BOOL), 'an array of Booleans, e.g. x[*] eq "y"')
    return BOOL


def _two_strings(c: Call) -> Type:
    c.need(0, c.types[0] == BYTES, "a String")
    c.need(1, c.types[1] == BYTES, "a String")
    return BOOL


def _string_to_string(c: Call) -> Type:
    c.need(0, c.types[0] == BYTES, "a String")
    return BYTES


def _length(c: Call) -> Type:
    c.need(0, c.types[0] == BYTES or c.types[0].kind == "array", "a String or an array")
    return INT


def _concat(c: Call) -> Type:
    first = c.types[0]
    c.need(0, first == BYTES or first.kind == "array", "a String or an array")
    for i in range(1, len(c.types)):
        c.need(i, c.types[i] == first, f"{article(first)} like the first")
    return first


def _substring(c: Call) -> Type:
    c.need(0, c.types[0] == BYTES, "a String")
    for i in range(1, len(c.types)):
        c.need(i, c.types[i] == INT, "an Integer")
    return BYTES


def _url_decode(c: Call) -> Type:
    c.need(0, c.types[0] == BYTES, "a String")
    if len(c.types) == 2 and c.literal(1) not in (b"r", b"u", b"ur", b"ru"):
        raise c.fail(1, 'the option of `url_decode()` must be "r", "u" or "ur"')
    return BYTES


def article(t: Type) -> str:
    """`a String`, `an Integer`."""
    s = str(t)
    return ("an " if s[0] in "AEIOU" else "a ") + s


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("any", any_, 1, 1, _bools, field_first=False),
    Function("all", all_, 1, 1, _bools, field_first=False),
    Function("starts_with", starts_with, 2, 2, _two_strings),
    Function("ends_with", ends_with, 2, 2, _two_strings),
    Function("lower", lower, 1, 1, _string_to_string),
    Function("upper", upper, 1, 1, _string_to_string),
    Function("len", len_, 1, 1, _length),
    Function("concat", concat, 2, 64, _concat, field_first=False),
    Function("substring", substring, 2, 3, _substring),
    Function("url_decode", url_decode, 1, 2, _url_decode),
)}  # fmt: skip
