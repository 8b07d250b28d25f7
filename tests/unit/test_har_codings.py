"""The HAR entries' recorded Content-Encoding (addon/mitm/har.py), read as mitmproxy's HAR
loader orders them, and a coding this tool cannot write said rather than guessed."""

from __future__ import annotations

from mitmproxy.test import tflow

from addon.http import codings
from addon.mitm.har import NOTE
from addon.mitm.har import HarCodings
from addon.mitm.har import recorded_codings
from addon.mitm.run_report import RunReport


def _entry(url: str, coding: str | None, text: str = "body") -> dict:
    headers = [{"name": "Content-Type", "value": "text/css"}]
    if coding is not None:
        headers.append({"name": "content-encoding", "value": coding})
    return {"startedDateTime": "2026-12-01T10:00:00.000Z",
            "request": {"method": "GET", "url": url},
            "response": {"headers": headers, "content": {"text": text}}}


def test_recorded_codings_in_entry_order():
    har = {"log": {"entries": [_entry("http://a.test/x", "gzip"), _entry("http://a.test/y", None),
                               _entry("http://a.test/x", "br"),
                               _entry("http://a.test/z", "gzip", text="")]}}
    assert recorded_codings(har) == {("GET", "http://a.test/x"): ["gzip", "br"]}


def _flow(url: str, body: bytes):
    f = tflow.tflow(resp=True)
    f.live = False
    f.request.url = url
    f.response.headers.pop("content-encoding", None)
    f.response.raw_content = body
    return f


def test_a_body_is_encoded_again_and_an_unknown_coding_is_said():
    har = HarCodings(RunReport())
    har.recorded = {("GET", "http://a.test/x"): ["gzip", "x-custom"]}
    first, second = _flow("http://a.test/x", b"hello " * 20), _flow("http://a.test/x", b"hi")
    har.requestheaders(first)
    assert first.response.headers["content-encoding"] == "gzip"
    assert codings.decode(first.response.raw_content, "gzip") == b"hello " * 20
    assert "encoded again as gzip" in first.metadata[NOTE]
    har.requestheaders(second)
    assert "content-encoding" not in second.response.headers
    assert "cannot re-create: replayed decoded" in second.metadata[NOTE]
    assert (har.restored, dict(har.unrestored)) == (1, {"x-custom": 1})
