"""The HTML features end to end (issue 7): a real mitmdump with the addon in front of a
loopback origin, and the rewritten page run in headless Chromium."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import brotli
import pytest

from addon.html.features.email_obfuscation import decode as cf_decode
from addon.http import codings
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import Mitmdump

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Contact</title></head>
<body>
<p id="contact">Write to alice@example.com, please.</p>
<p><a id="mail" href="mailto:bob@example.com">Bob</a></p>
<ol id="order"></ol>
<script>function mark(n) { var li = document.createElement("li"); li.textContent = n;
  document.getElementById("order").appendChild(li); }</script>
<script src="/one.js"></script>
<script>mark("two");</script>
<script src="/three.js"></script>
<script data-cfasync="false">document.body.setAttribute("data-while-parsing",
  String(document.getElementById("order").children.length));</script>
<img src="/logo.png" alt="logo">
</body></html>
"""
STRONG = b'"page-v1"'

RULES = """plan: pro
settings: {brotli: on, email_obfuscation: on, automatic_https_rewrites: on, rocket_loader: on}
configuration_rules:
  - description: plain pages
    expression: starts_with(http.request.uri.path, "/plain/")
    action_parameters: {email_obfuscation: false, automatic_https_rewrites: false,
                        rocket_loader: false}
cache_rules:
  - description: strong etags
    expression: starts_with(http.request.uri.path, "/strong/")
    action_parameters: {respect_strong_etags: true}
"""


def _page(coding: str) -> Route:
    body = {"gzip": lambda b: gzip.compress(b), "br": brotli.compress,
            "identity": lambda b: b}[coding](PAGE)
    headers = [(b"Content-Type", b"text/html; charset=utf-8"), (b"ETag", STRONG)]
    if coding != "identity":
        headers.append((b"Content-Encoding", coding.encode()))
    return Route(response(200, headers, body))


def _script(text: bytes) -> Route:
    return Route(response(200, [(b"Content-Type", b"application/javascript")], text))


ROUTES = {
    b"/page.html": _page("gzip"),
    b"/plain/page.html": _page("gzip"),
    b"/strong/page.html": _page("br"),
    b"/one.js": _script(b'mark("one");'),
    b"/three.js": _script(b'mark("three");'),
    b"/logo.png": Route(response(200, [(b"Content-Type", b"image/png")], b"\x89PNG\r\n\x1a\n")),
}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    origin = Origin(dict(ROUTES))
    proxy = Mitmdump(tmp_path_factory.mktemp("html"), RULES, reverse_to=origin.port)
    yield proxy, origin
    proxy.stop()
    origin.stop()


def fetch(port: int, path: bytes, accept: bytes | None = b"gzip, br"):
    async def go():
        c = await Client.connect(port)
        try:
            return await c.get(path, [(b"Accept-Encoding", accept)] if accept else [])
        finally:
            await c.close()

    return run(go())


def test_with_the_features_on_the_strong_etag_is_removed_and_the_page_rewritten(edge):
    proxy, _ = edge
    r = fetch(proxy.port, b"/page.html")
    assert r.status == 200 and r.header(b"etag") is None
    assert r.header(b"content-encoding") == b"br" and r.header(b"content-length") is None
    assert r.header(b"vary") == b"Accept-Encoding"
    page = codings.decode(r.body, "br").decode()
    assert "alice@example.com" not in page and "bob@example.com" not in page
    hexes = re.findall(r'data-cfemail="([0-9a-f]+)"', page)
    assert [cf_decode(h) for h in hexes] == ["alice@example.com"]
    assert page.count("rocket-loader.min.js") == 1
    record = proxy.wait_records(lambda e: e["url"].endswith("/page.html"))
    assert record["action"] == "rewrite" and record["etag_in"] == '"page-v1"'
    assert record["etag_out"] is None and record["basis"] == "modelled"  # Rocket Loader on
    assert record["features"]["email_obfuscation"] == {"addresses": 1, "mailto_links": 1}
    assert record["features"]["rocket_loader"] == {"scripts_deferred": 4,
                                                    "scripts_opted_out": 1}


def test_a_visitor_without_compression_gets_the_rewritten_page_uncompressed(edge):
    proxy, _ = edge
    r = fetch(proxy.port, b"/page.html", None)
    assert r.header(b"content-encoding") is None and r.header(b"etag") is None
    assert b"__cf_email__" in r.body


def test_with_the_features_off_by_configuration_rule_the_etag_tables_apply(edge):
    proxy, _ = edge
    r = fetch(proxy.port, b"/plain/page.html")  # gzip origin, visitor gzip, br: table row 1
    assert r.header(b"content-encoding") == b"br" and r.header(b"etag") == b'W/"page-v1"'
    assert codings.decode(r.body, "br") == PAGE
    r = fetch(proxy.port, b"/plain/page.html", b"gzip")  # gzip passed through: strong kept
    assert r.header(b"etag") == STRONG and gzip.decompress(r.body) == PAGE


def test_respect_strong_etags_turns_the_features_off(edge):
    proxy, _ = edge
    r = fetch(proxy.port, b"/strong/page.html")  # br origin, visitor accepts br: kept
    assert r.header(b"content-encoding") == b"br" and r.header(b"etag") == STRONG
    assert brotli.decompress(r.body) == PAGE
    record = proxy.wait_records(lambda e: e["url"].endswith("/strong/page.html"))
    assert any("Respect Strong ETags turned off" in n for n in record["notes"])


def test_the_edge_answers_cdn_cgi_itself(edge):
    proxy, origin = edge
    before = len(origin.seen)
    r = fetch(proxy.port, b"/cdn-cgi/scripts/5c5dd728/cloudflare-static/email-decode.min.js")
    assert r.status == 200 and b"data-cfemail" in r.body
    assert r.header(b"server") == b"cloudflare"
    r = fetch(proxy.port, b"/cdn-cgi/l/email-protection")
    assert r.status == 200 and b"Email Protection" in r.body
    assert fetch(proxy.port, b"/cdn-cgi/unknown").status == 404
    assert len(origin.seen) == before  # the origin never heard of them
    record = proxy.wait_records(lambda e: e["url"].endswith("/cdn-cgi/l/email-protection"))
    assert record["action"] == "served"


# ---- a real browser ----

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (Chromium's virtual time lets timers finish)."""
    assert CHROMIUM, "headless Chromium is needed: `apt-get install chromium` (.ci/run does)"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
            "--dump-dom", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.browser
def test_decoder_and_rocket_loader_really_run_in_chromium(edge, tmp_path):
    proxy, _ = edge
    dom = dump_dom(f"http://127.0.0.1:{proxy.port}/page.html", tmp_path / "profile")
    # the email decoder put the addresses back
    assert re.search(r'<p id="contact">Write to alice@example.com, please.</p>', dom)
    assert 'href="mailto:bob@example.com"' in dom
    assert "__cf_email__" not in dom
    # Rocket Loader held the scripts while the page was parsed, then ran them in order
    assert 'data-while-parsing="0"' in dom
    order = re.search(r'<ol id="order">(.*?)</ol>', dom, re.S).group(1)
    assert re.findall(r"<li>(\w+)</li>", order) == ["one", "two", "three"]
