"""The rewrite of one document by the features on for it, in one pass of lol-html: whole
(rewrite) or as it streams (StreamRewrite).
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from dataclasses import field

from addon.html import charset
from addon.html.engine import HTML
from addon.html.engine import EngineError
from addon.html.engine import Rewriter
from addon.html.feature import Feature
from addon.html.feature import HtmlJob
from addon.html.features import FEATURES


class RewriteError(Exception):
    """The page cannot be rewritten faithfully; it goes out untouched."""


@dataclass
class RewriteResult:
    body: bytes
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    charset: str = "utf-8"


def rewrite(body: bytes, job: HtmlJob, rng: random.Random | None = None) -> RewriteResult:
    """Run the job's features over one decoded body. RewriteError if it cannot be done
    byte-faithfully (unknown or invalid charset, engine failure)."""
    rng = rng or random.SystemRandom()
    try:
        codec = charset.detect(job.charset, body)
        utf8 = charset.to_utf8(body, codec)
    except charset.CharsetError as e:
        raise RewriteError(str(e)) from None
    features = [_build(name, job, rng) for name in job.features]
    rw = Rewriter()
    for feature in features:
        feature.install(rw, utf8)
    # No end-tag handlers in the bindings: a marker appended inside <body> (lol-html puts
    # it just before </body>) is replaced once the whole page is known.
    marker = f"<!--cf-edge-{secrets.token_hex(16)}-->"
    bodies: list[bool] = []  # never the element itself: lol-html's may not outlive the run

    def on_body(el) -> None:
        bodies.append(True)
        el.append(marker, HTML)

    def at_end() -> str:
        return "" if bodies else _end_of_body(features)

    rw.on_element("body", on_body)
    rw.on_end(at_end)
    try:
        out = rw.run(utf8)
    except EngineError as e:
        raise RewriteError(str(e)) from None
    if bodies:
        first, _, rest = out.partition(marker.encode())
        out = first + _end_of_body(features).encode() + rest.replace(marker.encode(), b"")
    try:
        out = charset.from_utf8(out, codec)
    except charset.CharsetError as e:
        raise RewriteError(str(e)) from None
    return RewriteResult(out, {f.name: f.counts() for f in features}, codec)


class StreamRewrite:
    """The rewrite of a page that is streamed: fed as it arrives, each piece written out as
    soon as lol-html has it. UTF-8 only: the whole-page charset check of rewrite() cannot be
    made on a stream, so the caller rewrites a streamed page only when it is declared UTF-8
    or declares nothing (then bytes that are not UTF-8 in text a feature looks at become
    U+FFFD, as lol-html reads them)."""

    def __init__(self, job: HtmlJob, rng: random.Random | None = None) -> None:
        rng = rng or random.SystemRandom()
        self.features = [_build(name, job, rng) for name in job.features]
        self.rw = Rewriter()
        for feature in self.features:
            feature.install(self.rw, None)
        # the end of <body> is found in the output as it streams (see rewrite())
        self.marker = f"<!--cf-edge-{secrets.token_hex(16)}-->".encode()
        self.bodies = 0
        self.held = b""  # output that may be the start of the marker
        self.replaced = False

        def on_body(el) -> None:
            self.bodies += 1
            el.append(self.marker.decode(), HTML)

        self.rw.on_element("body", on_body)
        self.rw.on_end(lambda: "" if self.bodies else _end_of_body(self.features))

    def feed(self, chunk: bytes) -> bytes:
        try:
            return self._pass(self.rw.write(chunk))
        except EngineError as e:
            raise RewriteError(str(e)) from None

    def end(self) -> bytes:
        try:
            out = self._pass(self.rw.close())
        except EngineError as e:
            raise RewriteError(str(e)) from None
        out += self.held
        self.held = b""
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        return {f.name: f.counts() for f in self.features}

    def _pass(self, out: bytes) -> bytes:
        data = self.held + out
        if not self.replaced:
            at = data.find(self.marker)
            if at >= 0:
                self.replaced = True
                data = (data[:at] + _end_of_body(self.features).encode()
                        + data[at + len(self.marker):])
            else:  # keep what could be the marker's beginning until the next piece
                keep = len(self.marker) - 1
                cut = max(len(data) - keep, 0)
                while cut < len(data) and not self.marker.startswith(data[cut:]):
                    cut += 1
                self.held = data[cut:]
                return data[:cut]
        data = data.replace(self.marker, b"")  # a second <body>'s marker: nothing there
        self.held = b""
        return data


def _end_of_body(features: list[Feature]) -> str:
    return "".join(f.end_of_body() for f in features)


def _build(name: str, job: HtmlJob, rng: random.Random) -> Feature:
    return FEATURES[name].build(job, rng)
