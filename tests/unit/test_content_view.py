"""The content view of a 304: which validator the browser sent and what it was compared
with, as YAML that reads back."""

from __future__ import annotations

import yaml
from mitmproxy import contentviews
from mitmproxy.test import taddons
from mitmproxy.test import tflow

from addon.exchange.record import Record
from addon.mitm.contentview import META
from addon.mitm.contentview import EdgeView


def _flow(not_modified: str):
    f = tflow.tflow(resp=True)
    f.request.headers["If-None-Match"] = 'W/"v1"'
    f.response.status_code = 304
    f.response.content = b""
    record = Record(url="http://example.com/a.css", etag_in='"v1"', etag_out='W/"v1"',
                    not_modified=not_modified, cache_status="HIT").as_dict()
    record["headers_in"] = ((b"ETag", b'"v1"'),)
    f.metadata[META] = record
    return f


def test_a_304_says_what_was_sent_and_compared():
    with taddons.context():
        _check()


def _check():
    f = _flow("edge")
    text = EdgeView().prettify(b"", contentviews.make_metadata(f.response, f))
    doc = yaml.safe_load(text.split("# the body")[0])
    assert doc["revalidation"] == {"304 from": "edge",
                                   "the browser sent": {"If-None-Match": 'W/"v1"'},
                                   "compared with": {"ETag": 'W/"v1"'}}
    assert "(no body)" in text
    relayed = yaml.safe_load(EdgeView().prettify(b"", contentviews.make_metadata(
        _flow("origin").response, _flow("origin"))).split("# the body")[0])
    assert "relayed its 304" in relayed["revalidation"]["compared with"]
