"""Syntax of the Rules language: source text to an untyped tree.

A hand-written recursive-descent parser, shaped like Cloudflare's own wirefilter
parser so that the same texts are accepted and the errors point at the same spot.

    expr    := xor  (("or"  | "||") xor)*
    xor     := and  (("xor" | "^^") and)*
    and     := unary (("and" | "&&") unary)*
    unary   := ("not" | "!") unary | "(" expr ")" | "true" | "false" | simple
    simple  := value [op rhs]                      a bare value must be Boolean
    value   := (field | name "(" [arg ("," arg)*] ")") index*
    arg     := ("not" | "!")* (simple | literal)
    index   := "[" (integer | string | "*") "]"
    rhs     := string | raw string | "{" item* "}" | "$" name | value | word
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from addon.expressions.errors import ExpressionError

MAX_EXPRESSION_LENGTH = 4096  # facts 4.6

COMPARISON_OPERATORS = {
    "eq": "eq", "==": "eq", "ne": "ne", "!=": "ne",
    "lt": "lt", "<": "lt", "le": "le", "<=": "le",
    "gt": "gt", ">": "gt", "ge": "ge", ">=": "ge",
    "contains": "contains", "matches": "matches", "~": "matches",
    "wildcard": "wildcard", "in": "in",
}  # fmt: skip
LOGICAL_WORDS = {"and", "or", "xor", "not"}
KEYWORDS = set(COMPARISON_OPERATORS) | LOGICAL_WORDS | {"strict", "true", "false"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_WORD = re.compile(r"[0-9A-Za-z_.:/+\-]+")
_SYMBOL_OPS = ("==", "!=", "<=", ">=", "<", ">", "~")


# ---- tree -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    start: int
    end: int


@dataclass(frozen=True)
class BoolLiteral(Node):
    value: bool


@dataclass(frozen=True)
class StringLiteral(Node):
    value: bytes
    raw: bool  # r"..." strings are never unescaped


@dataclass(frozen=True)
class Word(Node):
    """An unquoted literal (integer, IP address, CIDR, range); typed by the compiler."""

    text: str


@dataclass(frozen=True)
class SetLiteral(Node):
    items: tuple[StringLiteral | Word, ...]


@dataclass(frozen=True)
class ListRef(Node):
    name: str


@dataclass(frozen=True)
class FieldRef(Node):
    name: str


@dataclass(frozen=True)
class Call(Node):
    name: str
    name_end: int
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Index(Node):
    base: Node
    key: int | str | None  # None means [*]
    key_start: int


@dataclass(frozen=True)
class Compare(Node):
    lhs: Node
    op: str
    op_start: int
    op_end: int
    rhs: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Logical(Node):
    op: str  # "and" | "or" | "xor"
    left: Node
    right: Node


# ---- parser ---------------------------------------------------------------------------------


def parse(source: str) -> Node:
    """Parse one expression; raise ExpressionError with position and hint."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; Cloudflare allows at most "
            f"{MAX_EXPRESSION_LENGTH}",
            source, MAX_EXPRESSION_LENGTH, 1,
            "split the rule in two, or use an inline set `in {...}` instead of repeated `or`",
        )  # fmt: skip
    p = _Parser(source)
    p.skip_ws()
    if p.at_end():
        raise ExpressionError(
            "expression is empty", source, 0, 1, "write `true` to match every request"
        )
    node = p.expr()
    p.skip_ws()
    if not p.at_end():
        p.unexpected("expected `and`, `or`, `xor` or the end of the expression")
    return node


class _Parser:
    def __init__(self, source: str):
        self.s = source
        self.i = 0

    # -- low level --

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def error(self, message: str, start: int, length: int = 1, hint: str = "") -> ExpressionError:
        return ExpressionError(message, self.s, start, length, hint)

    def word_at(self, i: int) -> str:
        m = _IDENT.match(self.s, i)
        return m.group(0) if m else ""

    def keyword(self, word: str) -> bool:
        """Consume `word` if it stands here as a whole word."""
        self.skip_ws()
        end = self.i + len(word)
        if self.s.startswith(word, self.i) and (
            end >= len(self.s) or not (self.s[end].isalnum() or self.s[end] in "_.")
        ):
            self.i = end
            return True
        return False

    def symbol(self, sym: str) -> bool:
        self.skip_ws()
        if self.s.startswith(sym, self.i):
            self.i += len(sym)
            return True
        return False

    def unexpected(self, expected: str) -> None:
        self.skip_ws()
        if self.at_end():
            raise self.error(f"unexpected end of expression: {expected}", self.i)
        word = self.word_at(self.i)
        if word and word.lower() in KEYWORDS and word != word.lower():
            raise self.error(
                f"operator `{word}` must be lowercase", self.i, len(word),
                f"write `{word.lower()}`: Cloudflare's English operators are lowercase only",
            )  # fmt: skip
        length = len(word) if word else 1
        raise self.error(
            f"unexpected `{self.s[self.i : self.i + length]}`: {expected}", self.i, length
        )

    # -- logical layer --

    def expr(self) -> Node:
        return self._binary("or", "||", self.xor)

    def xor(self) -> Node:
        return self._binary("xor", "^^", self.and_)

    def and_(self) -> Node:
        return self._binary("and", "&&", self.unary)

    def _binary(self, word: str, sym: str, operand) -> Node:
        left = operand()
        while True:
            self.skip_ws()
            if self.symbol(sym) or self.keyword(word):
                right = operand()
                left = Logical(left.start, right.end, word, left, right)
            else:
                return left

    def unary(self) -> Node:
        self.skip_ws()
        start = self.i
        if self.symbol("!") or self.keyword("not"):
            operand = self.unary()
            return Not(start, operand.end, operand)
        if self.symbol("("):
            inner = self.expr()
            if not self.symbol(")"):
                self.unexpected("expected `)` to close the `(`")
            return inner
        if self.keyword("true"):
            return BoolLiteral(start, self.i, True)
        if self.keyword("false"):
            return BoolLiteral(start, self.i, False)
        return self.simple()

    # -- comparisons --

    def simple(self) -> Node:
        lhs = self.value()
        op = self.operator()
        if op is None:
            return lhs
        name, op_start, op_end = op
        rhs = self.rhs(regex=name == "matches")
        return Compare(lhs.start, rhs.end, lhs, name, op_start, op_end, rhs)

    def operator(self) -> tuple[str, int, int] | None:
        self.skip_ws()
        start = self.i
        for sym in _SYMBOL_OPS:
            if self.s.startswith(sym, self.i):
                self.i += len(sym)
                return COMPARISON_OPERATORS[sym], start, self.i
        word = self.word_at(self.i)
        if word == "strict":
            self.i += len(word)
            if self.s.startswith(" wildcard", self.i) and self.word_at(self.i + 1) == "wildcard":
                self.i += len(" wildcard")
                return "strict wildcard", start, self.i
            raise self.error("expected `strict wildcard`", start, len(word))
        if word in COMPARISON_OPERATORS:
            self.i += len(word)
            return COMPARISON_OPERATORS[word], start, self.i
        if word and word.lower() in KEYWORDS and word != word.lower():
            self.unexpected("")
        if word in ("starts_with", "ends_with", "starts", "ends"):
            raise self.error(
                f"`{word}` is not an operator", start, len(word),
                "use the function form: starts_with(http.request.uri.path, \"/x\")",
            )  # fmt: skip
        return None

    def rhs(self, regex: bool = False) -> Node:
        self.skip_ws()
        start = self.i
        if self.at_end():
            self.unexpected("expected a value after the operator")
        c = self.s[self.i]
        if c == '"' or self._raw_string_ahead():
            return self.string(regex)
        if c == "{":
            return self.set_literal()
        if c == "$":
            self.i += 1
            m = re.compile(r"[a-z0-9_]+").match(self.s, self.i)
            if not m:
                raise self.error("expected a list name after `$`", start)
            self.i = m.end()
            return ListRef(start, self.i, m.group(0))
        m = _WORD.match(self.s, self.i)
        if not m:
            self.unexpected("expected a value: a quoted string, a number, an IP address or a set")
        text = m.group(0)
        if text not in ("true", "false") and (
            _IDENT.fullmatch(text) or self.s.startswith("(", m.end())
        ):
            return self.value()
        self.i = m.end()
        return Word(start, self.i, text)

    def set_literal(self) -> SetLiteral:
        start = self.i
        self.i += 1
        items: list[StringLiteral | Word] = []
        while True:
            self.skip_ws()
            if self.at_end():
                raise self.error("set is not closed: expected `}`", start)
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return SetLiteral(start, self.i, tuple(items))
            if c == '"' or self._raw_string_ahead():
                items.append(self.string())
                continue
            m = _WORD.match(self.s, self.i)
            if not m:
                hint = "set items are separated by spaces, not commas" if c == "," else ""
                raise self.error(f"unexpected `{c}` in set", self.i, 1, hint)
            items.append(Word(self.i, m.end(), m.group(0)))
            self.i = m.end()

    # -- values --

    def value(self) -> Node:
        self.skip_ws()
        start = self.i
        name = self.word_at(self.i)
        if not name:
            self.unexpected("expected a field, a function call or `(`")
        if name.lower() in KEYWORDS and name != name.lower():
            self.unexpected("")
        if name in KEYWORDS:
            raise self.error(f"unexpected `{name}`: expected a field or a value", start, len(name))
        self.i += len(name)
        node: Node
        if self.s.startswith("(", self.i):
            self.i += 1
            args = self.args()
            node = Call(start, self.i, name, start + len(name), tuple(args))
        else:
            node = FieldRef(start, self.i, name)
        while self.s.startswith("[", self.i):
            key_start = self.i + 1
            self.i += 1
            self.skip_ws()
            key: int | str | None
            if self.symbol("*"):
                key = None
            elif self.i < len(self.s) and (self.s[self.i] == '"' or self._raw_string_ahead()):
                key = self.string().value.decode("utf-8", "surrogateescape")
            else:
                m = re.compile(r"[0-9]+").match(self.s, self.i)
                if not m:
                    self.unexpected("expected an index: a non-negative integer, a string or `*`")
                key = int(m.group(0))
                if key > 0xFFFFFFFF:
                    raise self.error("index is too large", m.start(), len(m.group(0)))
                self.i = m.end()
            if not self.symbol("]"):
                self.unexpected("expected `]`")
            node = Index(start, self.i, node, key, key_start)
        return node

    def args(self) -> list[Node]:
        args: list[Node] = []
        self.skip_ws()
        if self.symbol(")"):
            return args
        while True:
            args.append(self.arg())
            self.skip_ws()
            if self.symbol(")"):
                return args
            if not self.symbol(","):
                self.unexpected("expected `,` or `)` in the argument list")

    def arg(self) -> Node:
        self.skip_ws()
        start = self.i
        if self.symbol("!") or self.keyword("not"):
            operand = self.arg()
            return Not(start, operand.end, operand)
        if self.at_end():
            self.unexpected("expected an argument")
        c = self.s[self.i]
        if c == '"' or self._raw_string_ahead():
            return self.string()
        m = _WORD.match(self.s, self.i)
        if m and not _IDENT.fullmatch(m.group(0)) and not self.s.startswith("(", m.end()):
            self.i = m.end()
            return Word(start, self.i, m.group(0))
        return self.simple()

    # -- strings --

    def _raw_string_ahead(self) -> bool:
        return re.compile(r'r#*"').match(self.s, self.i) is not None

    def string(self, regex: bool = False) -> StringLiteral:
        """A quoted or raw string. After `matches` escapes are left for the regex engine."""
        start = self.i
        if self.s[self.i] == "r":
            m = re.compile(r'r(#*)"').match(self.s, self.i)
            assert m
            hashes = m.group(1)
            if len(hashes) > 255:
                raise self.error("a raw string allows at most 255 `#`", start, len(hashes) + 1)
            close = '"' + hashes
            end = self.s.find(close, m.end())
            if end < 0:
                raise self.error(
                    "unterminated raw string", start, len(m.group(0)),
                    f"close it with `{close}`",
                )  # fmt: skip
            self.i = end + len(close)
            return StringLiteral(start, self.i, self.s[m.end() : end].encode(), True)
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= len(self.s):
                raise self.error(
                    "unterminated string: no closing `\"`", start, 1,
                    'close the string with `"`; write \\" for a quote inside it',
                )  # fmt: skip
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return StringLiteral(start, self.i, bytes(out), False)
            if c == "\\" and regex:
                out += self.s[self.i : self.i + 2].encode()
                self.i += 2
                continue
            if c == "\\":
                out += self._escape()
                continue
            out += c.encode()
            self.i += 1

    def _escape(self) -> bytes:
        at = self.i
        nxt = self.s[self.i + 1 : self.i + 2]
        if nxt in ('"', "\\"):
            self.i += 2
            return nxt.encode()
        if nxt == "x" and re.compile(r"[0-9A-Fa-f]{2}").fullmatch(self.s, self.i + 2, self.i + 4):
            self.i += 4
            return bytes([int(self.s[at + 2 : at + 4], 16)])
        if re.compile(r"[0-7]{3}").fullmatch(self.s, self.i + 1, self.i + 4):
            value = int(self.s[at + 1 : at + 4], 8)
            if value <= 0xFF:
                self.i += 4
                return bytes([value])
        raise self.error(
            f"invalid escape `\\{nxt}` in string", at, 2,
            'strings accept \\" \\\\ \\xHH and \\OOO; for regular expressions and '
            r'wildcards use a raw string r"..."',
        )  # fmt: skip
