"""Bodies that stream through the edge, end to end through mitmdump: event streams arrive
event by event, a large body is re-encoded at bounded memory, a slow chunked body starts
before the origin finishes, mitmproxy's stream_large_bodies never bypasses the edge, the
cache fills from a stream, a stream cut halfway is not stored, and HTML is rewritten across
chunk boundaries. The origin's pace is set by the test (tests.support.loopback.Gated), not a clock.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
import threading
import zlib
from pathlib import Path

import brotli

from addon.html.features.email_obfuscation import decode as cfemail
from tests.support.loopback import Gated
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.mitm import Mitmdump

RULES = "plan: pro\nsettings: {email_obfuscation: off, automatic_https_rewrites: off}\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(*headers: tuple[bytes, bytes], status: int = 200) -> bytes:
    return b"HTTP/1.1 %d OK\r\n" % status + b"".join(k + b": " + v + b"\r\n"
                                                   for k, v in headers) + b"\r\n"


class Reader:
    """A raw HTTP/1.1 client that reads a response as it arrives."""

    def __init__(self, port: int, path: bytes, *headers: tuple[bytes, bytes],
                 version: bytes = b"HTTP/1.1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        lines = [b"GET " + path + b" " + version, b"Host: 127.0.0.1"]
        lines += [k + b": " + v for k, v in headers]
        self.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        self.headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = b"chunked" in self.headers.get(b"transfer-encoding", b"")
        length = self.headers.get(b"content-length")
        self.left = int(length) if length is not None and not self.chunked else None
        self.body = b""  # the body so far, without chunk framing
        self.done = self.left == 0

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data
        return data

    def until(self, predicate) -> bytes:
        """Read until predicate(body so far) is true; the body so far."""
        while not predicate(self.body):
            self._take()
        return self.body

    def _take(self) -> None:
        if not self.chunked:
            if not self.buf:
                try:
                    self._recv()
                except EOFError:
                    self.done = True
                    raise
            data = self.buf if self.left is None else self.buf[:self.left]
            self.body += data
            self.buf = self.buf[len(data):]
            if self.left is not None:
                self.left -= len(data)
                self.done = self.left == 0
            return
        while b"\r\n" not in self.buf:
            self._recv()
        size_line, rest = self.buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            self._recv()
            rest = self.buf.split(b"\r\n", 1)[1]
        self.body += rest[:size]
        self.buf = rest[size + 2:]
        if size == 0:
            self.done = True

    def rest(self) -> bytes:
        try:
            while not self.done:
                self._take()
        except EOFError:
            pass
        self.sock.close()
        return self.body


def test_server_sent_events_arrive_one_by_one_as_the_origin_sends_them(tmp_path):
    events = [b"data: token %d\n\n" % i for i in range(5)]
    sse = Gated(_head((b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
                      (b"Transfer-Encoding", b"chunked")),
                [_chunk(e) for e in events] + [b"0\r\n\r\n"])
    origin = Origin({b"/events": sse})
    try:
        with Mitmdump(tmp_path, RULES, reverse_to=origin.port) as m:
            r = Reader(m.port, b"/events", (b"Accept-Encoding", b"gzip, br"))
            assert r.headers[b"server"] == b"cloudflare" and b"cf-ray" in r.headers
            assert r.headers[b"cf-cache-status"] == b"DYNAMIC"
            for event in events:
                # each event is there before the origin is let to send the next one
                assert r.until(lambda body, e=event: e in body).endswith(event)
                sse.release()
            assert r.rest() == b"".join(events)
            record = m.wait_records(lambda rec: rec["url"].endswith("/events"))
            assert record["streamed"].startswith("an event stream")
            assert record["bytes_in"] == record["bytes_out"] == len(b"".join(events))
    finally:
        origin.stop()


def _lines(count: int):
    """A compressible body made on the fly, and its SHA-256 once it is all made."""
    digest = hashlib.sha256()
    for i in range(count):
        line = b"%08d the quick brown fox jumps over the lazy dog, line by line\n" % i
        digest.update(line)
        yield line, digest


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_large_body_is_re_encoded_as_it_streams_at_bounded_memory(tmp_path):
    """200 MB of identity text to a Brotli visitor: mitmdump's peak memory stays far below
    the body's size, and the decoded bytes are exactly the origin's."""
    count = 3_000_000
    size = len(next(_lines(1))[0]) * count  # 67 bytes a line: 201 MB
    made: dict[str, hashlib._Hash] = {}

    def parts():
        batch = []
        for line, digest in _lines(count):
            batch.append(line)
            if len(batch) == 4096:
                yield b"".join(batch)
                batch = []
            made["digest"] = digest
        if batch:
            yield b"".join(batch)

    big = Gated(_head((b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % size)),
                parts(), gated=False)
    origin = Origin({b"/big.txt": big})
    try:
        with Mitmdump(tmp_path, RULES, reverse_to=origin.port) as m:
            idle = _vm_hwm(m.proc.pid)
            r = Reader(m.port, b"/big.txt", (b"Accept-Encoding", b"br"))
            assert r.headers[b"content-encoding"] == b"br"
            assert b"content-length" not in r.headers
            decoder, digest, total = brotli.Decompressor(), hashlib.sha256(), 0
            while not r.done:
                r._take()
                data = decoder.process(r.body)
                digest.update(data)
                total += len(data)
                r.body = b""
            assert decoder.is_finished() and total == size
            assert digest.hexdigest() == made["digest"].hexdigest()
            peak = _vm_hwm(m.proc.pid) - idle
            assert peak < 96 << 20, f"{peak >> 20} MiB above idle for a {size >> 20} MB body"
            record = m.wait_records(lambda rec: rec["url"].endswith("/big.txt"))
            assert record["bytes_in"] == size and record["encoding_out"] == "br"
            assert "more than 16 MiB (cf_stream)" in record["streamed"]
    finally:
        origin.stop()


def test_a_slow_chunked_body_starts_once_it_passes_the_threshold(tmp_path):
    """No Content-Length: mitmproxy buffers it until cf_stream's size has arrived, then the
    edge decides and the rest streams: the visitor has bytes before the origin finishes."""
    css = b"body { color: #333; margin: 0 auto; padding: 1em; }\n"
    first, second = css * 2000, css * 100  # 104 KB, then more once released
    slow = Gated(_head((b"Content-Type", b"text/css"), (b"Transfer-Encoding", b"chunked")),
                 [_chunk(first), _chunk(second) + b"0\r\n\r\n"])
    origin = Origin({b"/slow": slow})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "cf_stream=64k", reverse_to=origin.port) as m:
            r = Reader(m.port, b"/slow", (b"Accept-Encoding", b"gzip"))
            assert r.headers[b"content-encoding"] == b"gzip"  # decided on the way
            assert r.headers[b"cf-cache-status"] == b"DYNAMIC"
            # what arrives while the origin still holds the rest back already decodes to
            # the start of the stylesheet (the encoder flushes every piece)
            early = zlib.decompressobj(31).decompress(r.until(lambda body: len(body) > 0))
            assert early and first.startswith(early)
            slow.release()
            assert gzip.decompress(r.rest()) == first + second
            record = m.wait_records(lambda rec: rec["url"].endswith("/slow"))
            assert "arrived without a Content-Length" in record["streamed"]
    finally:
        origin.stop()


def test_stream_large_bodies_never_bypasses_the_edge(tmp_path):
    page = b"<li>an item of a long list</li>\n" * 3000
    origin = Origin({b"/list": Route(response(200, [(b"Content-Type", b"text/html"),
                                                    (b"Content-Encoding", b"gzip"),
                                                    (b"ETag", b'"l1"')], gzip.compress(page)))})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "stream_large_bodies=100", "--set", "cf_stream=",
                      reverse_to=origin.port) as m:
            r = Reader(m.port, b"/list")  # accepts no coding
            assert b"content-encoding" not in r.headers and r.headers[b"etag"] == b'W/"l1"'
            assert r.headers[b"server"] == b"cloudflare" and b"cf-ray" in r.headers
            assert r.rest() == page
            record = m.wait_records(lambda rec: rec["url"].endswith("/list"))
            assert record["streamed"].endswith("(stream_large_bodies)")
            assert record["action"] == "decompress" and "unresolved" not in record
    finally:
        origin.stop()


def test_the_cache_fills_from_a_stream_and_serves_it_then(tmp_path):
    css = b".x { color: red } /* a stylesheet to cache */\n" * 2000
    origin = Origin({b"/app.css": Route(response(200, [(b"Content-Type", b"text/css"),
                                                       (b"ETag", b'"c1"')], css))})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "cf_stream=16k", reverse_to=origin.port) as m:
            first = Reader(m.port, b"/app.css", (b"Accept-Encoding", b"br"))
            assert first.headers[b"cf-cache-status"] == b"MISS"
            assert brotli.decompress(first.rest()) == css
            record = m.wait_records(lambda rec: rec["url"].endswith("/app.css"))
            assert any("stored in the edge cache as it streamed" in n for n in record["notes"])
            second = Reader(m.port, b"/app.css", (b"Accept-Encoding", b"br"))
            assert second.headers[b"cf-cache-status"] == b"HIT"
            assert brotli.decompress(second.rest()) == css
            assert len(origin.seen) == 1
    finally:
        origin.stop()


def test_a_stream_cut_halfway_is_logged_and_not_stored(tmp_path):
    css = b".x { color: red }\n" * 3000
    cut = Gated(_head((b"Content-Type", b"text/css"), (b"Content-Length", b"%d" % len(css))),
                [css[:20000], css[20000:]])
    cut.cut_after = 1
    origin = Origin({b"/cut.css": cut})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "cf_stream=16k", reverse_to=origin.port) as m:
            r = Reader(m.port, b"/cut.css")
            cut.release()
            assert len(r.rest()) < len(css)
            record = m.wait_records(lambda rec: rec["url"].endswith("/cut.css"))
            assert any("the stream was cut after 20000 bytes" in n for n in record["notes"])
            origin.routes[b"/cut.css"] = Route(response(200, [(b"Content-Type", b"text/css")],
                                                        css))
            again = Reader(m.port, b"/cut.css")
            assert again.headers[b"cf-cache-status"] == b"MISS"  # nothing had been stored
            assert again.rest() == css
    finally:
        origin.stop()


PAGE = (b"<!DOCTYPE html><html><head><title>streamed</title></head><body>"
        + b"<p>filler text before the interesting part</p>\n" * 400
        + b'<p>Write to alice@example.com or <a href="mailto:bob@example.org">Bob</a>.</p>'
        + b"<p>more filler after it</p>\n" * 100 + b"</body></html>\n")


def test_html_is_rewritten_across_chunk_boundaries_that_split_tags_and_addresses(tmp_path):
    at = PAGE.index(b"alice@")
    link = PAGE.index(b'href="mailto:')
    cuts = [at + 3, at + 9, link - 2, link + 8, len(PAGE) - 10]  # inside the address,
    parts, start = [], 0  # inside `<a hr|ef=`, inside the attribute, inside </html>
    for cut in cuts:
        parts.append(PAGE[start:cut])
        start = cut
    parts.append(PAGE[start:])
    page = Gated(_head((b"Content-Type", b"text/html; charset=utf-8"),
                       (b"Content-Length", b"%d" % len(PAGE)), (b"ETag", b'"h1"')), parts)
    origin = Origin({b"/page": page})
    rules = "plan: pro\nsettings: {email_obfuscation: on, automatic_https_rewrites: off}\n"
    try:
        with Mitmdump(tmp_path, rules, "--set", "cf_stream=4k", reverse_to=origin.port) as m:
            r = Reader(m.port, b"/page", (b"Accept-Encoding", b"gzip"))
            assert r.headers[b"content-encoding"] == b"gzip" and b"etag" not in r.headers
            page.release(len(parts) - 1)
            out = gzip.decompress(r.rest()).decode()
        assert "alice@example.com" not in out and "bob@example.org" not in out
        assert [cfemail(h) for h in re.findall(r'data-cfemail="([0-9a-f]+)"', out)] == [
            "alice@example.com"]
        assert [cfemail(h) for h in re.findall(r"email-protection#([0-9a-f]+)", out)] == [
            "bob@example.org"]
        assert out.count("email-decode.min.js") == 1
        assert out.replace("\n", "").endswith("</body></html>")
        unchanged = PAGE.decode().split("<p>Write", 1)[0]
        assert out.startswith(unchanged)  # everything before the address, byte for byte
    finally:
        origin.stop()


def test_response_body_buffering_none_streams_uninspected(tmp_path):
    rules = """plan: pro
settings: {email_obfuscation: on, automatic_https_rewrites: off}
configuration_rules:
  - expression: 'starts_with(http.request.uri.path, "/live/")'
    action_parameters: {response_body_buffering: none}
"""
    html = b"<html><body><p>mail alice@example.com</p></body></html>"
    origin = Origin({b"/live/page": Route(response(200, [(b"Content-Type", b"text/html"),
                                                         (b"ETag", b'"p1"')], html))})
    try:
        with Mitmdump(tmp_path, rules, reverse_to=origin.port) as m:
            r = Reader(m.port, b"/live/page")
            assert r.rest() == html and r.headers[b"etag"] == b'"p1"'
            record = m.wait_records(lambda rec: rec["url"].endswith("/live/page"))
            assert record["streamed"].startswith("Response Body Buffering is none")
            assert any("streams uninspected" in n for n in record["notes"])
    finally:
        origin.stop()


def test_an_http_1_0_visitor_gets_a_streamed_re_encoded_body_ended_by_close(tmp_path):
    css = b".x { color: red }\n" * 3000
    origin = Origin({b"/s.css": Route(response(200, [(b"Content-Type", b"text/css")], css))})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "cf_stream=16k", reverse_to=origin.port) as m:
            r = Reader(m.port, b"/s.css", (b"Accept-Encoding", b"br"), version=b"HTTP/1.0")
            assert b"transfer-encoding" not in r.headers
            assert b"content-length" not in r.headers
            assert brotli.decompress(r.rest()) == css
    finally:
        origin.stop()


def test_a_request_for_an_object_being_filled_waits_for_the_stream_then_hits(tmp_path):
    """Request collapsing (facts 6.17): a second visitor does not go to the origin while
    the first one's response streams into the cache; it waits for the fill to end and is
    served the stored object (it is not streamed the first fill's bytes as they come)."""
    css = b".x { color: red } /* filled by a stream */\n" * 2000
    fill = Gated(_head((b"Content-Type", b"text/css"), (b"Content-Length", b"%d" % len(css))),
                 [css[:40000], css[40000:]])
    origin = Origin({b"/shared.css": fill})
    try:
        with Mitmdump(tmp_path, RULES, "--set", "cf_stream=16k", "--set",
                      "termlog_verbosity=debug", reverse_to=origin.port) as m:
            first = Reader(m.port, b"/shared.css")
            assert first.headers[b"cf-cache-status"] == b"MISS"
            first.until(lambda body: len(body) >= 40000)  # the fill is under way
            second = [None]

            def ask() -> None:
                second[0] = Reader(m.port, b"/shared.css")

            waiting = threading.Thread(target=ask)
            waiting.start()
            m.wait_for(r"/shared\.css waits until the request filling .*shared\.css is done")
            assert len(origin.seen) == 1
            fill.release()
            assert first.rest() == css
            waiting.join(30)
            assert second[0].headers[b"cf-cache-status"] == b"HIT"
            assert second[0].rest() == css and len(origin.seen) == 1
    finally:
        origin.stop()
