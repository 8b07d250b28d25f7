"""The HTML rewriting engine: lol-html, Cloudflare's own streaming rewriter, through its
Python bindings (python-lolhtml). The only module that imports them, so the engine can be
replaced without touching the features.

lol-html reads UTF-8 only (its Python bindings take str): callers hand it UTF-8 and
convert around it.
Markup no handler touches comes out byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import lolhtml

HTML = lolhtml.ContentType.HTML
# A text handler: (text of a whole text node, marks of its enclosing elements) ->
# replacement HTML, or None to leave it. lol-html hands a text node over in chunks, split
# where the document was split into writes; the engine joins them, so an address never
# straddles two calls.
TextHandler = Callable[[str, set[str]], str | None]


class Element(Protocol):
    """What the features use of lol-html's element (the rest is lol-html's own API)."""

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
        self._skip: str | None = None
        self._rw: lolhtml.HTMLRewriter | None = None
        self._out: list[bytes] = []

    def on_element(self, selector: str, handler: Callable[[Element], None]) -> None:
        self._elements.append((selector, handler))

    def mark_text_inside(self, selector: str, mark: str) -> None:
        """Text inside elements matching `selector` comes to text handlers with `mark`."""
        self._marks.append((selector, mark))

    def on_text(self, handler: TextHandler, skip: str | None = None) -> None:
        """Called for every text node, in document order. Costs a Python call per text
        chunk: register it only when there is something to look for. Text marked `skip`
        is passed on as it comes, without joining its chunks."""
        self._text.append(handler)
        self._skip = skip

    def on_comment(self, handler: Callable[[str], None]) -> None:
        self._comment.append(handler)

    def on_end(self, handler: Callable[[], str]) -> None:
        """Called at the end of the document; returns HTML to append there."""
        self._end.append(handler)

    def run(self, body: bytes) -> bytes:
        """Rewrite a whole UTF-8 document. Raises EngineError if lol-html fails."""
        return self.write(body) + self.close()

    def write(self, chunk: bytes) -> bytes:
        """Rewrite the next piece of a UTF-8 document; what lol-html produced so far."""
        if self._rw is None:
            self._rw = self._open()
        try:
            self._rw.write(chunk)
        except Exception as e:  # the bindings raise RuntimeError and friends
            raise EngineError(f"lol-html could not rewrite the document: {e}") from e
        return self._take()

    def close(self) -> bytes:
        """The end of the document: what remains."""
        if self._rw is None:
            self._rw = self._open()
        try:
            self._rw.end()
        except Exception as e:
            raise EngineError(f"lol-html could not rewrite the document: {e}") from e
        self._rw = None  # nothing of lol-html outlives the document
        return self._take()

    def _take(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _open(self) -> lolhtml.HTMLRewriter:
        rw = lolhtml.HTMLRewriter(self._out.append)
        marks: set[str] = set()  # filled by the mark handlers, read by the text handler
        for selector, mark in self._marks:
            rw.on(selector, _MarkHandler(marks, mark))
        for selector, handler in self._elements:
            rw.on(selector, _ElementHandler(handler))
        document = _document_handler(marks, self._text, self._comment, self._end, self._skip)
        if document is not None:
            rw.on_document(document)
        return rw


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


def _document_handler(marks: set[str], text: list[TextHandler], comment: list, end: list,
                      skip: str | None = None):
    """A handler with only the methods needed: lol-html calls Python for each one it has."""
    methods: dict[str, Callable] = {}
    if text:
        pending: list[str] = []  # earlier chunks of the current text node, held back

        def on_text(chunk) -> None:
            t = chunk.text
            if skip is not None and skip in marks and not pending:
                if chunk.last_in_text_node:
                    marks.clear()
                return  # passed on as it comes
            if not chunk.last_in_text_node:
                if t:  # held back until the node is whole, then written again in one piece
                    pending.append(t)
                    chunk.remove()
                return
            whole = "".join(pending) + t if pending else t
            held = bool(pending)
            pending.clear()
            new = None
            if whole:
                for handler in text:
                    out = handler(whole if new is None else new, marks)
                    if out is not None:
                        new = out
            marks.clear()
            if new is not None:
                chunk.replace(new, HTML)
            elif held:
                chunk.replace(whole, HTML)

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
