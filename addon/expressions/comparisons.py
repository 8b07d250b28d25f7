"""Comparisons in the Rules language: `field op value` typed and turned into a predicate,
with Cloudflare's semantics (byte strings compared case-sensitively, a missing value
makes any comparison false, `wildcard` case-insensitive over the whole value, `matches`
in RE2, linear time). A base class of compiler._Compiler.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from addon.expressions import syntax as ast
from addon.expressions.errors import NotEmulatedError
from addon.expressions.functions import article
from addon.expressions.schema import BOOL
from addon.expressions.schema import BYTES
from addon.expressions.schema import INT
from addon.expressions.schema import IP
from addon.expressions.schema import Type
from addon.expressions.schema import array

Env = Any  # a mapping of field name to value; see addon.expressions.fields
Fn = Callable[[Env], Any]

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_ORDER_OPS = {"eq", "ne", "lt", "le", "gt", "ge"}
_OPS_BY_KIND = {
    "bytes": _ORDER_OPS | {"contains", "matches", "wildcard", "strict wildcard", "in"},
    "int": _ORDER_OPS | {"in"},
    "ip": _ORDER_OPS | {"in"},
}

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.encoding = re2.Options.Encoding.LATIN1  # match bytes, like Cloudflare's engine
_RE2_OPTIONS.log_errors = False


@dataclass(frozen=True)
class Value:
    """A typed expression part: its type and the function that reads it from a request."""

    type: Type
    fn: Fn
    star_at: int | None = None  # offset of a `[*]` that maps this value over an array
    literal: bool = False

    @property
    def each(self) -> bool:
        return self.star_at is not None


class Comparisons:
    def compare(self, node: ast.Compare) -> Value:
        lhs = self.node(node.lhs)
        t = lhs.type.inner if lhs.each else lhs.type
        assert t is not None
        op = node.op
        op_len = node.op_end - node.op_start
        if lhs.literal:
            raise self.error(
                "the left side of a comparison must be a field or a function", node.lhs
            )
        if t == BOOL:
            raise self.error(
                f"operator `{op}` cannot be used on a Boolean", node.op_start, op_len,
                "a Boolean stands alone: write `ssl` or `not ssl`",
            )  # fmt: skip
        if t.kind in ("array", "map"):
            raise self.error(
                f"operator `{op}` cannot be used on {article(t)}", node.op_start, op_len,
                "pick one element ([0] or [\"name\"]) or use any(x[*] ...) / all(x[*] ...)",
            )  # fmt: skip
        if op not in _OPS_BY_KIND[t.kind]:
            raise self.error(
                f"operator `{op}` needs a String, but the left side is {article(t)}",
                node.op_start, op_len,
                "integers and IP addresses support eq, ne, lt, le, gt, ge and in",
            )  # fmt: skip
        test = self.predicate(op, t, node.rhs)
        f = lhs.fn
        if lhs.each:
            return Value(array(BOOL), lambda env: _map_test(test, f(env), env), lhs.star_at)
        return Value(BOOL, lambda env: _test_one(test, f(env), env))

    def predicate(self, op: str, t: Type, rhs: ast.Node) -> Callable[[Any, Env], bool]:
        """Build `test(value, env) -> bool` for a present left-hand value."""
        if isinstance(rhs, ast.ListRef):
            raise self.error(
                f"named list `${rhs.name}` cannot be evaluated here", rhs,
                hint="lists live in your Cloudflare account; use an inline set {...}",
                cls=NotEmulatedError,
            )  # fmt: skip
        if op == "in":
            if not isinstance(rhs, ast.SetLiteral):
                raise self.error('`in` needs a set such as {"a" "b"} or {200..299}', rhs)
            return self.set_predicate(t, rhs)
        if isinstance(rhs, ast.SetLiteral):
            raise self.error(f"a set can only follow `in`, not `{op}`", rhs)
        if op in ("matches", "wildcard", "strict wildcard"):
            if not isinstance(rhs, ast.StringLiteral):
                raise self.error(f"`{op}` needs a string literal", rhs)
            pattern = (
                self.regex(rhs)
                if op == "matches"
                else self.wildcard(rhs, case_sensitive=op == "strict wildcard")
            )
            search = pattern.search if op == "matches" else pattern.fullmatch
            return lambda v, env: search(v) is not None
        if isinstance(rhs, ast.FieldRef | ast.Call | ast.Index):
            other = self.node(rhs)
            if other.type != t or other.each:
                raise self.error(f"cannot compare {article(t)} with {article(other.type)}", rhs)
            g = other.fn
            cmp = _COMPARE[op]
            return lambda v, env: _both(cmp, v, g(env))
        lit = self.literal(t, rhs)
        cmp = _COMPARE[op]
        if op == "contains":
            return lambda v, env: lit in v
        return lambda v, env: _both(cmp, v, lit)

    def literal(self, t: Type, node: ast.Node) -> Any:
        if t == BYTES:
            if isinstance(node, ast.StringLiteral):
                return node.value
            raise self.error(
                "expected a quoted string", node,
                hint=f'write "{getattr(node, "text", "")}"' if isinstance(node, ast.Word) else "",
            )  # fmt: skip
        if not isinstance(node, ast.Word):
            raise self.error(
                f"expected {article(t)}, not a string",
                node,
                hint="numbers and IP addresses are written without quotes",
            )
        return self.int_literal(node) if t == INT else self.ip_literal(node)

    def int_literal(self, node: ast.Word) -> int:
        text = node.text
        try:
            value = int(text, 16) if re.fullmatch(r"-?0x[0-9a-fA-F]+", text) else int(text, 10)
        except ValueError:
            raise self.error(f"expected an integer, found `{text}`", node) from None
        if not _INT_MIN <= value <= _INT_MAX:
            raise self.error("integer does not fit in 64 bits", node)
        return value

    def ip_literal(self, node: ast.Word) -> Any:
        try:
            return ipaddress.ip_address(node.text)
        except ValueError:
            hint = "a network goes in a set: ip.src in {192.0.2.0/24}" if "/" in node.text else ""
            raise self.error(f"`{node.text}` is not an IP address", node, hint=hint) from None

    def set_predicate(self, t: Type, node: ast.SetLiteral) -> Callable[[Any, Env], bool]:
        if t == BYTES:
            items = set()
            for item in node.items:
                items.add(self.literal(BYTES, item))
            frozen = frozenset(items)
            return lambda v, env: v in frozen
        singles: set[Any] = set()
        ranges: list[tuple[Any, Any]] = []
        networks: list[Any] = []
        for item in node.items:
            if not isinstance(item, ast.Word):
                raise self.error(f"expected {article(t)} in the set, not a string", item)
            text = item.text
            if ".." in text and not text.endswith(".."):
                lo_text, hi_text = text.split("..", 1)
                lo_node = ast.Word(item.start, item.start + len(lo_text), lo_text)
                hi_start = item.start + len(lo_text) + 2
                hi_node = ast.Word(hi_start, item.end, hi_text)
                conv = self.int_literal if t == INT else self.ip_literal
                lo, hi = conv(lo_node), conv(hi_node)
                if type(lo) is not type(hi) or lo > hi:
                    raise self.error(
                        "incompatible range bounds: the start is above the end or the kinds differ",
                        item,
                    )
                ranges.append((lo, hi))
            elif t == IP and "/" in text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError as e:
                    raise self.error(f"invalid network `{text}`: {e}", item) from None
            else:
                singles.add(self.int_literal(item) if t == INT else self.ip_literal(item))
        frozen = frozenset(singles)

        def contains(v: Any, env: Env) -> bool:
            if v in frozen:
                return True
            for lo, hi in ranges:
                if type(lo) is type(v) and lo <= v <= hi:
                    return True
            return any(v.version == n.version and v in n for n in networks)

        return contains

    def regex(self, node: ast.StringLiteral) -> Any:
        try:
            return re2.compile(node.value, _RE2_OPTIONS)
        except re2.error as e:
            detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
            raise self.error(
                f"invalid regular expression: {detail}",
                node,
                hint="Cloudflare uses Rust regex syntax (as RE2): no backreferences, "
                "no look-around",
            ) from None

    def wildcard(self, node: ast.StringLiteral, case_sensitive: bool) -> Any:
        """`*` matches any run of bytes, `\\*` and `\\\\` are literal; matches the whole value."""
        text = node.value
        if b"**" in text:
            raise self.error("a wildcard may not contain `**`", node, hint="one `*` is enough")
        parts: list[bytes] = []
        i = 0
        while i < len(text):
            c = text[i : i + 1]
            if c == b"\\":
                nxt = text[i + 1 : i + 2]
                if nxt not in (b"*", b"\\"):
                    raise self.error(
                        "invalid escape in wildcard: only \\* and \\\\ are allowed", node
                    )
                parts.append(re.escape(nxt))
                i += 2
            elif c == b"*":
                parts.append(b".*")
                i += 1
            else:
                parts.append(re.escape(c))
                i += 1
        flags = b"(?s)" if case_sensitive else b"(?si)"
        return re2.compile(flags + b"".join(parts), _RE2_OPTIONS)


def _both(cmp: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if b is None:
        return False
    try:
        return cmp(a, b)
    except TypeError:  # IPv4 against IPv6
        return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "contains": lambda a, b: b in a,
}  # fmt: skip


def _test_one(test: Callable[[Any, Env], bool], value: Any, env: Env) -> bool:
    return False if value is None else test(value, env)


def _map_test(test: Callable[[Any, Env], bool], values: Any, env: Env) -> list[bool] | None:
    if values is None:
        return None
    return [v is not None and test(v, env) for v in values]
