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
# A text handler: (text of the chunk, marks of its enclosing elements) -> replacement HTML,
# or None to leave it. The document goes to lol-html in one write(), so a text node comes
# as one chunk (plus an empty one that ends it) and an address never straddles two.
TextHandler = Callable[[str, set[str]], str | None]


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


class Rewriter:
    """One document's rewrite: register handlers, then run() once."""

    def __init__(self) -> None:
        self._elements: list[tuple[str, Callable[[Element], None]]] = []
        self._marks: list[tuple[str, str]] = []  # (selector, mark name)
        self._text: list[TextHandler] = []
        self._comment: list[Callable[[str], None]] = []
        self._end: list[Callable[[], str]] = []

    def on_element(self, selector: str, handler: Callable[[Element], None]) -> None:
        self._elements.append((selector, handler))

    def mark_text_inside(self, selector: str, mark: str) -> None:
        """Text inside elements matching `selector` comes to text handlers with `mark`."""
        self._marks.append((selector, mark))

    def on_text(self, handler: TextHandler) -> None:
        """Called for every piece of text, in document order. Costs a Python call per
        text node: register it only when there is something to look for."""
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
        document = _document_handler(marks, self._text, self._comment, self._end)
        if document is not None:
            rw.on_document(document)
        try:
            rw.write(body)
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


def _document_handler(marks: set[str], text: list[TextHandler], comment: list, end: list):
    """A handler with only the methods needed: lol-html calls Python for each one it has."""
    methods: dict[str, Callable] = {}
    if text:
        def on_text(chunk) -> None:
            t = chunk.text
            if not t:  # the empty chunk that ends a text node
                marks.clear()
                return
            new = None
            for handler in text:
                out = handler(t if new is None else new, marks)
                if out is not None:
                    new = out
            if new is not None:
                chunk.replace(new, HTML)

        methods["text"] = on_text
    if comment:
        def on_comment(c) -> None:
            for handler in comment:
                handler(c.text)

        methods["comments"] = on_comment
    if end:
        def on_end(e) -> None:
            extra = "".join(handler() for handler in end)
            if extra:
                e.append(extra, HTML)

        methods["end"] = on_end
    if not methods:
        return None
    # A plain instance with the methods as attributes (the bindings look them up once): a
    # class made per document would sit in a reference cycle and keep what the closures
    # hold alive until the cyclic collector frees it, maybe on another thread, which
    # lol-html's thread-bound objects do not allow.
    handler = _DocumentHandler()
    for name, fn in methods.items():
        setattr(handler, name, fn)
    return handler


class _DocumentHandler:
    pass
