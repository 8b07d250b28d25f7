"""The host the visitor asked for, in each proxy mode, through a real mitmdump."""

from __future__ import annotations

import socket

from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.mitm import EDGE
from tests.support.mitm import Mitmdump

RULES = "plan: pro\nsettings: {email_obfuscation: off, automatic_https_rewrites: off}\n"


def _raw(port: int, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return int(head.split(b" ")[1]), headers, body


def _css(name: bytes) -> Route:
    return Route(response(200, [(b"Content-Type", b"text/css"),
                                (b"Cache-Control", b"max-age=600")],
                          b"/* %s */ body { color: red }\n" % name * 10))


def test_a_forward_proxy_keys_the_cache_by_the_request_target_not_the_host_header(tmp_path):
    """RFC 9112 3.2.2: the absolute-form target's authority wins over Host. Otherwise a
    request for A with `Host: B` would fill B's cache entry with A's body."""
    a, b = Origin({b"/logo.css": _css(b"A")}), Origin({b"/logo.css": _css(b"B")})
    try:
        with Mitmdump(tmp_path, RULES) as m:
            status, headers, body = _raw(m.port, (
                f"GET http://127.0.0.1:{a.port}/logo.css HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{b.port}\r\nConnection: close\r\n\r\n").encode())
            assert status == 200 and b"/* A */" in body
            assert headers[b"cf-cache-status"] == b"MISS"
            [(_, head)] = a.seen
            assert f"\r\nHost: 127.0.0.1:{a.port}\r\n".encode() in head  # replaced (3.2.2)
            status, headers, body = _raw(m.port, (
                f"GET http://127.0.0.1:{b.port}/logo.css HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{b.port}\r\nConnection: close\r\n\r\n").encode())
            assert b"/* B */" in body and headers[b"cf-cache-status"] == b"MISS"
            record = m.wait_records(lambda r: str(b.port) in r["url"])
            assert record["cache_key"] == f"http://127.0.0.1:{b.port}/logo.css"
    finally:
        a.stop()
        b.stop()


def test_a_rule_on_http_host_works_for_a_host_that_is_not_ascii(tmp_path):
    """`http.host` raised inside the expression engine for a non-ASCII host, and the
    request skipped the whole edge."""
    rules = RULES + """compression_rules:
  - expression: 'http.host eq "bücher.example"'
    action_parameters: {algorithms: [{name: gzip}]}
"""
    origin = Origin({b"/a.css": _css(b"x")})
    try:
        with Mitmdump(tmp_path, rules, reverse_to=origin.port) as m:
            status, headers, _ = _raw(m.port, b"GET /a.css HTTP/1.1\r\n"
                                      b"Host: b\xc3\xbccher.example\r\n"
                                      b"Accept-Encoding: br, gzip\r\nConnection: close\r\n\r\n")
            assert status == 200 and headers[b"content-encoding"] == b"gzip"
            assert b"cf-ray" in headers and b"cf-cache-status" in headers
            record = m.wait_records(lambda r: r["url"].endswith("/a.css"))
            assert "bücher.example" in record["url"] and record["rules"]
            assert "Traceback" not in m.output()
    finally:
        origin.stop()



def test_reverse_mode_keeps_the_visitors_host_without_being_told(tmp_path):
    """mitmproxy's reverse mode replaces Host with the origin's before any hook; the edge
    sets keep_host_header itself, so the origin, the log and the report see the visitor's
    host, as behind Cloudflare."""
    origin = Origin({b"/logo.css": _css(b"A")})
    (tmp_path / "r.yaml").write_text(RULES)
    try:
        m = Mitmdump(tmp_path, None, "-s", str(EDGE), "--set", f"cf_rules={tmp_path / 'r.yaml'}",
                     "--set", f"cf_log={tmp_path / 'cf.jsonl'}", "--mode",
                     f"reverse:http://127.0.0.1:{origin.port}")
        try:
            status, _, _ = _raw(m.port, b"GET /logo.css HTTP/1.1\r\nHost: www.example.test\r\n"
                                        b"Connection: close\r\n\r\n")
            assert status == 200
            assert b"host: www.example.test" in origin.seen[0][1].lower()
            m.log = tmp_path / "cf.jsonl"
            assert m.records(at_least=1)[0]["url"] == "http://www.example.test/logo.css"
            m.wait_for("keep_host_header set")
        finally:
            m.stop()
    finally:
        origin.stop()
