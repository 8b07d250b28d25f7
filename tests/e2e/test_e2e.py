"""End to end: a real mitmdump with the addon in front of a real origin on loopback."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from addon.http import codings
from tests.support.mitm import EDGE
from tests.support.mitm import MITMDUMP
from tests.support.mitm import ROOT
from tests.support.mitm import Mitmdump

BODY = b"<p>The origin's page, long enough to be compressed by the edge.</p>\n" * 20

RULES = """
plan: pro
settings: {brotli: on, email_obfuscation: off, automatic_https_rewrites: off}
cache_rules:
  - description: strong etags for /rse/
    expression: starts_with(http.request.uri.path, "/rse/")
    action_parameters: {respect_strong_etags: true}
"""


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802
        Origin.seen.append((self.path, self.headers.get("accept-encoding")))
        coding = self.path.rstrip("/").rsplit("/", 1)[-1]  # /.../gzip, /.../br, /.../identity
        body = codings.encode(BODY, coding) if coding in ("gzip", "br") else BODY
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("ETag", '"foobar"')
        if coding in ("gzip", "br"):
            self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class Proxy(Mitmdump):
    """mitmdump as a regular proxy, with the addon, driven through http.client."""

    def __init__(self, tmp: Path, rules: str, *extra: str):
        super().__init__(tmp, rules, *extra)

    def get(self, url: str, accept: str | None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.putrequest("GET", url, skip_accept_encoding=True)
        if accept is not None:
            conn.putheader("Accept-Encoding", accept)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        return resp.status, headers, body


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    p = Proxy(tmp_path_factory.mktemp("edge"), RULES)
    yield p
    p.stop()


TABLE = [
    # (respect strong etags, visitor, origin, served, etag)
    (True, "gzip, br", "gzip", "gzip", '"foobar"'),
    (True, "gzip, br", "br", "br", '"foobar"'),
    (True, "br", "gzip", "identity", 'W/"foobar"'),
    (True, "gzip", "br", "identity", 'W/"foobar"'),
    (True, "gzip", "identity", "identity", '"foobar"'),
    (False, "gzip, br", "gzip", "br", 'W/"foobar"'),
    (False, "gzip, br", "br", "br", '"foobar"'),
    (False, "br", "gzip", "br", 'W/"foobar"'),
    (False, "gzip", "br", "gzip", 'W/"foobar"'),
    (False, "gzip", "identity", "gzip", 'W/"foobar"'),
]


@pytest.mark.parametrize(("rse", "accept", "origin_coding", "served", "etag"), TABLE)
def test_documented_table_rows_through_mitmdump(proxy, origin, rse, accept, origin_coding,
                                                served, etag):
    path = f"/{'rse' if rse else 'std'}/{accept.replace(', ', '-')}/{origin_coding}"
    sent = round(time.time(), 3)
    status, headers, body = proxy.get(f"http://127.0.0.1:{origin}{path}", accept)
    assert status == 200
    assert headers.get("content-encoding", "identity") == served
    assert headers["etag"] == etag
    assert codings.decode(body, served) == BODY  # byte for byte the origin's
    changed = etag.startswith("W/")
    if changed:
        assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
        assert headers["vary"] == "Accept-Encoding"
    else:
        assert headers["content-length"] == str(len(body)) and "vary" not in headers
    seen = [ae for p, ae in Origin.seen if p == path][-1]
    assert seen == (accept if rse else "br, gzip")
    record = proxy.wait_records(lambda r: r["url"].endswith(path), since=sent)
    assert record["etag_action"] == ("weakened" if changed else "kept")
    assert record["changed"] is changed
    assert "row" in record["table_row"] and "documented" in record["reason"]


def test_log_records_and_event_log(proxy, origin):
    url = f"http://127.0.0.1:{origin}/std/log/gzip"
    sent = round(time.time(), 3)
    proxy.get(url, "br")
    record = proxy.wait_records(lambda r: r["url"] == url, since=sent)
    for key in ("ts", "method", "url", "status", "accept_encoding", "encoding_in", "encoding_out",
                "etag_in", "etag_out", "etag_action", "changed", "reason", "rules"):
        assert key in record
    assert (record["method"], record["status"], record["accept_encoding"]) == ("GET", 200, "br")
    assert (record["encoding_in"], record["encoding_out"]) == ("gzip", "br")
    assert (record["etag_in"], record["etag_out"]) == ('"foobar"', 'W/"foobar"')
    rse_url = f"http://127.0.0.1:{origin}/rse/log/gzip"
    proxy.get(rse_url, "gzip")
    rse = proxy.wait_records(lambda r: r["url"] == rse_url, since=sent)
    assert rse["rules"] == ['cache_rules[1] "strong etags for /rse/"'] and not rse["changed"]
    proxy.wait_for(re.escape(f"cf_edge: GET {url} 200: gzip -> br, ETag weakened"))


def _edit(path: Path, text: str) -> None:
    """Write the file with an mtime the watcher has not seen: no waiting for the clock to
    tick into a new second."""
    before = path.stat().st_mtime
    path.write_text(text)
    os.utime(path, (before + 10, before + 10))


def test_reload_on_change_and_broken_edit_keeps_previous_rules(tmp_path, origin):
    p = Proxy(tmp_path, RULES)
    try:
        url = f"http://127.0.0.1:{origin}/std/reload/identity"
        assert p.get(url, "gzip, br")[1]["content-encoding"] == "br"
        _edit(p.rules, RULES.replace("brotli: on", "brotli: off"))
        p.wait_for(r"cf_edge: reloaded")
        assert p.get(url, "gzip, br")[1]["content-encoding"] == "gzip"
        _edit(p.rules, RULES.replace("plan: pro", "plan: platinum"))
        p.wait_for(r"rules file not reloaded, previous rules stay in force")
        p.wait_for(r"plan: must be one of")
        assert p.get(url, "gzip, br")[1]["content-encoding"] == "gzip"
        assert p.proc.poll() is None
    finally:
        p.stop()


def test_broken_rules_file_stops_startup_with_file_line_column_key(tmp_path):
    rules = tmp_path / "bad.yaml"
    rules.write_text("plan: pro\ncache_rules:\n  - expression: ssl\n"
                     "    action_parameters: {respect_strong_etag: true}\n")
    proc = subprocess.run(
        [MITMDUMP, "--listen-host", "127.0.0.1", "-p", "0", "--set", f"confdir={tmp_path}",
         "-s", str(ROOT / "addon" / "edge.py"), "--set", f"cf_rules={rules}"],
        capture_output=True, text=True, timeout=30,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert f"{rules}:4:25: cache_rules[1].action_parameters.respect_strong_etag: unknown key" in out


def test_bad_log_option_stops_startup(tmp_path):
    proc = subprocess.run(
        [MITMDUMP, "--listen-host", "127.0.0.1", "-p", "0", "--set", f"confdir={tmp_path}",
         "-s", str(ROOT / "addon" / "edge.py"), "--set", f"cf_log={tmp_path}/no/such/dir/x.jsonl"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert "cf_log: directory" in proc.stdout + proc.stderr


def _write_recording(path: Path) -> None:
    from mitmproxy import http as mhttp
    from mitmproxy import io
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.headers["accept-encoding"] = "gzip, br"
    flow.response = mhttp.Response.make(
        200, BODY, {"content-type": "text/css", "content-encoding": "gzip", "etag": '"v1"'})
    with open(path, "wb") as f:
        io.FlowWriter(f).add(flow)


def _read_recording(path: Path):
    from mitmproxy import io

    with open(path, "rb") as f:
        return list(io.FlowReader(f).stream())


def test_recordings_are_converted_annotated_and_not_converted_twice(tmp_path):
    recorded, out, again, log = (tmp_path / n for n in ("in.mitm", "out.mitm", "again.mitm",
                                                         "report.jsonl"))
    _write_recording(recorded)
    base = [MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", str(ROOT / "addon" / "edge.py"),
            "--set", f"cf_log={log}"]
    subprocess.run([*base, "-r", str(recorded), "-w", str(out)], check=True, timeout=60,
                   capture_output=True)
    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (entry["encoding_in"], entry["encoding_out"], entry["etag_out"]) == (
        "gzip", "br", 'W/"v1"')
    [flow] = _read_recording(out)
    assert flow.marked == ":cloud:" and "re-encoded as br" in flow.comment
    assert flow.metadata["cf_edge"]["etag_action"] == "weakened"
    assert flow.request.headers["accept-encoding"] == "gzip, br"  # recorded request untouched
    assert codings.decode(flow.response.raw_content, "br") == BODY
    report = tmp_path / "again.md"
    second = subprocess.run([*base, "-r", str(out), "-w", str(again), "--set",
                             f"cf_report={report}"], check=True, timeout=60,
                            capture_output=True, text=True)
    assert len(log.read_text().splitlines()) == 1  # already handled: skipped, and said
    assert "1 flow(s) skipped: the edge had already handled them" in second.stdout
    head = report.read_text().split("##")[0]
    assert "- No response was handled." in head
    assert "- 1 flow(s) skipped: the edge had already handled them" in head
    [flow] = _read_recording(again)
    assert flow.response.headers["etag"] == 'W/"v1"'


def test_a_misspelled_option_stops_startup_whatever_q_says(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    out = subprocess.run([MITMDUMP, "-q", "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={tmp_path / 'rules.yaml'}",
                          "--set", "cf_reprot=r.md"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr
    assert "unknown option cf_reprot: did you mean cf_report?" in out.stdout
