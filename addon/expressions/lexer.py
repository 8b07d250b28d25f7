"""The words, symbols and strings of the Rules language: the low level the parser reads
with (a base class of parser._Parser). Strings take Cloudflare's escapes (backslash
before a quote or a backslash, \\xHH, \\OOO) and raw strings (r"..." and r#"..."#).
"""

from __future__ import annotations

import re

from addon.expressions.errors import ExpressionError
from addon.expressions.syntax import StringLiteral

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class Lexer:
    def __init__(self, source: str):
        self.s = source
        self.i = 0

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def error(self, message: str, start: int, length: int = 1, hint: str = "") -> ExpressionError:
        return ExpressionError(message, self.s, start, length, hint)

    def word_at(self, i: int) -> str:
        m = IDENT.match(self.s, i)
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
