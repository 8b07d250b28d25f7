"""The workflows end to end: the report after a replay, the trace header, the origin probe,
the content view, `make demo` and `python -m addon explain` as processes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mitmproxy import contentviews
from mitmproxy import http
from mitmproxy.test import taddons
from mitmproxy.test import tflow

from addon.exchange.record import read_log
from addon.mitm import addons
from addon.mitm.origins import Origins
from addon.mitm.requests import EdgeRequests
from addon.mitm.responses import EdgeResponses
from addon.report.model import human
from tests.e2e.test_cache_e2e import CSS
from tests.e2e.test_cache_e2e import GZ
from tests.e2e.test_cache_e2e import get
from tests.support.edge_helpers import FEATURES_OFF
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.mitm import EDGE
from tests.support.mitm import MITMDUMP
from tests.support.mitm import ROOT
from tests.support.mitm import Mitmdump
from tests.support.mitm import stop_process

RULES = f"plan: pro\nsettings:\n{FEATURES_OFF}"


def strict_origin(target: bytes, head: bytes) -> Route:
    """An origin that compares If-None-Match strongly and sends a Unix-time Last-Modified."""
    if b'if-none-match: "v1"' in head.lower():
        return Route(response(304, [(b"ETag", b'"v1"')], length=False))
    return Route(response(200, [(b"Content-Type", b"text/css"), (b"ETag", b'"v1"'),
                                (b"Last-Modified", b"1415000000")], CSS))


@pytest.fixture
def origin():
    o = Origin({b"/s.css": strict_origin, b"/page": strict_origin})
    yield o
    o.stop()


def replay_with_report(tmp_path: Path, recording: Path, report: Path,
                       log: Path | None = None) -> str:
    """`mitmdump -nr recording` through the edge with cf_report; the Markdown it wrote."""
    (tmp_path / "rules.yaml").write_text(RULES)
    extra = ["--set", f"cf_log={log}"] if log is not None else []
    out = subprocess.run([MITMDUMP, "-n", "-r", str(recording), "--set", f"confdir={tmp_path}",
                          "-s", EDGE, "--set", f"cf_rules={tmp_path / 'rules.yaml'}",
                          "--set", f"cf_report={report}", *extra], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return report.read_text()


def test_report_after_replaying_a_recording(tmp_path, origin):
    flows = tmp_path / "session.mitm"
    with Mitmdump(tmp_path / "rec", None, "-w", str(flows), reverse_to=origin.port) as m:
        get(m.port, b"/s.css", GZ)
        get(m.port, b"/page", [*GZ, (b"If-None-Match", b'W/"v1"')])  # lost behind Cloudflare
    report = tmp_path / "out" / "edge-report.md"
    report.parent.mkdir()
    md = replay_with_report(tmp_path, flows, report, log=tmp_path / "edge.jsonl")
    # the headline's numbers are the log's
    records = read_log(tmp_path / "edge.jsonl")
    full = [r for r in records if r["status_out"] == 200 and r["method"] == "GET"]
    lost = [r for r in full if (r["etag_in"] or "").startswith('"')
            and r["etag_action"] in ("weakened", "removed")]
    with_etag = [r for r in full if r["etag_out"]]
    b_in, b_out = sum(r["bytes_in"] for r in full), sum(r["bytes_out"] for r in full)
    assert f"- {len(records)} responses, all full." in md
    assert f"- Bytes: {human(b_in)} from the origin, {human(b_out)} to visitors" in md
    assert f"- ETags: {len(lost)} strong ETag(s) lost" in md
    assert (f"- Revalidations: {len(with_etag)} of {len(full)} page(s) can be revalidated "
            f"({len(with_etag)} by ETag") in md
    assert "### Strong ETags lost (2)" in md
    assert "| http://127.0.0.1/s.css | `\"v1\"` | `W/\"v1\"` |" in md
    assert ". weak-if-none-match-ignored (1)" in md and ". invalid-last-modified (2)" in md
    page = (tmp_path / "out" / "edge-report.html").read_text()
    assert "<svg" in page and "weak-if-none-match-ignored" in page


def test_trace_header_only_when_asked(tmp_path, origin):
    with Mitmdump(tmp_path / "off", RULES, reverse_to=origin.port) as m:
        assert get(m.port, b"/s.css", GZ).header(b"x-cf-edge-trace") is None
    with Mitmdump(tmp_path / "on", RULES, "--set", "cf_trace=true", reverse_to=origin.port) as m:
        trace = get(m.port, b"/s.css", GZ).header(b"x-cf-edge-trace")
    assert trace.startswith(b'compress identity->gzip; ETag weakened "v1"->W/"v1"; cache MISS;')
    assert b"row 5" in trace


def test_probe_finds_an_origin_that_loses_its_304s(tmp_path, origin):
    with Mitmdump(tmp_path, RULES, "--set", "cf_diagnose_probe=true",
                  reverse_to=origin.port) as m:
        get(m.port, b"/s.css", GZ)
        get(m.port, b"/s.css", GZ)  # a HIT: no second probe
        m.wait_for("origin diagnosis for http://127.0.0.1/s.css: the origin answered "
                   'If-None-Match W/"v1" with 200')
        rec = m.wait_records(lambda r: r.get("probe"))
        assert rec["diagnoses"][0]["code"] == "weak-if-none-match-ignored"
        # probes go out in order: once this one is back, any the HIT made would be too
        get(m.port, b"/page", GZ)
        m.wait_records(lambda r: r.get("probe") and r["url"].endswith("/page"))
    probes = [t for t, h in origin.seen if b'if-none-match: w/"v1"' in h.lower()]
    assert probes == [b"/s.css", b"/page"]


def test_no_probe_for_a_page_whose_visitors_never_get_an_etag(tmp_path):
    """Email Obfuscation removes the page's ETag: no browser revalidates with it, so
    probing the origin with its weakened form would find nothing a visitor meets."""
    page = Route(response(200, [(b"Content-Type", b"text/html"), (b"ETag", b'"p1"')],
                          b"<html><body><p>mail a@example.com</p></body></html>" * 5))
    origin = Origin({b"/page": page, b"/s.css": strict_origin})
    rules = "plan: pro\nsettings: {email_obfuscation: on, automatic_https_rewrites: off}\n"
    try:
        with Mitmdump(tmp_path, rules, "--set", "cf_diagnose_probe=true",
                      reverse_to=origin.port) as m:
            assert get(m.port, b"/page", GZ).header(b"etag") is None
            get(m.port, b"/s.css", GZ)
            m.wait_records(lambda r: r.get("probe"))  # the stylesheet's probe is done
        probes = [t for t, h in origin.seen if b"if-none-match" in h.lower()]
        assert probes == [b"/s.css"]
    finally:
        origin.stop()


async def test_content_view_shows_the_record_and_both_header_sets(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    chain = addons()
    requests = next(a for a in chain if isinstance(a, EdgeRequests))
    responses = next(a for a in chain if isinstance(a, EdgeResponses))
    origins = next(a for a in chain if isinstance(a, Origins))
    with taddons.context(*chain) as tctx:
        tctx.options.update(cf_rules=str(tmp_path / "rules.yaml"))
        f = tflow.tflow(resp=False)
        f.request.timestamp_start = f.request.timestamp_end = time.time()  # live: sent now
        f.request.path = "/page"
        f.request.headers["accept-encoding"] = "gzip"
        requests.requestheaders(f)
        origins.answered(f)  # the made-up origin of a test flow answered just now
        assert requests.request(f) is None  # nothing to wait for
        f.response = http.Response.make(200, CSS, {"Content-Type": "text/css", "ETag": '"v1"'})
        assert responses.response(f) is None
        assert "cf_edge_state" not in f.metadata  # never saved with the flow
        view = contentviews.prettify_message(f.response, f)  # "auto": chosen by itself
        untouched = tflow.tflow(resp=True)
        assert contentviews.prettify_message(untouched.response, untouched).view_name != (
            "cloudflare edge")
    assert view.view_name == "cloudflare edge"
    text = view.text
    decision = yaml.safe_load(text.split("# the body")[0])  # real YAML, real values
    assert decision["decision"]["action"] == "compress"
    assert decision["decision"]["etag_out"] == 'W/"v1"'
    assert decision["decision"]["respect_strong_etags"] is False
    assert decision["headers from the origin (or the stored object)"]["ETag"] == '"v1"'
    visitor = decision["headers to the visitor"]
    assert visitor["ETag"] == 'W/"v1"' and visitor["content-encoding"] == "gzip"
    assert visitor["cf-cache-status"] == "DYNAMIC"
    assert "color: #333;" in text.split("# the body")[1]  # the body, as the CSS view shows it
    summary, why = f.comment.split("\n")[:2]
    assert summary.startswith('compress identity->gzip; ETag weakened "v1"->W/"v1"; '
                              "cache DYNAMIC")
    assert why.startswith("why: ")


def test_demo_prints_the_matrix(tmp_path):
    out = subprocess.run([sys.executable, "-m", "addon", "demo", "--port", "0", "--no-wait"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in out.stdout.splitlines() if line.startswith("| /")]
    assert len(rows) == 6 * 5  # six routes, four visitors and a revalidation each
    by = {(r[0], r[1]): r for r in rows}
    assert by["/strong.css", "gzip"][2:6] == ['identity "s1"', 'gzip W/"s1"', "200", "HIT"]
    assert by["/br.css", "gzip"][6].endswith("row 4)")
    assert by["/", "gzip, br"][3] == "br (no ETag)"  # the HTML page lost its ETag
    assert by["/", "a revalidating browser"][6].startswith("no ETag reached the visitor")
    reval = by["/strong.css", 'gzip, br + If-None-Match: W/"s1"']
    assert reval[4:] == ["304", "HIT", "304 from the edge"]


def test_demo_stopped_by_sigterm_removes_its_directory_and_ca_key():
    proc = subprocess.Popen([sys.executable, "-u", "-m", "addon", "demo", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, start_new_session=True)
    try:
        workdir, seen = None, []
        for line in proc.stdout:
            seen.append(line)
            if m := re.search(r"The log of each decision: (\S+)/edge\.jsonl", line):
                workdir = Path(m.group(1))
            if "Ctrl-C stops the demo" in line:
                break
        assert workdir is not None and (workdir / "mitmproxy-ca.pem").exists(), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert not workdir.exists()
    finally:  # whatever happened, nothing of the demo (its mitmdump) is left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_explain_as_a_command(tmp_path):
    dump = tmp_path / "h.txt"
    dump.write_text('HTTP/2 200\r\ncontent-type: text/css\r\ncontent-encoding: gzip\r\n'
                    'etag: "g1"\r\n\r\n')
    ok = subprocess.run([sys.executable, "-m", "addon", "explain", "--accept-encoding",
                         "gzip, br", "--url", "https://example.com/a.css", str(dump)],
                        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "transcode, gzip -> br; ETag weakened" in ok.stdout and "row 1" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "addon", "explain", "-"], input="nonsense\n",
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "explain: <stdin>:1: expected a status line" in bad.stderr


def test_bad_report_path_is_refused(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    out = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={tmp_path / 'rules.yaml'}",
                          "--set", f"cf_report={tmp_path / 'missing' / 'r.md'}"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "cf_report: directory" in out.stdout
    assert "does not exist" in out.stdout
    assert Path(tmp_path / "missing").exists() is False


def test_content_view_in_a_running_mitmweb(tmp_path, origin):
    """The view as mitmweb serves it to its UI, for a flow that went through the edge."""
    (tmp_path / "rules.yaml").write_text(RULES)
    proc, web, proxy_port = _start_mitmweb(tmp_path, origin.port)
    try:
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe open
        get(proxy_port, b"/s.css", GZ)
        base, token = web
        deadline = time.monotonic() + 10
        flows: list = []
        while not flows and time.monotonic() < deadline:
            flows = [f for f in _json(f"{base}flows?token={token}")
                     if f.get("response")]
            time.sleep(0.1)
        view = _json(f"{base}flows/{flows[0]['id']}/response/content/auto.json?token={token}")
        assert view["view_name"] == "cloudflare edge"  # chosen by default for a handled flow
        assert "cache_status: MISS" in view["text"] and 'etag_out: W/"v1"' in view["text"]
        assert "headers to the visitor:" in view["text"]
        assert flows[0]["comment"].split("\n")[0].startswith("compress identity->gzip; "
                                                             'ETag weakened "v1"->W/"v1"')
    finally:
        stop_process(proc)


def _start_mitmweb(tmp_path: Path, origin_port: int):
    """mitmweb prints a web port of 0 as 0, so a port is chosen; if another process takes
    it first, mitmweb fails to bind and another one is tried (nothing is held meanwhile)."""
    mitmweb = str(Path(MITMDUMP).with_name("mitmweb"))
    for _ in range(10):
        web_port = random.randint(20_000, 60_000)
        proc = subprocess.Popen(
            [mitmweb, "--no-web-open-browser", "--web-host", "127.0.0.1", "--web-port",
             str(web_port), "--listen-host", "127.0.0.1", "-p", "0", "--set",
             f"confdir={tmp_path}", "--mode", f"reverse:http://127.0.0.1:{origin_port}",
             "--set", "keep_host_header=true", "-s", EDGE,
             "--set", f"cf_rules={tmp_path / 'rules.yaml'}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        web = proxy_port = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r"Web server listening at (http://[^/]+/)\?token=(\w+)", line):
                web = (m.group(1), m.group(2))
            if m := re.search(r"listening at 127\.0\.0\.1:(\d+)", line):
                proxy_port = int(m.group(1))
            if web and proxy_port:
                return proc, web, proxy_port
        stop_process(proc)  # the output ended: it could not bind; another port
    raise AssertionError("mitmweb did not start")


def _json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
        return json.loads(r.read())


def test_report_when_a_live_proxy_stops(tmp_path, origin):
    report = tmp_path / "live.md"
    with Mitmdump(tmp_path, RULES, "--set", f"cf_report={report}", reverse_to=origin.port) as m:
        get(m.port, b"/s.css", GZ)
        get(m.port, b"/s.css", [*GZ, (b"If-None-Match", b'W/"v1"')])
        m.wait_records(lambda r: r.get("status_out") == 304)
        assert not report.exists()  # written when the proxy stops
    md = report.read_text()
    assert "- 2 responses: 1 full, 1 304 from the edge" in md and "| MISS | 1 | 50% |" in md
    assert "| 304 from the edge | 1 | 50% |" in md
    assert (tmp_path / "live.html").read_text().count("<svg") >= 3


def test_report_from_a_har_recording(tmp_path, origin):
    har = tmp_path / "session.har"
    with Mitmdump(tmp_path / "rec", None, "--set", f"hardump={har}",
                  reverse_to=origin.port) as m:
        get(m.port, b"/s.css", GZ)
        get(m.port, b"/s.css", [*GZ, (b"If-None-Match", b'"v1"')])
    assert har.exists()
    md = replay_with_report(tmp_path, har, tmp_path / "har-report.md")
    assert "- 2 responses: 1 full, 1 304 from the edge" in md and "| HIT | 1 | 50% |" in md
