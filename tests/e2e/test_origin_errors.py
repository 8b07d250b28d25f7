"""Cloudflare's 52x answers when the origin fails (facts 6.21, 14.4): the pure parts, then
each failure made for real on loopback in front of a real mitmdump."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs

from addon.exchange import errors as origin_errors
from addon.exchange.answers import origin_error
from addon.exchange.request import request_phases
from addon.http.messages import Request
from tests.support.edge_helpers import zone
from tests.support.h2client import H2Client
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import Mitmdump

RULES = "plan: pro\nsettings: {email_obfuscation: off, automatic_https_rewrites: off}\n"
CSS = b"body { color: #333 }\n" * 20


# ---- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "connected", "tls", "status"), [
    ("[Errno 111] Connect call failed ('127.0.0.1', 1)", False, False, 521),
    ("[Errno -2] Name or service not known", False, False, 523),
    ("[Errno 101] Network is unreachable", False, False, 523),
    ("timed out", False, False, 522),
    ("server closed connection", True, False, 520),
    ("Cannot parse HTTP response: Bad HTTP response line: b'NOT HTTP'", True, False, 520),
    ("TLS handshake failed: wrong version number", True, True, 525),
    ("Certificate verify failed: self-signed certificate", True, True, 526),
    ("Client disconnected.", True, False, None),
    ("Connection killed.", True, False, None),
    ("Response body exceeds mitmproxy's body_size_limit.", True, False, None),
])
def test_which_52x_a_failure_is(message, connected, tls, status):
    assert origin_errors.origin_failure(message, connected, tls) == status


def test_the_error_page_names_the_code_the_ray_and_the_failing_host():
    headers, body = origin_errors.error_page(521, "0123456789abcdef-LCL", "shop.example",
                                             "connection refused", now=0)
    fields = dict(headers)
    assert fields[b"server"] == b"cloudflare" and fields[b"cf-ray"] == b"0123456789abcdef-LCL"
    assert fields[b"cf-error-type"] == b"521" and b"cf-cache-status" not in fields
    assert int(fields[b"content-length"]) == len(body)
    assert b"<title>shop.example | 521: Web server is down</title>" in body
    assert b"Cloudflare Ray ID: <strong>0123456789abcdef</strong>" in body
    assert b"1970-01-01 00:00:00 UTC" in body and b"connection refused" in body


def test_the_record_of_an_origin_error_and_a_head_without_body():
    state = request_phases(zone(), Request(method="HEAD"))
    answer = origin_error(state, 522, "no SYN+ACK")
    entry = answer.record.as_dict()
    assert answer.final.status == 522 and answer.final.body == b""
    assert entry["status_out"] == 522 and entry["status"] is None
    assert entry["origin_error"] == {"status": 522, "title": "Connection timed out",
                                     "detail": "no SYN+ACK"}
    assert "Cloudflare answers 522" in entry["reason"] and entry["cache_status"] is None


# ---- for real ---------------------------------------------------------------------------------


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on return: nothing listens there


@contextlib.contextmanager
def _blackhole():
    """A port whose connections are never completed: its listen queue is full, so the
    kernel drops further SYNs and a connect() waits until it times out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fill = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(srv.getsockname())
        fill.append(c)
    try:
        yield srv.getsockname()[1]
    finally:
        for c in [*fill, srv]:
            c.close()


def _curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    out = subprocess.run(["curl", "-s", "-D", "-", "--max-time", "20", *args],
                         capture_output=True, timeout=30, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_cloudflare_error(status: int, headers: dict, body: bytes, code: int) -> None:
    assert status == code, body[:300]
    assert headers["server"] == "cloudflare" and headers["cf-error-type"] == str(code)
    assert "cf-cache-status" not in headers
    ray = headers["cf-ray"].split("-")[0]
    assert len(ray) == 16 and f"Cloudflare Ray ID: <strong>{ray}</strong>".encode() in body


def test_521_in_reverse_mode_although_mitmproxy_connects_eagerly_by_default(tmp_path):
    """Reverse mode connects to the origin when the visitor connects and, with the origin
    down, drops the visitor without an answer: the addon switches to lazy connections."""
    with Mitmdump(tmp_path, RULES, reverse_to=_dead_port()) as m:
        status, headers, body = _curl(f"http://127.0.0.1:{m.port}/page")
        _assert_cloudflare_error(status, headers, body, 521)
        record = m.wait_records(lambda r: r.get("origin_error"))
        assert record["status_out"] == 521 and "refused" in record["reason"]
        assert record["method"] == "GET" and record["url"].endswith("/page")
        assert "connection_strategy set to lazy" in m.output()


def test_521_and_523_through_the_regular_proxy(tmp_path):
    with Mitmdump(tmp_path, RULES) as m:
        proxy = f"http://127.0.0.1:{m.port}"
        status, headers, body = _curl("-x", proxy, f"http://127.0.0.1:{_dead_port()}/x")
        _assert_cloudflare_error(status, headers, body, 521)
        status, headers, body = _curl("-x", proxy, "http://no-such-host.invalid/x")
        _assert_cloudflare_error(status, headers, body, 523)
        assert b"no-such-host.invalid | 523: Origin is unreachable" in body


def test_522_when_the_connection_is_never_completed(tmp_path):
    with _blackhole() as port, Mitmdump(tmp_path, RULES, "--set", "cf_connect_timeout=0.5",
                                        reverse_to=port) as m:
        started = time.monotonic()
        status, headers, body = _curl(f"http://127.0.0.1:{m.port}/slow")
        _assert_cloudflare_error(status, headers, body, 522)
        assert time.monotonic() - started < 10
        assert "within 0.5 s" in m.wait_records(lambda r: r.get("origin_error"))["reason"]


def test_520_for_an_empty_answer_garbage_and_headers_over_128_kb(tmp_path):
    origin = Origin({b"/empty": Route(b"", close=True),
                     b"/garbage": Route(b"NOT HTTP AT ALL\r\n\r\n", close=True),
                     b"/cookies": Route(response(200, [(b"Set-Cookie", b"a=" + b"x" * 140_000)],
                                                 b"hi"))})
    try:
        with Mitmdump(tmp_path, RULES, reverse_to=origin.port) as m:
            for path in ("/empty", "/garbage", "/cookies"):
                status, headers, body = _curl(f"http://127.0.0.1:{m.port}{path}")
                _assert_cloudflare_error(status, headers, body, 520)
            reasons = [r["reason"] for r in m.records(at_least=3)]
            assert any("server closed connection" in r for r in reasons)
            assert any("Bad HTTP response line" in r for r in reasons)
            assert any("larger than the 128 KB" in r for r in reasons)
    finally:
        origin.stop()


def test_524_when_the_origin_answers_after_the_read_timeout(tmp_path):
    def slow(target: bytes, head: bytes) -> Route:
        time.sleep(1.5)
        return Route(response(200, [(b"Content-Type", b"text/plain")], b"late"))

    rules = RULES + ("cache_rules:\n  - expression: 'true'\n"
                     "    action_parameters: {read_timeout: 1}\n")
    origin = Origin({b"/report": slow, b"/quick": Route(response(200, body=b"fast"))})
    try:
        with Mitmdump(tmp_path, rules, reverse_to=origin.port) as m:
            status, headers, body = _curl(f"http://127.0.0.1:{m.port}/report")
            _assert_cloudflare_error(status, headers, body, 524)
            assert "more than the 1 s read timeout" in m.wait_records(
                lambda r: r.get("origin_error"))["reason"]
            assert _curl(f"http://127.0.0.1:{m.port}/quick")[0] == 200
    finally:
        origin.stop()


def _tls_server(certfile: Path | None, keyfile: Path | None):
    """A loopback server that completes a TLS handshake with this certificate (or, without
    one, answers plain bytes to a ClientHello, so the handshake fails)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    context = None
    if certfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                if context is None:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                else:
                    tls = context.wrap_socket(conn, server_side=True)
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    tls.close()
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 from a CA nobody trusts (made with mitmproxy's CertStore)."""
    store = certs.CertStore.from_store(tmp / "ca", "origin", 2048)
    entry = store.get_cert("127.0.0.1", [])
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    cert.write_bytes(entry.cert.to_pem())
    key.write_bytes(entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return cert, key


def test_525_and_526_for_an_https_origin(tmp_path):
    plain = _tls_server(None, None)
    cert, key = _self_signed(tmp_path)
    untrusted = _tls_server(cert, key)
    try:
        for srv, code in ((plain, 525), (untrusted, 526)):
            port = srv.getsockname()[1]
            with Mitmdump(tmp_path / str(code), RULES,
                          "--mode", f"reverse:https://127.0.0.1:{port}") as m:
                status, headers, body = _curl(f"http://127.0.0.1:{m.port}/")
                _assert_cloudflare_error(status, headers, body, code)
        # Full mode (ssl_insecure): the certificate is not checked, the origin answers
        port = untrusted.getsockname()[1]
        with Mitmdump(tmp_path / "insecure", RULES, "--set", "ssl_insecure=true",
                      "--mode", f"reverse:https://127.0.0.1:{port}") as m:
            assert _curl(f"http://127.0.0.1:{m.port}/")[0] == 200
    finally:
        plain.close()
        untrusted.close()


def test_an_http2_visitor_gets_the_521_too(tmp_path):
    with Mitmdump(tmp_path, RULES, reverse_to=_dead_port()) as m:
        with H2Client(m.port, tmp_path) as client:
            reply = client.request(b"/page")
        assert reply.status == 521 and reply.header(b"server") == b"cloudflare"
        assert reply.header(b"cf-ray") is not None and b"Web server is down" in reply.body


def test_an_origin_gone_between_the_check_and_the_connection_still_gets_520_or_521(
        tmp_path):
    """The check is skipped while the origin answered within the last two seconds; a
    failure then reaches the `error` hook, which answers an HTTP/1 visitor itself."""
    origin = Origin({b"/a": Route(response(200, body=b"up"))})
    with Mitmdump(tmp_path, RULES, reverse_to=origin.port) as m:
        async def go():
            client = await Client.connect(m.port)
            first = await client.get(b"/a")
            origin.stop()
            again = await Client.connect(m.port)
            second = await again.get(b"/a")
            await client.close()
            await again.close()
            return first, second

        first, second = run(go())
        assert first.status == 200
        assert second.status in (520, 521) and second.header(b"server") == b"cloudflare"
        record = m.wait_records(lambda r: r.get("origin_error"))
        assert record["status_out"] == second.status
