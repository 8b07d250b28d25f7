"""Type-check a parsed expression and turn it into a closure over field values.

Evaluation follows Cloudflare's documented semantics: byte strings compared
case-sensitively, a missing value (absent map key, index out of range) makes any
comparison false, `wildcard` is case-insensitive over the whole value, `matches`
uses RE2 (linear time, no backreferences or look-around).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from addon.expressions import functions
from addon.expressions import parser as ast
from addon.expressions.errors import ExpressionError
from addon.expressions.errors import NotEmulatedError
from addon.expressions.fields import CLOUDFLARE_ONLY_FIELD_PREFIXES
from addon.expressions.fields import FIELDS
from addon.expressions.functions import FUNCTIONS
from addon.expressions.functions import article
from addon.expressions.schema import BOOL
from addon.expressions.schema import BYTES
from addon.expressions.schema import INT
from addon.expressions.schema import IP
from addon.expressions.schema import Phase
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
@dataclass(frozen=True)
class Expression:
    """A compiled rule expression: call `matches(env)` per request."""

    source: str
    phase: Phase
    fields: frozenset[str]
    _fn: Callable[[Env], bool]

    def matches(self, env: Env) -> bool:
        return self._fn(env) is True


@dataclass(frozen=True)
class _Value:
    type: Type
    fn: Fn
    star_at: int | None = None  # offset of a `[*]` that maps this value over an array
    literal: bool = False

    @property
    def each(self) -> bool:
        return self.star_at is not None


def compile_expression(source: str, phase: Phase = Phase.REQUEST) -> Expression:
    """Parse and check `source`; raise ExpressionError (line, column, caret, hint)."""
    tree = ast.parse(source)
    c = _Compiler(source, phase)
    fn = c.boolean(tree)
    return Expression(source, phase, frozenset(c.fields), fn)


class _Compiler:
    def __init__(self, source: str, phase: Phase):
        self.source = source
        self.phase = phase
        self.fields: set[str] = set()

    def error(
        self,
        message: str,
        node_or_start: ast.Node | int,
        length: int | None = None,
        hint: str = "",
        cls: type[ExpressionError] = ExpressionError,
    ) -> ExpressionError:
        if isinstance(node_or_start, ast.Node):
            start, length = node_or_start.start, node_or_start.end - node_or_start.start
        else:
            start, length = node_or_start, length or 1
        return cls(message, self.source, start, length, hint)

    # -- Boolean layer --

    def boolean(self, node: ast.Node) -> Fn:
        v = self.node(node)
        if v.each:
            raise self.error(
                "`[*]` can only be used inside a function's first argument", v.star_at, 3,
                "wrap the comparison in any(...) or all(...), e.g. "
                'any(http.request.headers["accept"][*] contains "gzip")',
            )  # fmt: skip
        if v.type != BOOL:
            raise self.error(
                f"expected a Boolean, but this is {article(v.type)}", node, None,
                "compare it with an operator, e.g. `eq`, `contains` or `in {...}`",
            )  # fmt: skip
        return v.fn

    def node(self, node: ast.Node) -> _Value:
        if isinstance(node, ast.BoolLiteral):
            value = node.value
            return _Value(BOOL, lambda env: value)
        if isinstance(node, ast.Logical):
            return _Value(
                BOOL, _logical(node.op, self.boolean(node.left), self.boolean(node.right))
            )
        if isinstance(node, ast.Not):
            inner = self.node(node.operand)
            if inner.type == BOOL and not inner.each:
                f = inner.fn
                return _Value(BOOL, lambda env: not f(env))
            if inner.each and inner.type == array(BOOL):
                f = inner.fn
                return _Value(inner.type, lambda env: _map_not(f(env)), inner.star_at)
            raise self.error(f"`not` needs a Boolean, but this is {article(inner.type)}",
                             node.operand)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.FieldRef):
            return self.field(node)
        if isinstance(node, ast.Index):
            return self.index(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.StringLiteral):
            value = node.value
            return _Value(BYTES, lambda env: value, literal=True)
        if isinstance(node, ast.Word):
            value = self.int_literal(node)
            return _Value(INT, lambda env: value, literal=True)
        raise self.error("a value is not allowed here", node)

    # -- values --

    def field(self, node: ast.FieldRef) -> _Value:
        name = node.name
        spec = FIELDS.get(name)
        if spec is None:
            if name.startswith(CLOUDFLARE_ONLY_FIELD_PREFIXES):
                raise self.error(
                    f"field `{name}` is a Cloudflare field this emulator cannot evaluate", node,
                    hint="see the README's list of supported fields", cls=NotEmulatedError,
                )  # fmt: skip
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "see the README's list of fields."
            if "." not in name or not close:
                hint += f' If this is a value, quote it: "{name}"'
            raise self.error(f"unknown field `{name}`", node, hint=hint)
        if spec.phase is Phase.RESPONSE and self.phase is Phase.REQUEST:
            raise self.error(
                f"`{name}` is a response field and this rule runs in the request phase", node,
                hint="configuration and cache rules run before the origin answers; "
                "response fields work in compression rules",
            )  # fmt: skip
        self.fields.add(name)
        return _Value(spec.type, lambda env: env[name])

    def index(self, node: ast.Index) -> _Value:
        base = self.node(node.base)
        container = base.type.inner if base.each else base.type
        assert container is not None or not base.each
        if container is None or container.kind not in ("array", "map"):
            raise self.error(
                f"cannot index {article(container or base.type)}",
                node.key_start - 1,
                node.end - node.key_start + 1,
            )
        key = node.key
        result = container.inner
        assert result is not None
        if key is None:
            if base.each:
                raise self.error("only one `[*]` is allowed here", node.key_start - 1, 3)
            f = base.fn
            star = node.key_start - 1
            if container.kind == "map":
                return _Value(array(result), lambda env: _map_values(f(env)), star)
            return _Value(array(result), f, star)
        if container.kind == "array" and not isinstance(key, int):
            raise self.error(
                "an array is indexed by a non-negative integer, e.g. [0]",
                node.key_start,
                node.end - node.key_start - 1,
            )
        if container.kind == "map" and not isinstance(key, str):
            raise self.error(
                'a map is indexed by a string key, e.g. ["accept"]',
                node.key_start,
                node.end - node.key_start - 1,
            )
        get = _getter(key)
        f = base.fn
        if base.each:
            return _Value(array(result), lambda env: _map_each(get, f(env)), base.star_at)
        return _Value(result, lambda env: get(f(env)))

    def call(self, node: ast.Call) -> _Value:
        name = node.name
        spec = FUNCTIONS.get(name)
        if spec is None:
            if name in functions.CLOUDFLARE_ONLY_FUNCTIONS:
                raise self.error(
                    f"function `{name}()` is not emulated", node.start, len(name),
                    hint="supported: " + ", ".join(sorted(FUNCTIONS)), cls=NotEmulatedError,
                )  # fmt: skip
            close = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.6)
            raise self.error(
                f"unknown function `{name}()`", node.start, len(name),
                hint=f"did you mean `{close[0]}()`?" if close else
                "supported: " + ", ".join(sorted(FUNCTIONS)),
            )  # fmt: skip
        lo, hi = spec.min_args, spec.max_args
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 64 else f"at least {lo}"
            raise self.error(f"`{name}()` takes {want} argument(s), got {len(node.args)}", node)
        args = [self.argument(a, i) for i, a in enumerate(node.args)]
        first = args[0]
        if spec.field_first and first.literal:
            raise self.error(
                f"the first argument of `{name}()` must be a field or a function, not a literal",
                node.args[0],
            )  # fmt: skip
        element = first.type.inner if first.each else first.type
        assert element is not None
        ret = spec.check(_Call(self, node, args, element))
        impl = spec.impl
        fns = [a.fn for a in args]
        if name in ("any", "all"):
            f0 = fns[0]
            return _Value(BOOL, lambda env: impl(f0(env)))
        if first.each:
            f0, rest = fns[0], fns[1:]

            def mapped(env: Env) -> Any:
                items = f0(env)
                if items is None:
                    return None
                extra = [f(env) for f in rest]
                return [impl(x, *extra) for x in items]

            return _Value(array(ret), mapped)
        if len(fns) == 1:
            f0 = fns[0]
            return _Value(ret, lambda env: impl(f0(env)))
        return _Value(ret, lambda env: impl(*[f(env) for f in fns]))

    def argument(self, node: ast.Node, position: int) -> _Value:
        v = self.node(node)
        if v.each and position > 0:
            raise self.error("`[*]` is only allowed in a function's first argument", v.star_at, 3)
        return v

    # -- comparisons --

    def compare(self, node: ast.Compare) -> _Value:
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
            return _Value(array(BOOL), lambda env: _map_test(test, f(env), env), lhs.star_at)
        return _Value(BOOL, lambda env: _test_one(test, f(env), env))

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


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.encoding = re2.Options.Encoding.LATIN1  # match bytes, like Cloudflare's engine
_RE2_OPTIONS.log_errors = False




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


def _map_not(values: list[bool] | None) -> list[bool] | None:
    return None if values is None else [not v for v in values]


def _map_values(mapping: dict | None) -> list | None:
    return None if mapping is None else list(mapping.values())


def _map_each(get: Callable[[Any], Any], values: list | None) -> list | None:
    return None if values is None else [get(v) for v in values]


def _getter(key: int | str) -> Callable[[Any], Any]:
    if isinstance(key, int):
        return lambda c: c[key] if c is not None and key < len(c) else None
    return lambda c: None if c is None else c.get(key)


def _logical(op: str, left: Fn, right: Fn) -> Fn:
    if op == "and":
        return lambda env: left(env) and right(env)
    if op == "or":
        return lambda env: left(env) or right(env)
    return lambda env: left(env) != right(env)


class _Call:
    """One call as a function's check sees it (functions.Call)."""

    def __init__(self, compiler: Any, node: ast.Call, args: list[Any], first: Type) -> None:
        self.compiler, self.node = compiler, node
        self.types = [first, *(a.type for a in args[1:])]
        self.whole = args[0].type

    def need(self, i: int, ok: bool, what: str) -> None:
        if not ok:
            name = self.node.name
            raise self.fail(i, f"argument {i + 1} of `{name}()` must be {what}, but it is "
                               f"{article(self.types[i])}")

    def literal(self, i: int) -> bytes | None:
        arg = self.node.args[i]
        return arg.value if isinstance(arg, ast.StringLiteral) else None

    def fail(self, i: int, message: str) -> Exception:
        return self.compiler.error(message, self.node.args[i])
