"""A session recorded once, as mitmproxy's own .mitm and as a HAR (mitmproxy's hardump),
then replayed through the edge from each: the same conversions, because the HAR's recorded
Content-Encoding is restored before the edge sees the body (mitmproxy's HAR loader decodes
every body)."""

from __future__ import annotations

import gzip
import json
import subprocess

import brotli

from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import EDGE
from tests.support.mitm import MITMDUMP
from tests.support.mitm import Mitmdump

CSS = b"body { color: #333; margin: 0 auto; padding: 1em; }\n" * 40
PAGE = b"<html><body>" + b"<p>Some text for the page, again and again.</p>" * 40 + \
    b"</body></html>"
JS = b"function hello() { return 'hello, world'; }\n" * 40


def _origin() -> Origin:
    return Origin({
        b"/style.css": Route(response(200, [(b"Content-Type", b"text/css"),
                                            (b"Content-Encoding", b"gzip"),
                                            (b"ETag", b'"c1"')], gzip.compress(CSS))),
        b"/": Route(response(200, [(b"Content-Type", b"text/html; charset=utf-8"),
                                   (b"Content-Encoding", b"br"),
                                   (b"ETag", b'W/"p1"')], brotli.compress(PAGE))),
        b"/app.js": Route(response(200, [(b"Content-Type", b"text/javascript"),
                                         (b"ETag", b'"j1"')], JS)),
    })


def _record(tmp_path, port: int) -> None:
    """Browse through plain mitmdump (no edge), saving both a .mitm and a HAR."""
    with Mitmdump(tmp_path / "rec", None, "-w", str(tmp_path / "session.mitm"),
                  "--set", f"hardump={tmp_path / 'session.har'}", reverse_to=port) as m:
        async def browse():
            c = await Client.connect(m.port)
            try:
                for path in (b"/", b"/style.css", b"/app.js"):
                    await c.get(path, [(b"Accept-Encoding", b"gzip, deflate, br, zstd")])
            finally:
                await c.close()
        run(browse())


def _replay(tmp_path, recording: str, name: str) -> tuple[list[dict], str]:
    log, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.md"
    done = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                           "-r", recording, "--set", f"cf_log={log}",
                           "--set", f"cf_report={report}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return records, report.read_text() + done.stdout


def _conversions(records: list[dict]) -> list[tuple]:
    return sorted((r["url"].rsplit("/", 1)[1], r["encoding_in"], r["encoding_out"],
                   r["action"], r["etag_action"]) for r in records)


def test_a_har_replays_as_the_recording_does(tmp_path):
    origin = _origin()
    try:
        _record(tmp_path, origin.port)
    finally:
        origin.stop()
    har = json.loads((tmp_path / "session.har").read_text())
    assert {e["response"]["content"].get("encoding") for e in har["log"]["entries"]}
    from_mitm, _ = _replay(tmp_path, str(tmp_path / "session.mitm"), "mitm")
    from_har, said = _replay(tmp_path, str(tmp_path / "session.har"), "har")
    same = _conversions(from_har)
    assert same == _conversions(from_mitm) and len(same) == 3
    assert ("style.css", "gzip", "br", "transcode", "weakened") in same
    assert ("", "br", "br", "rewrite", "removed") in same
    assert "2 response(s) were encoded again with the Content-Encoding the HAR lists" in said
    restored = next(r for r in from_har if r["url"].endswith("/style.css"))
    assert any("encoded again as gzip, the coding the HAR lists" in n for n in restored["notes"])
