"""Type-check a parsed expression and turn it into a closure over field values.

Evaluation follows Cloudflare's documented semantics: byte strings compared
case-sensitively, a missing value (absent map key, index out of range) makes any
comparison false, `wildcard` is case-insensitive over the whole value, `matches`
uses RE2 (linear time, no backreferences or look-around).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from addon.expressions import functions
from addon.expressions import syntax as ast
from addon.expressions.comparisons import Comparisons
from addon.expressions.comparisons import Value
from addon.expressions.errors import ExpressionError
from addon.expressions.errors import NotEmulatedError
from addon.expressions.fields import CLOUDFLARE_ONLY_FIELD_PREFIXES
from addon.expressions.fields import FIELDS
from addon.expressions.functions import FUNCTIONS
from addon.expressions.functions import article
from addon.expressions.parser import parse
from addon.expressions.schema import BOOL
from addon.expressions.schema import BYTES
from addon.expressions.schema import INT
from addon.expressions.schema import Phase
from addon.expressions.schema import Type
from addon.expressions.schema import array

Env = Any  # a mapping of field name to value; see addon.expressions.fields
Fn = Callable[[Env], Any]

@dataclass(frozen=True)
class Expression:
    """A compiled rule expression: call `matches(env)` per request."""

    source: str
    phase: Phase
    fields: frozenset[str]
    _fn: Callable[[Env], bool]

    def matches(self, env: Env) -> bool:
        return self._fn(env) is True


def compile_expression(source: str, phase: Phase = Phase.REQUEST) -> Expression:
    """Parse and check `source`; raise ExpressionError (line, column, caret, hint)."""
    tree = parse(source)
    c = _Compiler(source, phase)
    fn = c.boolean(tree)
    return Expression(source, phase, frozenset(c.fields), fn)


class _Compiler(Comparisons):
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

    def node(self, node: ast.Node) -> Value:
        if isinstance(node, ast.BoolLiteral):
            value = node.value
            return Value(BOOL, lambda env: value)
        if isinstance(node, ast.Logical):
            return Value(
                BOOL, _logical(node.op, self.boolean(node.left), self.boolean(node.right))
            )
        if isinstance(node, ast.Not):
            inner = self.node(node.operand)
            if inner.type == BOOL and not inner.each:
                f = inner.fn
                return Value(BOOL, lambda env: not f(env))
            if inner.each and inner.type == array(BOOL):
                f = inner.fn
                return Value(inner.type, lambda env: _map_not(f(env)), inner.star_at)
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
            return Value(BYTES, lambda env: value, literal=True)
        if isinstance(node, ast.Word):
            value = self.int_literal(node)
            return Value(INT, lambda env: value, literal=True)
        raise self.error("a value is not allowed here", node)

    # -- values --

    def field(self, node: ast.FieldRef) -> Value:
        name = node.name
        spec = FIELDS.get(name)
        if spec is None:
            if name.startswith(CLOUDFLARE_ONLY_FIELD_PREFIXES):
                raise self.error(
                    f"field `{name}` is a Cloudflare field this emulator cannot evaluate", node,
                    hint="see docs/rules-file.md for the supported fields", cls=NotEmulatedError,
                )  # fmt: skip
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "docs/rules-file.md lists them."
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
        return Value(spec.type, lambda env: env[name])

    def index(self, node: ast.Index) -> Value:
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
                return Value(array(result), lambda env: _map_values(f(env)), star)
            return Value(array(result), f, star)
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
            return Value(array(result), lambda env: _map_each(get, f(env)), base.star_at)
        return Value(result, lambda env: get(f(env)))

    def call(self, node: ast.Call) -> Value:
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
            return Value(BOOL, lambda env: impl(f0(env)))
        if first.each:
            f0, rest = fns[0], fns[1:]

            def mapped(env: Env) -> Any:
                items = f0(env)
                if items is None:
                    return None
                extra = [f(env) for f in rest]
                return [impl(x, *extra) for x in items]

            return Value(array(ret), mapped)
        if len(fns) == 1:
            f0 = fns[0]
            return Value(ret, lambda env: impl(f0(env)))
        return Value(ret, lambda env: impl(*[f(env) for f in fns]))

    def argument(self, node: ast.Node, position: int) -> Value:
        v = self.node(node)
        if v.each and position > 0:
            raise self.error("`[*]` is only allowed in a function's first argument", v.star_at, 3)
        return v

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
