"""The edge in front of real servers (nginx with gzip and gzip_static, Apache httpd with
mod_deflate, Django with GZipMiddleware), driven as a new user would: first load,
revalidation with what the visitor got, a visitor without compression after one with it,
HEAD, Range, expiry and revalidation. Every response is checked against the invariant
(a coding the visitor accepts, framing that fits, a body that decodes to the file served)
by the independent oracle, and an HTTP/2 visitor sees what an HTTP/1.1 visitor sees.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support import oracle
from tests.support.h2client import H2Client
from tests.support.loopback import Client
from tests.support.loopback import run
from tests.support.mitm import Mitmdump
from tests.support.real_origins import SITE
from tests.support.real_origins import Apache
from tests.support.real_origins import Django
from tests.support.real_origins import Nginx

pytestmark = pytest.mark.real_origin

CHROME = b"gzip, deflate, br, zstd"
# HTML features off: these tests are about codings and validators; ?expire objects are
# stored for 0 s, so every request for them is a revalidation (no waiting for a TTL)
RULES = """plan: pro
settings: {email_obfuscation: off, automatic_https_rewrites: off}
cache_rules:
  - description: revalidate every time
    expression: 'http.request.uri.query eq "expire"'
    action_parameters:
      cache: true
      edge_ttl: {mode: override_origin, default: 0}
"""
FILES = {"/": "index.html", "/static/site.css": "static/site.css",
         "/static/app.js": "static/app.js", "/data.json": "data.json",
         "/notes.txt": "notes.txt"}


@dataclass
class Seen:
    """One response as the visitor got it, and what it means."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return b", ".join(values) if values else None

    @property
    def coding(self) -> list[str]:
        return oracle.codings_of(self.headers)

    def summary(self) -> tuple:
        return (self.status, self.coding, self.header(b"etag"),
                self.header(b"cf-cache-status"))


Fetch = Callable[[str, list[tuple[bytes, bytes]], str], Seen]


def _check(seen: Seen, accept: bytes | None, method: str, path: str, where) -> None:
    """The invariant, judged by the oracle, on one response."""
    assert all(oracle.accepts(accept, c) for c in seen.coding), where
    if method == "HEAD" or seen.status == 304:
        assert seen.body == b"", where
        return
    length, chunked = seen.header(b"content-length"), seen.header(b"transfer-encoding")
    assert not (length and chunked), where
    if length is not None:
        assert int(length) == len(seen.body), where
    data = oracle.decode(seen.body, seen.coding)
    expected = SITE[FILES[path.split("?")[0]]][1]
    if seen.status == 206:
        first, last = seen.header(b"content-range").split(b" ")[1].split(b"/")[0].split(b"-")
        assert data == expected[int(first):int(last) + 1], where
    else:
        assert seen.status == 200, where
        assert data == expected, where


def sequence(fetch: Fetch, tag: str) -> list[tuple]:
    """The visitor's sequence; returns what each step saw (for comparing protocols)."""
    out = []

    def step(path: str, accept: bytes | None, method: str = "GET", extra=()) -> Seen:
        headers = [(b"Accept-Encoding", accept)] if accept is not None else []
        headers += list(extra)
        seen = fetch(path, headers, method)
        where = (tag, path, accept, method, extra, seen.status, seen.headers)
        _check(seen, accept, method, path, where)
        out.append((path, accept, method, tuple(k for k, _ in extra), *seen.summary()))
        return seen

    for path in FILES:
        first = step(path, CHROME)  # first load in a browser
        # revalidation with what the visitor got
        validators = [(name, value) for name, value in
                      ((b"If-None-Match", first.header(b"etag")),
                       (b"If-Modified-Since", first.header(b"last-modified"))) if value]
        again = step(path, CHROME, extra=validators)
        if first.header(b"cf-cache-status") == b"HIT" or again.header(b"cf-cache-status") in (
                b"HIT",):
            assert again.status == 304, (tag, path, again.headers)
        step(path, None)  # a visitor without compression after one with it
        head = step(path, None, "HEAD")
        get = step(path, None)
        assert head.coding == get.coding, path
        if head.header(b"etag") is not None:  # Django sends no ETag on a HEAD at all
            assert head.header(b"etag") == get.header(b"etag"), path
        step(path, None, extra=[(b"Range", b"bytes=0-99")])
        step(path, b"br", extra=[(b"Range", b"bytes=10-")])
        # expiry and revalidation: stored for 0 s, so this one is revalidated
        step(f"{path}?expire", CHROME)
        expired = step(f"{path}?expire", b"gzip")
        assert expired.header(b"cf-cache-status") in (b"REVALIDATED", b"EXPIRED"), path
    return out


def _http11(port: int) -> Fetch:
    def fetch(path: str, headers, method: str) -> Seen:
        async def go():
            client = await Client.connect(port)
            try:
                return await client.get(path.encode(), headers, method=method.encode())
            finally:
                await client.close()

        reply = run(go())
        return Seen(reply.status, reply.headers, reply.body)

    return fetch


def _http2(client: H2Client) -> Fetch:
    def fetch(path: str, headers, method: str) -> Seen:
        reply = client.request(path.encode(), headers, method.encode())
        return Seen(reply.status, reply.headers, reply.body)

    return fetch


@pytest.fixture(params=[Nginx, Apache, Django], ids=["nginx", "apache", "django"])
def origin(request, tmp_path):
    with request.param(tmp_path / "origin") as server:
        yield server


def test_the_sequence_over_http_1_1_and_http_2(origin, tmp_path):
    with Mitmdump(tmp_path / "h1", RULES, reverse_to=origin.port) as m:
        h1 = sequence(_http11(m.port), "HTTP/1.1")
        records = m.records(at_least=len(h1))
        assert "Traceback" not in m.output() and "Addon error" not in m.output()
    assert len(records) == len(h1)
    assert all(r["status_out"] in (200, 206, 304) for r in records)
    with Mitmdump(tmp_path / "h2", RULES, reverse_to=origin.port) as m, \
            H2Client(m.port, tmp_path / "h2") as client:
        h2 = sequence(_http2(client), "HTTP/2")
        assert "Traceback" not in m.output()
    assert h2 == h1


def test_an_http_1_0_visitor_gets_no_chunked_coding(tmp_path):
    with Nginx(tmp_path / "origin") as origin, \
            Mitmdump(tmp_path / "m", RULES, reverse_to=origin.port) as m:
        for path in ("/", "/static/site.css", "/data.json"):
            with socket.create_connection(("127.0.0.1", m.port), timeout=10) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                          "Accept-Encoding: br\r\n\r\n".encode())
                raw = b""
                while chunk := s.recv(65536):
                    raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            headers = [tuple(x.strip() for x in line.split(b":", 1))
                       for line in head.split(b"\r\n")[1:]]
            seen = Seen(int(head.split(b" ")[1]), headers, body)
            assert seen.header(b"transfer-encoding") is None, head
            assert int(seen.header(b"content-length")) == len(body)
            assert seen.coding == ["br"] and oracle.decode(body, ["br"]) == SITE[FILES[path]][1]


def test_apache_compresses_then_ranges_and_the_visitor_still_gets_what_it_can_read(tmp_path):
    """Apache answers a Range with a 206 of its gzip bytes; a visitor that accepted no
    coding gets the full decoded 200 instead (facts 1.8.1), and the log says why."""
    with Apache(tmp_path / "origin") as origin, \
            Mitmdump(tmp_path / "m", RULES, reverse_to=origin.port) as m:
        seen = _http11(m.port)("/notes.txt", [(b"Range", b"bytes=0-99")], "GET")
        assert seen.status == 200 and seen.coding == []
        assert seen.body == SITE["notes.txt"][1]
        record = m.wait_records(lambda r: r["url"].endswith("/notes.txt"))
        assert "asked the origin for the full response" in record["asked_again"][0]


def test_nginx_strong_304_on_revalidation_does_not_update_the_stored_gzip(tmp_path):
    """nginx gzips site.css (W/ ETag) but answers the edge's If-None-Match W/"x" with a 304
    carrying the strong "x": the stored gzip object keeps its weak tag (RFC 9111 4.3.4)."""
    with Nginx(tmp_path / "origin") as origin, \
            Mitmdump(tmp_path / "m", RULES, reverse_to=origin.port) as m:
        fetch = _http11(m.port)
        first = fetch("/static/site.css?expire", [(b"Accept-Encoding", b"gzip")], "GET")
        again = fetch("/static/site.css?expire", [(b"Accept-Encoding", b"gzip")], "GET")
        assert first.header(b"etag").startswith(b'W/"') and first.coding == ["gzip"]
        assert again.header(b"etag") == first.header(b"etag")
        assert again.header(b"cf-cache-status") == b"EXPIRED"
        record = m.wait_records(lambda r: r["cache_status"] == "EXPIRED")
        assert "RFC 9111 4.3.4" in record["cache_reason"]
        third = fetch("/static/site.css?expire", [(b"Accept-Encoding", b"gzip")], "GET")
        assert third.header(b"cf-cache-status") == b"EXPIRED"
        found = m.wait_records(lambda r: any(d["code"] == "revalidation-full-body"
                                             for d in r.get("diagnoses") or ()))
        assert "same ETag on a 304" in found["diagnoses"][-1]["fix"]


def test_apache_suffix_is_diagnosed_with_the_directive_that_fixes_it(tmp_path):
    with Apache(tmp_path / "origin") as origin, \
            Mitmdump(tmp_path / "m", RULES, reverse_to=origin.port) as m:
        fetch = _http11(m.port)
        first = fetch("/data.json", [(b"Accept-Encoding", b"gzip")], "GET")
        assert first.header(b"etag").endswith(b'-gzip"')
        again = fetch("/data.json", [(b"Accept-Encoding", b"gzip"),
                                     (b"If-None-Match", first.header(b"etag"))], "GET")
        assert again.status == 200  # Apache answers its own tag with the full body
        record = m.wait_records(lambda r: r.get("diagnoses"))
        codes = {d["code"] for d in record["diagnoses"]}
        assert "apache-etag-suffix" in codes and "weak-if-none-match-ignored" not in codes

