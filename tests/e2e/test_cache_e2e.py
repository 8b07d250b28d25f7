"""The edge cache end to end: a real mitmdump in front of a real loopback origin, whole
sequences of requests, and what the origin saw of each."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from addon.cache.store import CachedObject
from addon.http import codings
from addon.mitm import addons
from addon.mitm.cache import EdgeCache
from tests.support.edge_helpers import FEATURES_OFF
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import EDGE
from tests.support.mitm import MITMDUMP
from tests.support.mitm import Mitmdump

CSS = b"body { color: #333; margin: 0 auto; padding: 1em; }\n" * 40
RULES = f"plan: pro\nsettings:\n{FEATURES_OFF}"
KEY_RULES = RULES + """cache_rules:
  - description: one object per encoding
    expression: 'true'
    action_parameters:
      respect_strong_etags: true
      cache_key: {custom_key: {header: {contains: {accept-encoding: [br]}}}}
"""


def _headers(head: bytes) -> dict[bytes, bytes]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k:
            out[k.strip().lower()] = v.strip()
    return out


def origin_with(headers: list[tuple[bytes, bytes]], body: bytes = CSS, *, by_encoding=False,
                delay: float = 0.0):
    """A handler that answers 304 to a matching If-None-Match and compresses by the
    request's Accept-Encoding when `by_encoding`."""

    def handle(target: bytes, head: bytes) -> Route:
        if delay:
            time.sleep(delay)
        req = _headers(head)
        etag = dict((k.lower(), v) for k, v in headers).get(b"etag")
        if etag is not None and req.get(b"if-none-match", b"").replace(b"W/", b"") == etag:
            return Route(response(304, [h for h in headers if h[0].lower() == b"etag"],
                                  length=False))
        hs, data = list(headers), body
        if by_encoding:
            coding = "br" if b"br" in req.get(b"accept-encoding", b"") else "gzip"
            data = codings.encode(body, coding)
            hs.append((b"Content-Encoding", coding.encode()))
        return Route(response(200, hs, data))

    return handle


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


def proxy(tmp_path: Path, origin: Origin, rules: str = RULES, *extra: str) -> Mitmdump:
    return Mitmdump(tmp_path, rules, *extra, reverse_to=origin.port)


async def _get(port, path, headers=(), method=b"GET"):
    c = await Client.connect(port)
    try:
        return await c.get(path, list(headers), method=method)
    finally:
        await c.close()


def get(port, path, headers=(), method=b"GET"):
    return run(_get(port, path, headers, method))


def seen(origin: Origin, path: bytes) -> list[dict[bytes, bytes]]:
    return [_headers(head) | {b":method": head.split(b" ", 1)[0]}
            for target, head in origin.seen if target == path]


GZ = [(b"Accept-Encoding", b"gzip")]
ETAG_CSS = [(b"Content-Type", b"text/css"), (b"ETag", b'"v1"')]


def test_miss_hit_and_the_edge_304(tmp_path, origin):
    origin.routes[b"/s.css"] = origin_with(ETAG_CSS)
    with proxy(tmp_path, origin) as m:
        first = get(m.port, b"/s.css", [*GZ, (b"If-None-Match", b'W/"v1"'),
                                         (b"If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT"),
                                         (b"If-Range", b'"v1"'), (b"Range", b"bytes=0-9")])
        # a cacheable miss: the origin gets no validator and no range, so it sends the
        # full body (facts 2.4.1, 1.8.8)
        sent = seen(origin, b"/s.css")[0]
        for name in (b"if-none-match", b"if-modified-since", b"if-range", b"range"):
            assert name not in sent, name
        assert first.status == 304 and first.header(b"cf-cache-status") == b"MISS"
        assert sent[b"cf-ray"] == first.header(b"cf-ray")  # the same ray both ways
        assert sent[b"cdn-loop"] == b"cloudflare" and sent[b"accept-encoding"] == b"br, gzip"
        full = get(m.port, b"/s.css", GZ)
        assert full.status == 200 and full.header(b"cf-cache-status") == b"HIT"
        assert full.header(b"etag") == b'W/"v1"' and full.header(b"age") is not None
        assert full.header(b"server") == b"cloudflare"
        assert codings.decode(full.body, "gzip") == CSS
        again = get(m.port, b"/s.css", [*GZ, (b"If-None-Match", full.header(b"etag"))])
        assert again.status == 304 and again.body == b""
        assert again.header(b"etag") == b'W/"v1"' and again.header(b"content-type") is None
        assert len(seen(origin, b"/s.css")) == 1
        rec = m.wait_records(lambda r: r["cache_status"] == "HIT" and r["status_out"] == 304)
        assert rec["not_modified"] == "edge" and rec["cache_key"] == "http://127.0.0.1/s.css"


def test_dynamic_request_sends_validators_and_relays_the_origins_304(tmp_path, origin):
    origin.routes[b"/page.html"] = origin_with([(b"Content-Type", b"text/html"),
                                                (b"ETag", b'"p1"')])
    with proxy(tmp_path, origin) as m:
        r = get(m.port, b"/page.html", [*GZ, (b"If-None-Match", b'"p1"')])
        assert seen(origin, b"/page.html")[0][b"if-none-match"] == b'"p1"'
        assert r.status == 304 and r.header(b"cf-cache-status") == b"DYNAMIC"
        rec = m.wait_records(lambda r: r["url"].endswith("/page.html"))
        assert rec["not_modified"] == "origin" and rec["cache_status"] == "DYNAMIC"


def test_expiry_then_revalidated_with_the_stored_validator(tmp_path, origin):
    origin.routes[b"/x.js"] = origin_with([(b"Content-Type", b"text/javascript"),
                                           (b"ETag", b'"j1"'),
                                           (b"Cache-Control", b"max-age=1")])
    with proxy(tmp_path, origin) as m:
        assert get(m.port, b"/x.js", GZ).header(b"cf-cache-status") == b"MISS"
        assert get(m.port, b"/x.js", GZ).header(b"cf-cache-status") == b"HIT"
        time.sleep(1.2)
        r = get(m.port, b"/x.js", GZ)
        assert r.header(b"cf-cache-status") == b"REVALIDATED" and r.status == 200
        assert codings.decode(r.body, "gzip") == CSS and r.header(b"age") is None
        assert seen(origin, b"/x.js")[-1][b"if-none-match"] == b'"j1"'
        assert get(m.port, b"/x.js", GZ).header(b"cf-cache-status") == b"HIT"


def test_stale_while_revalidate_updates_in_the_background(tmp_path, origin):
    origin.routes[b"/u.css"] = origin_with([
        (b"Content-Type", b"text/css"), (b"ETag", b'"u1"'),
        (b"Cache-Control", b"max-age=1, stale-while-revalidate=60")])
    with proxy(tmp_path, origin) as m:
        get(m.port, b"/u.css", GZ)
        time.sleep(1.2)
        r = get(m.port, b"/u.css", GZ)
        assert r.header(b"cf-cache-status") == b"UPDATING" and r.status == 200
        deadline = time.monotonic() + 10
        while len(seen(origin, b"/u.css")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        background = seen(origin, b"/u.css")[1]
        assert background[b"if-none-match"] == b'"u1"'
        m.wait_for("background revalidation of http://127.0.0.1/u.css: revalidated")
        assert get(m.port, b"/u.css", GZ).header(b"cf-cache-status") == b"HIT"
        assert len(seen(origin, b"/u.css")) == 2


def test_first_encoding_is_shared_then_kept_apart_by_a_cache_key_rule(tmp_path, origin):
    origin.routes[b"/b.css"] = origin_with(ETAG_CSS, by_encoding=True)
    with proxy(tmp_path / "shared", origin) as m:
        a = get(m.port, b"/b.css", [(b"Accept-Encoding", b"gzip, br")])
        b = get(m.port, b"/b.css", GZ)
        assert (a.header(b"cf-cache-status"), b.header(b"cf-cache-status")) == (b"MISS", b"HIT")
        # the origin was asked br, gzip and sent br: the cached object is br
        assert a.header(b"content-encoding") == b"br" and a.header(b"etag") == b'"v1"'
        assert b.header(b"content-encoding") == b"gzip" and b.header(b"etag") == b'W/"v1"'
        assert codings.decode(b.body, "gzip") == CSS
    origin.seen.clear()
    with proxy(tmp_path / "apart", origin, KEY_RULES) as m:
        a = get(m.port, b"/b.css", [(b"Accept-Encoding", b"gzip, br")])
        b = get(m.port, b"/b.css", GZ)
        assert (a.header(b"cf-cache-status"), b.header(b"cf-cache-status")) == (b"MISS", b"MISS")
        assert (a.header(b"content-encoding"), b.header(b"content-encoding")) == (b"br", b"gzip")
        assert a.header(b"etag") == b.header(b"etag") == b'"v1"'  # both strong
        assert get(m.port, b"/b.css", GZ).header(b"cf-cache-status") == b"HIT"
        assert [s[b"accept-encoding"] for s in seen(origin, b"/b.css")] == [b"gzip, br", b"gzip"]


@pytest.mark.parametrize(("extra", "status"), [
    ((b"Set-Cookie", b"sid=42; Path=/"), b"BYPASS"),
    ((b"Cache-Control", b"private"), b"BYPASS"),
    ((b"Cache-Control", b"no-store"), b"BYPASS"),
])
def test_uncacheable_responses_reach_the_origin_each_time(tmp_path, origin, extra, status):
    origin.routes[b"/n.css"] = origin_with([*ETAG_CSS, extra])
    with proxy(tmp_path, origin) as m:
        for _ in range(2):
            r = get(m.port, b"/n.css", [*GZ, (b"If-None-Match", b'W/"v1"')])
            assert r.status == 200 and r.header(b"cf-cache-status") == status
        assert len(seen(origin, b"/n.css")) == 2
        assert all(b"if-none-match" not in s for s in seen(origin, b"/n.css"))
        if extra[0] == b"Set-Cookie":
            assert r.header(b"set-cookie") == b"sid=42; Path=/"


def test_head_on_a_miss_is_fetched_as_get_and_cached(tmp_path, origin):
    origin.routes[b"/h.css"] = origin_with(ETAG_CSS)
    with proxy(tmp_path, origin) as m:
        r = get(m.port, b"/h.css", GZ, method=b"HEAD")
        assert seen(origin, b"/h.css")[0][b":method"] == b"GET"
        assert r.status == 200 and r.body == b"" and r.header(b"cf-cache-status") == b"MISS"
        assert r.header(b"content-encoding") == b"gzip" and r.header(b"etag") == b'W/"v1"'
        full = get(m.port, b"/h.css", GZ)
        assert full.header(b"cf-cache-status") == b"HIT"
        assert codings.decode(full.body, "gzip") == CSS
        head = get(m.port, b"/h.css", GZ, method=b"HEAD")  # a HIT for HEAD: still no body
        assert head.body == b"" and head.header(b"cf-cache-status") == b"HIT"
        assert len(seen(origin, b"/h.css")) == 1


def test_concurrent_misses_send_one_origin_request(tmp_path, origin):
    origin.routes[b"/slow.css"] = origin_with(ETAG_CSS, delay=0.5)
    with proxy(tmp_path, origin) as m:
        async def both():
            return await asyncio.gather(*(_get(m.port, b"/slow.css", GZ) for _ in range(3)))

        replies = run(both())
        assert sorted(r.header(b"cf-cache-status") for r in replies) == [b"HIT", b"HIT", b"MISS"]
        assert all(codings.decode(r.body, "gzip") == CSS for r in replies)
        assert len(seen(origin, b"/slow.css")) == 1
        rec = m.wait_records(lambda r: r["cache_status"] == "HIT")
        assert "waited for a concurrent request" in rec["cache_reason"]


def test_cache_can_be_switched_off(tmp_path, origin):
    origin.routes[b"/s.css"] = origin_with(ETAG_CSS)
    with proxy(tmp_path, origin, RULES, "--set", "cf_cache=false") as m:
        for _ in range(2):
            assert get(m.port, b"/s.css", GZ).header(b"cf-cache-status") == b"DYNAMIC"
        assert len(seen(origin, b"/s.css")) == 2


def test_bad_cache_size_is_refused(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    out = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={tmp_path / 'rules.yaml'}",
                          "--set", "cf_cache_size=lots"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    assert "cf_cache_size: 'lots' is not a size such as 512k" in out.stdout + out.stderr


def test_replaying_a_recording_runs_through_the_cache(tmp_path, origin):
    """A browser session recorded without the edge: a fetch, then a revalidation the origin
    answered with 304. Replayed through the edge, the second request is a HIT answered by
    the edge itself, as it would be behind Cloudflare."""
    origin.routes[b"/r.css"] = origin_with(ETAG_CSS)
    flows = tmp_path / "session.mitm"
    with Mitmdump(tmp_path / "record", None, "-w", str(flows), reverse_to=origin.port) as m:
        first = get(m.port, b"/r.css", GZ)
        assert first.status == 200 and first.header(b"etag") == b'"v1"'
        assert get(m.port, b"/r.css", [*GZ, (b"If-None-Match", b'"v1"')]).status == 304
    assert len(seen(origin, b"/r.css")) == 2
    (tmp_path / "rules.yaml").write_text(RULES)
    log = tmp_path / "replay.jsonl"
    out = subprocess.run([MITMDUMP, "-n", "-r", str(flows), "--set", f"confdir={tmp_path}",
                          "-s", EDGE, "--set", f"cf_rules={tmp_path / 'rules.yaml'}",
                          "--set", f"cf_log={log}", "--set", "flow_detail=0"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["cache_status"], r["status_out"], r["not_modified"]) for r in recs] == [
        ("MISS", 200, None), ("HIT", 304, "edge")]


def test_purge_and_stats_commands(tmp_path):
    """The commands as mitmproxy registers them (mitmweb's command bar, mitmproxy's `:`)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    chain = addons()
    edge = next(a for a in chain if isinstance(a, EdgeCache))
    with taddons.context(*chain) as tctx:
        tctx.options.update(cf_rules=str(tmp_path / "rules.yaml"), cf_cache_size="1m")
        assert edge.store is not None and edge.store.capacity == 1 << 20
        for n, url in enumerate(("http://e.test/a.css", "http://e.test/img/1.png",
                                 "http://e.test/img/2.png", "http://e.test/b.js",
                                 "http://e.test/c.js")):
            tags = ((b"Cache-Tag", b"Blog, js"),) if n >= 3 else ()
            edge.store.put(CachedObject(str(n), url, 200, tags, b"x" * 100, 0.0, 60))
        call = tctx.master.commands.call
        assert json.loads(call("cf.cache.stats"))["objects"] == 5
        assert call("cf.cache.purge_url", "http://e.test/a.css") == 1
        assert call("cf.cache.purge_prefix", "http://e.test/img/") == 2
        assert call("cf.cache.purge_tag", "blog") == 2  # tags are case-insensitive
        assert call("cf.cache.purge_tag", "blog") == 0
        edge.store.put(CachedObject("9", "http://e.test/d.js", 200, (), b"x", 0.0, 60))
        assert call("cf.cache.purge") == 1
        stats = json.loads(call("cf.cache.stats"))
        assert stats["objects"] == 0 and stats["purged"] == 6
        tctx.options.update(cf_cache=False)
        assert edge.store is None and json.loads(call("cf.cache.stats")) == {"enabled": False}


def test_ranges_on_a_miss_and_from_cache(tmp_path, origin):
    origin.routes[b"/r.png"] = origin_with([(b"Content-Type", b"image/png"), (b"ETag", b'"i1"')],
                                           bytes(range(256)) * 8)
    identity = [(b"Accept-Encoding", b"identity")]
    with proxy(tmp_path, origin) as m:
        r = get(m.port, b"/r.png", [*identity, (b"Range", b"bytes=10-19")])
        assert b"range" not in seen(origin, b"/r.png")[0]  # the cold miss fetches it whole
        assert r.status == 206 and r.body == bytes(range(10, 20))
        assert r.header(b"content-range") == b"bytes 10-19/2048"
        assert r.header(b"cf-cache-status") == b"MISS"
        r = get(m.port, b"/r.png", [*identity, (b"Range", b"bytes=-5")])
        assert r.status == 206 and r.body == bytes(range(251, 256))
        assert r.header(b"cf-cache-status") == b"HIT"
        r = get(m.port, b"/r.png", [*identity, (b"Range", b"bytes=4096-")])
        assert r.status == 416 and r.header(b"content-range") == b"bytes */2048"
        assert len(seen(origin, b"/r.png")) == 1
        rec = m.wait_records(lambda r: r["status_out"] == 416)
        assert any("starts at or after the end" in n for n in rec["notes"])


def test_stale_when_the_origin_fails_or_is_gone(tmp_path):
    state = {"status": 200}

    def handle(target: bytes, head: bytes) -> Route:
        if state["status"] != 200:
            return Route(response(state["status"], [(b"Content-Type", b"text/plain")], b"down"))
        return Route(response(200, [(b"Content-Type", b"text/css"),
                                    (b"Cache-Control", b"max-age=1")], CSS))

    origin = Origin({b"/s.css": handle})
    try:
        # in reverse mode mitmproxy connects to the origin when the visitor connects, before
        # any hook, unless told to connect per request
        with proxy(tmp_path, origin, RULES, "--set", "connection_strategy=lazy") as m:
            assert get(m.port, b"/s.css", GZ).header(b"cf-cache-status") == b"MISS"
            time.sleep(1.2)
            state["status"] = 503
            r = get(m.port, b"/s.css", GZ)
            assert r.status == 200 and r.header(b"cf-cache-status") == b"STALE"
            assert codings.decode(r.body, "gzip") == CSS and r.header(b"age") is not None
            origin.stop()  # now the connection itself fails (stop() waits until it is shut)
            r = get(m.port, b"/s.css", GZ)
            assert r.status == 200 and r.header(b"cf-cache-status") == b"STALE"
            rec = m.wait_records(lambda r: "cannot be reached" in (r["cache_reason"] or ""))
            assert rec["cache_status"] == "STALE"
    finally:
        origin.stop()




def test_a_set_cache_control_rule_changes_what_the_cache_stores(tmp_path, origin):
    origin.routes[b"/short.css"] = origin_with([*ETAG_CSS, (b"Cache-Control", b"max-age=1"),
                                                (b"Cache-Tag", b"styles")])
    origin.routes[b"/other.css"] = origin_with([*ETAG_CSS, (b"Cache-Control", b"max-age=1")])
    rules = RULES + """cache_response_rules:
  - action: set_cache_control
    expression: http.request.uri.path eq "/short.css"
    action_parameters:
      max-age: {operation: set, value: 3600}
  - action: set_cache_tags
    expression: "true"
    action_parameters: {operation: add, values: [site]}
"""
    with proxy(tmp_path, origin, rules) as m:
        first = get(m.port, b"/short.css", GZ)
        assert first.header(b"cache-control") == b"max-age=3600"
        assert first.header(b"cache-tag") is None  # the edge keeps tags to itself
        get(m.port, b"/other.css", GZ)
        time.sleep(1.5)  # past the origin's max-age=1
        assert get(m.port, b"/short.css", GZ).header(b"cf-cache-status") == b"HIT"
        assert get(m.port, b"/other.css", GZ).header(b"cf-cache-status") in (b"EXPIRED",
                                                                            b"REVALIDATED")
        assert len(seen(origin, b"/short.css")) == 1
        record = m.wait_records(lambda r: r["url"].endswith("/short.css"))
        assert any("set_cache_control" in r or "cache_response_rules[1]" in r
                   for r in record["rules"])
