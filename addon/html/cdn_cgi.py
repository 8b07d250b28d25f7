"""The edge's own /cdn-cgi/ paths, answered without contacting the origin: the scripts
and pages the HTML features declare (FeatureSpec.assets).

The scripts are ours, written from the documented behaviour (facts 3.1.6, 3.3, 3.4), not
Cloudflare's code; any version segment in a script's path is accepted, as Cloudflare's
changes.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from addon.html.feature import Page
from addon.html.feature import Script
from addon.html.features import FEATURES

PREFIX = "/cdn-cgi/"
ASSETS = Path(__file__).resolve().parent / "assets"
_SCRIPT = re.compile(r"^/cdn-cgi/scripts/[0-9a-f]+/cloudflare-static/([a-z0-9-]+)\.min\.js$")
SCRIPTS = {a.name: a.file for f in FEATURES.values() for a in f.assets if isinstance(a, Script)}
PAGES = {a.path: a.file for f in FEATURES.values() for a in f.assets if isinstance(a, Page)}
JS = b"application/javascript; charset=utf-8"
HTML = b"text/html; charset=UTF-8"


def is_cdn_cgi(path: str) -> bool:
    return path.startswith(PREFIX)


def answer(path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
    """(status, headers, body, what it is) for a /cdn-cgi/ path (query already removed)."""
    m = _SCRIPT.match(path)
    if m and m.group(1) in SCRIPTS:
        return 200, _headers(JS, "public, max-age=31536000"), _asset(SCRIPTS[m.group(1)]), (
            f"the edge's {m.group(1)} script")
    if path in PAGES:
        name = path.rsplit("/", 1)[-1]
        return 200, _headers(HTML, "private, max-age=0, no-store, no-cache, must-revalidate"), (
            _asset(PAGES[path])), f"the edge's {name} page"
    return 404, _headers(b"text/plain; charset=UTF-8", "no-store"), (
        b"404 Not Found: not a path this emulated edge serves\n"), "an unknown /cdn-cgi/ path"


def _headers(content_type: bytes, cache_control: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"cache-control", cache_control.encode()),
            (b"server", b"cloudflare")]


@cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()
