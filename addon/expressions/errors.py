"""Errors a user can act on: position, caret under the spot, and a hint."""

from __future__ import annotations


class ExpressionError(ValueError):
    """An expression Cloudflare would reject.

    `offset` is a character offset into `source`; `line`/`column` are 1-based.
    """

    #: Set on errors about valid Cloudflare syntax this emulator does not evaluate
    #: (a field, function or named list it has no data for).
    not_emulated = False

    def __init__(self, message: str, source: str, offset: int, length: int = 1, hint: str = ""):
        self.message = message
        self.source = source
        self.offset = max(0, min(offset, len(source)))
        self.length = max(1, length)
        self.hint = hint
        self.line, self.column = line_and_column(source, self.offset)
        super().__init__(self.render())

    def render(self) -> str:
        lines = self.source.split("\n")
        text = lines[self.line - 1] if self.line - 1 < len(lines) else ""
        col = self.column - 1
        if len(text) > 100:  # show a window around the spot on long lines
            cut = max(0, col - 60)
            text, col = (
                ("..." if cut else "") + text[cut : cut + 100],
                col - cut + (3 if cut else 0),
            )
        width = max(1, min(self.length, len(text) - col))
        caret = " " * col + "^" * width
        out = f"{self.message} (line {self.line}, column {self.column})\n    {text}\n    {caret}"
        if self.hint:
            out += f"\n  hint: {self.hint}"
        return out


class NotEmulatedError(ExpressionError):
    """Valid Cloudflare syntax whose value this emulator cannot compute."""

    not_emulated = True


def line_and_column(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column
