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

from addon.expressions.errors import ExpressionError
from addon.expressions.lexer import IDENT
from addon.expressions.lexer import Lexer
from addon.expressions.syntax import BoolLiteral
from addon.expressions.syntax import Call
from addon.expressions.syntax import Compare
from addon.expressions.syntax import FieldRef
from addon.expressions.syntax import Index
from addon.expressions.syntax import ListRef
from addon.expressions.syntax import Logical
from addon.expressions.syntax import Node
from addon.expressions.syntax import Not
from addon.expressions.syntax import SetLiteral
from addon.expressions.syntax import StringLiteral
from addon.expressions.syntax import Word

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

_WORD = re.compile(r"[0-9A-Za-z_.:/+\-]+")
_SYMBOL_OPS = ("==", "!=", "<=", ">=", "<", ">", "~")


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


class _Parser(Lexer):
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
            IDENT.fullmatch(text) or self.s.startswith("(", m.end())
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
        if m and not IDENT.fullmatch(m.group(0)) and not self.s.startswith("(", m.end()):
            self.i = m.end()
            return Word(start, self.i, m.group(0))
        return self.simple()

    # -- strings --
