"""The HTML features (facts 3): which apply to a response, and the rewrite itself.

Each feature is one module with one class (install handlers on the engine's Rewriter,
count what it changed, optionally add markup before </body>); this module runs them over
one document in one pass of the engine.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from addon.html import charset
from addon.html.email_obfuscation import EmailObfuscation
from addon.html.engine import HTML
from addon.html.engine import EngineError
from addon.html.engine import Rewriter
from addon.html.https_rewrites import HttpsRewrites
from addon.html.mirage import Mirage
from addon.html.rocket_loader import RocketLoader

HTML_TYPES = ("text/html", "application/xhtml+xml")
# zone setting id -> the media types it rewrites (facts 3.1.2; text/html only for the
# others, modelled), in the order they run
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "email_obfuscation": HTML_TYPES,
    "automatic_https_rewrites": ("text/html",),
    "rocket_loader": ("text/html",),
    "mirage": ("text/html",),
}
PRO_AND_UP = {"mirage"}  # facts 3.4.2


class Feature(Protocol):
    name: str
    label: str

    def install(self, rw: Rewriter, page: bytes) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def end_of_body(self) -> str: ...


class RewriteError(Exception):
    """The page cannot be rewritten faithfully; it goes out untouched."""


@dataclass(frozen=True)
class HtmlJob:
    """What the rewrite of one response needs besides its body."""

    features: tuple[str, ...]  # zone setting ids, in FEATURES order
    charset: str | None = None  # from Content-Type
    https_hosts: tuple[str, ...] = ()
    page_host: str = ""  # the host the page was asked from


@dataclass
class RewriteResult:
    body: bytes
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    charset: str = "utf-8"


def active_features(settings: Mapping[str, Any], media_type: str, plan: str) -> tuple[str, ...]:
    """The features on for this request that rewrite a body of this media type."""
    return tuple(
        name
        for name, types in MEDIA_TYPES.items()
        if settings.get(name) and media_type in types
        and not (name in PRO_AND_UP and plan == "free")
    )


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


def _end_of_body(features: list[Feature]) -> str:
    return "".join(f.end_of_body() for f in features)


def _build(name: str, job: HtmlJob, rng: random.Random) -> Feature:
    if name == "email_obfuscation":
        return EmailObfuscation(rng)
    if name == "automatic_https_rewrites":
        return HttpsRewrites(job.https_hosts, job.page_host)
    if name == "rocket_loader":
        return RocketLoader(rng)
    if name == "mirage":
        return Mirage()
    raise ValueError(f"unknown HTML feature {name!r}")
