"""A real browser through the edge: headless Chromium, driven over the DevTools protocol,
loads a page through mitmdump in front of a loopback origin, then reloads it. Over HTTP and
over HTTPS, with mitmproxy's CA trusted by its public key (Chromium does not cache responses
whose certificate errors were merely ignored, and offers br and zstd only to trustworthy
origins). Everything asserted is what the browser's own network stack saw."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.chromium import Chromium
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.mitm import ROOT
from tests.support.mitm import Mitmdump

pytestmark = pytest.mark.browser

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>edge</title>
<link rel="stylesheet" href="/style.css"></head>
<body><p>Write to <b>team@example.com</b> today.</p></body></html>
"""
CSS = b"body { color: #333; margin: 0 auto; padding: 1em; }\n" * 50


def stylesheet(target: bytes, head: bytes) -> Route:
    """Strong ETag; browsers must revalidate every use (no-cache) while the edge keeps it
    for ten minutes (CDN-Cache-Control), a common setup."""
    if b'"css-1"' in head:
        return Route(response(304, [(b"ETag", b'"css-1"')], length=False))
    return Route(response(200, [(b"Content-Type", b"text/css"), (b"ETag", b'"css-1"'),
                                (b"Cache-Control", b"no-cache"),
                                (b"CDN-Cache-Control", b"max-age=600")], CSS))


@pytest.fixture
def origin():
    o = Origin({b"/": Route(response(200, [(b"Content-Type", b"text/html; charset=utf-8"),
                                           (b"ETag", b'"page-1"')], PAGE)),
                b"/style.css": stylesheet})
    yield o
    o.stop()


def spki_pin(confdir: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of mitmproxy's CA, for Chromium's
    --ignore-certificate-errors-spki-list (its leaf certificates share the CA's key)."""
    ca = x509.load_pem_x509_certificate((confdir / "mitmproxy-ca-cert.pem").read_bytes())
    spki = ca.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_browser_sees_weak_etag_revalidates_and_gets_the_edge_304(tmp_path, origin, scheme):
    rules = (ROOT / "rules.yaml").read_text()  # the default zone: Email Obfuscation on
    with Mitmdump(tmp_path, rules, reverse_to=origin.port) as m:
        browser = Chromium(f"--ignore-certificate-errors-spki-list={spki_pin(tmp_path)}")
        try:
            base = f"{scheme}://127.0.0.1:{m.port}"
            first = {e.url: e for e in browser.exchanges(browser.load(base + "/"))}
            css = first[base + "/style.css"]
            assert css.status == 200
            # the strong ETag came back weakened, because the edge re-encoded the stylesheet
            # for a browser that offers br (facts 2.1)
            assert css.response_headers["etag"] == 'W/"css-1"'
            assert css.response_headers["content-encoding"] == "br"
            assert "br" in css.request_headers["accept-encoding"]
            # the page: Email Obfuscation removed its ETag and the decoder ran in the browser
            page = first[base + "/"]
            assert "etag" not in page.response_headers
            decoder = [u for u in first if "/cdn-cgi/scripts/" in u]
            assert decoder and first[decoder[0]].status == 200
            assert browser.evaluate("document.body.innerText").strip() == (
                "Write to team@example.com today.")
            assert browser.evaluate("document.querySelector('[data-cfemail]')") is None

            again = {e.url: e for e in browser.exchanges(browser.load())}
            css = again[base + "/style.css"]
            # on reload the browser sends the weakened tag back, and the edge answers it
            assert css.request_headers["if-none-match"] == 'W/"css-1"'
            assert css.status == 304
            assert css.response_headers["cf-cache-status"] == "HIT"
        finally:
            browser.close()
        record = m.wait_records(lambda r: r["url"].endswith("/style.css")
                                and r["status_out"] == 304)
        assert record["not_modified"] == "edge"
    origin_css = [h for t, h in origin.seen if t == b"/style.css"]
    assert len(origin_css) == 1  # the edge kept it: one origin request in all


def test_the_browser_driver_works_outside_pytest_too():
    """Outside pytest nothing holds fds 3 and 4, so the protocol pipes themselves land
    there: the driver must still hand them to Chromium (it did not: close-on-exec)."""
    import subprocess
    import sys

    script = ("from tests.support.chromium import Chromium\n"
              "c = Chromium()\n"
              "print(c.evaluate('6 * 7'))\n"
              "c.close()\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr


def test_the_html_report_sorts_filters_and_draws_in_chromium(tmp_path):
    """The report's page as a browser shows it: every chart drawn, the URL table sorted by a
    click on a header (and back), filtered as one types."""
    from addon.exchange.record import Record
    from addon.report import Report

    rep = Report()
    for n, size in enumerate((3000, 1000, 2000)):
        rep.add(Record(url=f"https://e.test/{n}.css", method="GET", status_out=200,
                       action="compress", etag_action="weakened", encoding_in="identity",
                       encoding_out="br", bytes_in=size, bytes_out=size // 4, reason="r",
                       etag_in='"v1"', etag_out='W/"v1"', cache_status="MISS",
                       media_type="text/css"))
    _, page = rep.write(tmp_path / "report.md")
    browser = Chromium()
    try:
        browser.load(page.as_uri())
        charts = browser.evaluate("[...document.querySelectorAll('svg')].map(s => "
                                  "s.getBBox().width > 0 && s.querySelectorAll('rect').length)")
        assert charts and all(charts)  # every chart rendered, with its bars
        urls = "[...document.querySelectorAll('#urls tbody tr')].map(r => r.cells[0].textContent)"
        assert browser.evaluate(urls) == [f"https://e.test/{n}.css" for n in range(3)]
        column = "document.querySelectorAll('#urls th')[6]"  # bytes from the origin
        browser.evaluate(f"{column}.click()")
        assert browser.evaluate(urls) == ["https://e.test/1.css", "https://e.test/2.css",
                                          "https://e.test/0.css"]
        browser.evaluate(f"{column}.click()")
        assert browser.evaluate(urls)[0] == "https://e.test/0.css"
        browser.evaluate("const f = document.getElementById('filter'); f.value = '2.css'; "
                         "f.dispatchEvent(new Event('input'))")
        shown = "[...document.querySelectorAll('#urls tbody tr')].filter(r => !r.hidden).length"
        assert browser.evaluate(shown) == 1
        assert browser.evaluate("document.getElementById('shown').textContent") == (
            "1 of 3 URLs")
    finally:
        browser.close()


def test_a_browsing_session_replays_alike_from_mitm_and_from_a_devtools_har(tmp_path):
    """Chromium browses a gzip origin through plain mitmdump (which writes the .mitm); the
    HAR is what DevTools records of the same session. Both replayed through the edge give the
    same conversions and the same revalidation outcomes."""
    import gzip as gz
    import json
    import subprocess

    from addon.exchange.record import Record
    from addon.exchange.record import read_log
    from addon.report.model import outcome
    from tests.support.mitm import EDGE
    from tests.support.mitm import MITMDUMP

    page = (b"<!DOCTYPE html><html><head><link rel=stylesheet href=/style.css></head><body>"
            + b"<p>Some text, again and again.</p>" * 60 + b"</body></html>")

    def handler(body: bytes, media: bytes, etag: bytes):
        def handle(target: bytes, head: bytes) -> Route:
            if etag in head or etag.removeprefix(b"W/") in head:
                return Route(response(304, [(b"ETag", etag)], length=False))
            return Route(response(200, [(b"Content-Type", media), (b"Content-Encoding", b"gzip"),
                                        (b"ETag", etag), (b"Cache-Control", b"no-cache"),
                                        (b"Last-Modified", b"Tue, 01 Dec 2026 10:00:00 GMT")],
                                  gz.compress(body)))
        return handle

    origin = Origin({b"/": handler(page, b"text/html", b'W/"p1"'),
                     b"/style.css": handler(CSS, b"text/css", b'"c1"')})
    recording = tmp_path / "session.mitm"
    try:
        with Mitmdump(tmp_path / "rec", None, "-w", str(recording),
                      reverse_to=origin.port) as m:
            browser = Chromium()
            try:
                # DevTools keeps a page's bodies until the next navigation: saved at once
                har = browser.har(browser.load(f"http://127.0.0.1:{m.port}/"))
            finally:
                browser.close()
    finally:
        origin.stop()
    # what the browser served from its own cache never reached the proxy: not in the .mitm
    har["log"]["entries"] = [e for e in har["log"]["entries"] if not e.get("_fromCache")]
    (tmp_path / "session.har").write_text(json.dumps(har))
    assert any(h["name"].lower() == "content-encoding" for e in har["log"]["entries"]
               for h in e["response"]["headers"])

    def replay(name: str) -> list[tuple]:
        log = tmp_path / f"{name}.jsonl"
        subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE, "-r",
                        str(tmp_path / name), "--set", f"cf_log={log}"], check=True,
                       capture_output=True, timeout=120, cwd=tmp_path)
        rows = []
        for r in read_log(log):
            record = Record(**{k: v for k, v in r.items() if k in Record.__dataclass_fields__})
            rows.append((r["url"].rsplit("/", 1)[1], r["status_out"], r["encoding_in"],
                         r["encoding_out"], r["action"], r["etag_action"], outcome(record)))
        return sorted(rows)

    # the page's and the stylesheet's responses (the favicon is fetched outside the page's
    # session, so DevTools does not record it); the outcome is what a browser holding each
    # can revalidate with
    from_mitm, from_har = (sorted(r for r in replay(name) if r[1] == 200 and r[0] in ("",
                           "style.css")) for name in ("session.mitm", "session.har"))
    assert from_har == from_mitm and len(from_mitm) == 2
    assert ("style.css", 200, "gzip", "br", "transcode", "weakened", "by ETag (weak)") \
        in from_mitm
    assert ("", 200, "gzip", "br", "rewrite", "removed", "by Last-Modified only") \
        in from_mitm  # the page: its ETag removed, Last-Modified left
