"""The HTML rewriting engine: lol-html, Cloudflare's own streaming rewriter, through its
Python bindings (python-lolhtml). The only module that imports them, so the engine can be
replaced without touching the features.

lol-html reads UTF-8 only (lolhtml-notes): callers hand it UTF-8 and convert around it.
Markup no handler touches comes out byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import lolhtml

HTML = lolhtml.ContentType.HTML
STEP = 64 * 1024  # bytes per write(); text chunks split at these boundaries are re-joined


class Element(Protocol):
    """What the features use of lol-html's element (see lolhtml-notes for the rest)."""

    @property
    def tag_name(self) -> str: ...
    @property
    def attributes(self) -> list[tuple[str, str]]: ...
    def get_attribute(self, name: str) -> str | None: ...
    def set_attribute(self, name: str, value: str) -> None: ...
    def remove_attribute(self, name: str) -> None: ...
    def before(self, content: str, content_type: lolhtml.ContentType | None = None) -> None: ...
    def after(self, content: str, content_type: lolhtml.ContentType | None = None) -> None: ...
    def append(self, content: str, content_type: lolhtml.ContentType | None = None) -> None: ...


class Text:
    """One whole text node (lol-html hands it over in chunks; they are joined here)."""

    __slots__ = ("text", "replacement", "marks")

    def __init__(self, text: str, marks: frozenset[str]) -> None:
        self.text = text
        self.replacement: str | None = None  # HTML to put in place of the node's text
        self.marks = marks  # the names of the enclosing elements a feature asked about


class Rewriter:
    """One document's rewrite: register handlers, then run() once."""

    def __init__(self) -> None:
        self._elements: list[tuple[str, Callable[[Element], None]]] = []
        self._marks: list[tuple[str, str]] = []  # (selector, mark name)
        self._text: list[Callable[[Text], None]] = []
        self._comment: list[Callable[[str], None]] = []
        self._end: list[Callable[[], str]] = []

    def on_element(self, selector: str, handler: Callable[[Element], None]) -> None:
        self._elements.append((selector, handler))

    def mark_text_inside(self, selector: str, mark: str) -> None:
        """Text inside elements matching `selector` carries `mark` in Text.marks."""
        self._marks.append((selector, mark))

    def on_text(self, handler: Callable[[Text], None]) -> None:
        """Called once per text node, in document order, with its whole text."""
        self._text.append(handler)

    def on_comment(self, handler: Callable[[str], None]) -> None:
        self._comment.append(handler)

    def on_end(self, handler: Callable[[], str]) -> None:
        """Called at the end of the document; returns HTML to append there."""
        self._end.append(handler)

    def run(self, body: bytes) -> bytes:
        """Rewrite a UTF-8 document. Raises EngineError if lol-html fails."""
        out: list[bytes] = []
        rw = lolhtml.HTMLRewriter(out.append)
        marks: set[str] = set()  # filled by the mark handlers, read by the text handler
        for selector, mark in self._marks:
            rw.on(selector, _MarkHandler(marks, mark))
        for selector, handler in self._elements:
            rw.on(selector, _ElementHandler(handler))
        rw.on_document(_DocumentHandler(marks, self._text, self._comment, self._end))
        try:
            view = memoryview(body)
            for pos in range(0, len(view), STEP):
                rw.write(bytes(view[pos:pos + STEP]))
            rw.end()
        except Exception as e:  # the bindings raise RuntimeError and friends
            raise EngineError(f"lol-html could not rewrite the document: {e}") from e
        return b"".join(out)


class EngineError(Exception):
    pass


class _MarkHandler:
    # lol-html calls element-scoped handlers for a chunk before the document's handler
    # (tested in tests/test_html.py), so the marks are set when the text handler reads them.
    def __init__(self, marks: set[str], mark: str) -> None:
        self.marks, self.mark = marks, mark

    def text(self, chunk) -> None:
        self.marks.add(self.mark)


class _ElementHandler:
    def __init__(self, handler: Callable[[Element], None]) -> None:
        self.element = handler


class _DocumentHandler:
    def __init__(self, marks: set[str], text: list, comment: list, end: list) -> None:
        self.marks = marks
        self.text_handlers = text
        self.comment_handlers = comment
        self.end_handlers = end
        self.pending: list[str] = []

    def text(self, chunk) -> None:
        if not self.text_handlers:
            self.marks.clear()
            return
        if not chunk.last_in_text_node:
            # hold the piece back until the node is complete: an address can straddle
            # two chunks; the whole node goes out again in place of its last chunk
            self.pending.append(chunk.text)
            chunk.remove()
            return
        text = "".join(self.pending) + chunk.text if self.pending else chunk.text
        self.pending.clear()
        marks = frozenset(self.marks)
        self.marks.clear()
        if not text:
            return
        node = Text(text, marks)
        for handler in self.text_handlers:
            handler(node)
        replacement = node.replacement if node.replacement is not None else node.text
        if replacement != chunk.text or chunk.removed:
            chunk.replace(replacement, HTML)

    def comments(self, comment) -> None:
        for handler in self.comment_handlers:
            handler(comment.text)

    def end(self, end) -> None:
        extra = "".join(handler() for handler in self.end_handlers)
        if extra:
            end.append(extra, HTML)
