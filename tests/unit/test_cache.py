"""The edge cache's pure core: eligibility, key, freshness, store, conditionals and the
MISS / HIT / EXPIRED / REVALIDATED / UPDATING / STALE sequences, on a clock the tests set."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import pytest

from addon import cache
from addon.cache.freshness import freshness
from addon.cache.key import cache_key
from addon.cache.settings import cache_settings
from addon.cache.store import CachedObject
from addon.config.loader import RulesFileError
from addon.config.loader import parse_rules
from addon.config.parameters import CacheKey
from addon.config.parameters import cache_parameters
from addon.exchange import EdgeContext
from addon.exchange import run
from addon.exchange.request import origin_headers
from addon.exchange.request import request_phases
from addon.http import codings
from addon.http import ranges as cache_ranges
from addon.http.conditional import if_none_match
from addon.http.conditional import not_modified
from addon.http.conditional import parse_http_date
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support.edge_helpers import zone

CSS = b"body { color: #333; margin: 0 auto; padding: 1em; }\n" * 40
T0 = 1_800_000_000.0


# ---- eligibility (facts 6.1, 6.2, 5.1.1, 1.7.2) ---------------------------------------------


@pytest.mark.parametrize(("method", "path", "params", "eligible", "why"), [
    ("GET", "/s.css", {}, True, ".css is cached by default"),
    ("HEAD", "/i.png", {}, True, ".png"),
    ("GET", "/robots.txt", {}, True, "robots.txt"),
    ("GET", "/", {}, False, "without an extension"),
    ("GET", "/page.html", {}, False, ".html is not cached by default"),
    ("GET", "/api.json", {}, False, ".json"),
    ("POST", "/s.css", {}, False, "POST requests are not cached"),
    ("GET", "/page.html", {"cache": True}, True, "cache: true"),
    ("GET", "/s.css", {"cache": False}, False, "cache: false"),
])
def test_eligibility(method, path, params, eligible, why):
    s = cache_settings(method, path, cache_parameters(params), "pro")
    assert s.eligible is eligible and why in s.reason


# ---- the key (facts 6.18, 5.1.4, 1.5.7) -----------------------------------------------------


def _key(target="/a.css?b=2&a=1", headers=(), params=None, scheme="https", host="Example.com"):
    typed = cache_parameters({"cache_key": params}).cache_key if params else CacheKey()
    assert typed is not None
    return cache_key(scheme, host, target, tuple(headers), typed)


def test_default_key_is_url_and_listed_headers_not_accept_encoding():
    base = _key()
    assert base == "https://example.com/a.css?b=2&a=1"
    assert _key(headers=[(b"Accept-Encoding", b"br")]) == base  # facts 1.5.1
    assert _key(headers=[(b"Origin", b"https://x.test")]) != base
    assert _key(headers=[(b"X-Forwarded-Scheme", b"https")]) == base
    assert _key(headers=[(b"X-Forwarded-Scheme", b"ws")]) != base
    assert _key(scheme="http") != base


def test_custom_key_query_string_forms():
    ex_all = {"custom_key": {"query_string": {"exclude": {"all": True}}}}
    assert _key(params=ex_all) == "https://example.com/a.css"
    assert _key(params={"custom_key": {"query_string": {"exclude": ["*"]}}}) == _key(params=ex_all)
    inc = {"custom_key": {"query_string": {"include": {"list": ["a"]}}}}
    assert _key(params=inc) == "https://example.com/a.css?a=1"
    exc = {"custom_key": {"query_string": {"exclude": ["a"]}}}
    assert _key(params=exc) == "https://example.com/a.css?b=2"
    assert _key(params={"ignore_query_strings_order": True}) == "https://example.com/a.css?a=1&b=2"


def test_custom_key_accept_encoding_contains_keeps_encodings_apart():
    params = {"custom_key": {"header": {"contains": {"accept-encoding": ["br", "zstd"]}}}}
    br = _key(headers=[(b"Accept-Encoding", b"gzip, deflate, br, zstd")], params=params)
    gz = _key(headers=[(b"Accept-Encoding", b"gzip")], params=params)
    br_only = _key(headers=[(b"Accept-Encoding", b"br;q=1")], params=params)
    assert br != gz != br_only != br
    assert br.endswith("header accept-encoding contains [br,zstd]")
    assert gz.endswith("header accept-encoding contains []")


def test_custom_key_headers_cookies_presence():
    params = {"custom_key": {"header": {"include": ["X-Ver"], "check_presence": ["x-beta"]},
                             "cookie": {"include": ["lang"], "check_presence": ["sid"]}}}
    a = _key(headers=[(b"X-Ver", b"2"), (b"Cookie", b"lang=fr; sid=1")], params=params)
    assert "header x-ver=2" in a and "header x-beta absent" in a
    assert "cookie lang=fr" in a and "cookie sid present" in a
    assert a != _key(headers=[(b"X-Ver", b"2"), (b"Cookie", b"lang=de; sid=1")], params=params)


# ---- freshness (facts 6.3 to 6.9, 6.15, 5.1.2) ---------------------------------------------


def _fresh(cc=None, status=200, extra=(), params=None, request=(), plan="pro", size=10):
    s = cache_settings("GET", "/a.css", cache_parameters(params or {}), plan)
    headers = list(extra)
    if cc is not None:
        headers.append((b"Cache-Control", cc.encode()))
    return freshness(s, plan, tuple(request), status, tuple(headers), size, T0)


@pytest.mark.parametrize(("cc", "store", "ttl", "swr", "stale", "words"), [
    (None, True, 7200, 0, True, "default edge TTL for 200"),
    ("max-age=60", True, 60, 0, True, "max-age=60"),
    ("max-age=60, s-maxage=600", True, 600, 0, False, "s-maxage=600"),
    ("no-store", False, 0, 0, True, "no-store"),
    ("private", False, 0, 0, True, "private"),
    ("no-cache", True, 0, 0, False, "revalidated on every request"),
    ("max-age=0", True, 0, 0, True, "max-age=0"),
    ("max-age=60, must-revalidate", True, 60, 0, False, "max-age=60"),
    ("max-age=60, stale-while-revalidate=30", True, 60, 30, True, "max-age=60"),
    ("max-age=2.5", True, 7200, 0, True, "default edge TTL"),  # non-integer ignored (6.8)
    ("public, max-age=60", True, 60, 0, True, ""),
])
def test_origin_cache_control(cc, store, ttl, swr, stale, words):
    f = _fresh(cc)
    assert f.store is store, f
    if store:
        assert (f.ttl, f.stale_while_revalidate, f.stale_on_error) == (ttl, swr, stale)
    else:
        assert f.status == "BYPASS"
    assert words in f.reason


def test_cdn_cache_control_precedence_and_surrogate():
    f = _fresh("max-age=10", extra=[(b"CDN-Cache-Control", b"max-age=100"),
                                    (b"Cloudflare-CDN-Cache-Control", b"max-age=1000")])
    assert f.ttl == 1000 and f.directives_from == "Cloudflare-CDN-Cache-Control"
    assert _fresh("max-age=10", extra=[(b"CDN-Cache-Control", b"no-store")]).status == "BYPASS"
    assert _fresh("no-store", extra=[(b"Surrogate-Control", b"max-age=5")]).store


def test_default_ttls_by_status_and_uncacheable_statuses():
    assert _fresh(status=404).ttl == 180 and _fresh(status=302).ttl == 1200
    assert _fresh(status=301).ttl == 7200
    assert _fresh(status=500).status == "BYPASS"
    assert _fresh("max-age=30", status=500).ttl == 30


def test_vary_star_expires_size_authorization():
    assert "Vary: *" in _fresh(extra=[(b"Vary", b"Accept-Encoding, *")]).reason
    date = b"Sun, 06 Nov 1994 08:49:37 GMT"
    expires = b"Sun, 06 Nov 1994 08:59:37 GMT"
    assert _fresh(extra=[(b"Date", date), (b"Expires", expires)]).ttl == 600
    assert _fresh(size=600 << 20).status == "BYPASS"
    assert _fresh(size=600 << 20, plan="enterprise").store
    auth = [(b"Authorization", b"Bearer x")]
    assert _fresh("max-age=60", request=auth).status == "BYPASS"
    assert _fresh("public, max-age=60", request=auth).store
    assert _fresh("s-maxage=60", request=auth).store


def test_edge_ttl_modes_and_status_code_ttls():
    override = {"cache": True, "edge_ttl": {"mode": "override_origin", "default": 42}}
    assert _fresh("no-store", params=override).ttl == 42
    bypass = {"edge_ttl": {"mode": "bypass_by_default"}}
    assert _fresh(None, params=bypass).status == "BYPASS"
    assert _fresh("max-age=5", params=bypass).ttl == 5
    codes = {"edge_ttl": {"status_code_ttl": [
        {"status_code": 404, "value": -1},
        {"status_code_range": {"from": 200, "to": 299}, "value": 0}]}}
    assert _fresh("max-age=99", params=codes).ttl == 0
    assert _fresh(status=404, params=codes).status == "BYPASS"


def test_set_cookie_cases():
    cookie = [(b"Set-Cookie", b"sid=1")]
    # default cache level, Origin Cache Control on: BYPASS, Set-Cookie kept
    assert _fresh(extra=cookie).status == "BYPASS"
    # Cache Everything: not stored, MISS every time
    f = _fresh(extra=cookie, params={"cache": True})
    assert (f.store, f.status) == (False, "MISS")
    # eligible with an explicit Edge TTL: stripped and stored
    f = _fresh(extra=cookie, params={"cache": True, "edge_ttl": {"mode": "override_origin",
                                                                  "default": 60}})
    assert f.store and f.strip == (b"set-cookie",)
    # private="Set-Cookie": that header is dropped, the rest cached
    f = _fresh('private="Set-Cookie", max-age=60', extra=cookie)
    assert f.store and b"set-cookie" in f.strip


def test_origin_cache_control_off_on_enterprise():
    f = _fresh("no-cache", plan="enterprise")
    assert f.status == "BYPASS"
    f = _fresh("max-age=60, must-revalidate", plan="enterprise")
    assert f.stale_on_error  # must-revalidate ignored with OCC off (6.5)
    on = _fresh("no-cache", plan="enterprise", params={"origin_cache_control": True})
    assert on.store and on.ttl == 0


# ---- conditionals (RFC 9110 13.1, facts 2.4) ----------------------------------------------


@pytest.mark.parametrize(("value", "ok"), [
    (b"Sun, 06 Nov 1994 08:49:37 GMT", True),
    (b"Sunday, 06-Nov-94 08:49:37 GMT", True),
    (b"Sun Nov  6 08:49:37 1994", True),
    (b"1415000000", False),  # a Unix timestamp (facts 2.4.7)
    (b"2014-11-03T08:49:37Z", False),
    (b"Sun, 06 Nov 1994 08:49:37 +0000", False),
    (b"Sun, 31 Foo 1994 08:49:37 GMT", False),
])
def test_http_dates(value, ok):
    assert (parse_http_date(value) is not None) is ok
    if ok:
        assert parse_http_date(value) == 784111777.0


@pytest.mark.parametrize(("condition", "etag", "match"), [
    (b'W/"v1"', b'"v1"', True),  # weak comparison: the browser's weakened tag matches
    (b'"v1"', b'W/"v1"', True),
    (b'"v2", W/"v1"', b'"v1"', True),
    (b'"v2"', b'"v1"', False),
    (b"*", b'"v1"', True),
    (b"*", None, False),
    (b'"v1"', None, False),
    (b"v1", b"v1", False),  # not entity tags
])
def test_if_none_match_weak_comparison(condition, etag, match):
    assert if_none_match(condition, etag) is match


def test_if_modified_since_only_without_if_none_match():
    lm = b"Sun, 06 Nov 1994 08:49:37 GMT"
    later = ((b"If-Modified-Since", b"Mon, 07 Nov 1994 08:49:37 GMT"),)
    assert not_modified(later, None, lm) == "If-Modified-Since"
    earlier = ((b"If-Modified-Since", b"Sat, 05 Nov 1994 08:49:37 GMT"),)
    assert not_modified(earlier, None, lm) is None
    both = ((b"If-None-Match", b'"x"'), *later)
    assert not_modified(both, b'"v1"', lm) is None  # If-None-Match decides


# ---- the store ------------------------------------------------------------------------------


def _obj(key, size, url=None):
    return CachedObject(key, url or f"http://e.test/{key}", 200, (), b"x" * size, T0, 60)


def test_store_is_bounded_and_evicts_least_recently_used():
    store = cache.Store(3000)
    for k in "abc":
        assert store.put(_obj(k, 700))
    store.get("a")  # a is now the most recently used
    store.put(_obj("d", 700))
    assert set(store.objects) == {"a", "c", "d"} and store.bytes <= 3000
    assert store.stats()["evicted"] == 1
    assert not store.put(_obj("huge", 5000)) and store.stats()["too_large"] == 1
    store.resize(1000)
    assert list(store.objects) == ["d"]


def test_purge_everything_one_url_or_a_prefix():
    store = cache.Store(1 << 20)
    for k, url in (("1", "http://e.test/a.css"), ("2", "http://e.test/a.css"),
                   ("3", "http://e.test/img/x.png"), ("4", "http://e.test/img/y.png")):
        store.put(_obj(k, 10, url))
    assert store.purge(url="http://e.test/a.css") == 2
    assert store.purge(prefix="http://e.test/img/") == 2
    store.put(_obj("5", 10))
    assert store.purge() == 1 and store.stats()["objects"] == 0


# ---- sequences through the pure pipeline -----------------------------------------------------


@dataclass
class Origin:
    """What the origin answers, and what it was asked."""

    status: int = 200
    headers: list = field(default_factory=lambda: [(b"Content-Type", b"text/css"),
                                                   (b"ETag", b'"v1"')])
    body: bytes = CSS
    coding: str = "identity"
    seen: list = field(default_factory=list)

    def answer(self, request: Request) -> Response:
        self.seen.append((request.method, dict((k.lower(), v) for k, v in request.headers)))
        inm = header(request.headers, b"if-none-match")
        etag = header(tuple(self.headers), b"etag")
        if inm is not None and etag is not None and if_none_match(inm, etag):
            kept = tuple(h for h in self.headers if h[0].lower() != b"content-type")
            return Response(304, kept, b"")
        body = codings.encode(self.body, self.coding) if self.coding != "identity" else self.body
        headers = list(self.headers)
        if self.coding != "identity":
            headers.append((b"Content-Encoding", self.coding.encode()))
        return Response(self.status, tuple(headers), body)


class Edge:
    """The edge with its cache and a clock the test sets (exchange.run)."""

    def __init__(self, rules: str = "", origin: Origin | None = None) -> None:
        self.zone = zone(rules)
        self.store = cache.Store(64 << 20)
        self.origin = origin or Origin()
        self.now = T0

    def get(self, path="/a.css", accept="gzip, br", method="GET", headers=()):
        hs = ((b"Host", b"example.com"), (b"Accept-Encoding", accept.encode()), *headers)
        request = Request(method=method, target=path, headers=hs)
        self.last = run(EdgeContext(self.zone, self.store), request,
                        lambda sent: self.origin.answer(sent), self.now)
        return self.last.exchange


def _edge_headers(ex) -> dict[bytes, bytes | None]:
    return dict(ex.headers.edits)


def test_miss_then_hit_then_edge_304_with_the_weakened_tag():
    edge = Edge()
    first = edge.get(headers=[(b"If-None-Match", b'W/"v1"')])
    assert first.served.status == "MISS"
    # a cacheable miss: the visitor's validators never reach the origin (facts 2.4.1)
    assert "if-none-match" not in edge.origin.seen[0][1]
    assert first.decision.etag_out == b'W/"v1"'  # br re-encode weakened it
    assert first.headers.not_modified == "edge"  # the edge holds the object: it answers itself
    edge.now += 10
    second = edge.get()
    assert second.served.status == "HIT" and _edge_headers(second)[b"age"] == b"10"
    assert len(edge.origin.seen) == 1
    third = edge.get(headers=[(b"If-None-Match", b'W/"v1"')])
    assert third.headers.not_modified == "edge" and third.served.status == "HIT"
    assert edge.get(headers=[(b"If-None-Match", b'"other"')]).headers.not_modified is None


def test_first_encoding_is_cached_and_shared_then_kept_apart_by_a_key_rule():
    # the origin compresses per its Accept-Encoding; the edge always asks br, gzip (1.3)
    edge = Edge(origin=Origin(coding="br"))
    a = edge.get(accept="gzip, br")
    b = edge.get(accept="gzip")
    assert (a.served.status, b.served.status) == ("MISS", "HIT")
    assert a.decision.etag_out == b'"v1"'  # br kept for a br visitor: strong survives
    assert b.decision.etag_out == b'W/"v1"' and b.decision.encoding_out == "gzip"
    rules = """cache_rules:
  - expression: 'true'
    action_parameters:
      respect_strong_etags: true
      cache_key: {custom_key: {header: {contains: {accept-encoding: [br]}}}}
"""
    # with Respect Strong ETags the visitor's Accept-Encoding goes to the origin, and the
    # key rule gives each encoding its own object, which keeps its strong ETag
    origin = Origin()
    edge = Edge(rules, origin)

    def answer(request):
        ae = header(request.headers, b"accept-encoding") or b""
        origin.coding = "br" if b"br" in ae else "gzip"
        return Origin.answer(origin, request)

    origin.answer = answer
    a, b = edge.get(accept="gzip, br"), edge.get(accept="gzip")
    assert (a.served.status, b.served.status) == ("MISS", "MISS")
    assert a.served.key != b.served.key
    assert (a.decision.etag_out, b.decision.etag_out) == (b'"v1"', b'"v1"')
    assert (a.decision.encoding_out, b.decision.encoding_out) == ("br", "gzip")
    assert edge.get(accept="gzip").served.status == "HIT"


def test_dynamic_requests_pass_validators_and_relay_the_origins_304():
    edge = Edge()
    ex = edge.get("/page.html", headers=[(b"If-None-Match", b'"v1"')])
    assert edge.origin.seen[0][1][b"if-none-match"] == b'"v1"'
    assert ex.served.status == "DYNAMIC" and ex.headers.not_modified == "origin"
    assert _edge_headers(ex)[b"cf-cache-status"] == b"DYNAMIC"


def test_expiry_revalidated_with_stored_validators_and_replaced_on_200():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'"v1"'),
                             (b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT"),
                             (b"Cache-Control", b"max-age=60")])
    edge = Edge(origin=origin)
    edge.get()
    edge.now += 61
    ex = edge.get()
    assert ex.served.status == "REVALIDATED" and ex.served.age is None
    sent = origin.seen[-1][1]
    assert sent[b"if-none-match"] == b'"v1"'
    assert sent[b"if-modified-since"] == b"Sun, 06 Nov 1994 08:49:37 GMT"
    edge.now += 30
    assert edge.get().served.status == "HIT"  # the 304 made it fresh again
    edge.now += 61
    origin.headers[1] = (b"ETag", b'"v2"')
    ex = edge.get()
    assert ex.served.status == "EXPIRED" and ex.decision.etag_out == b'W/"v2"'
    assert edge.get().served.status == "HIT"


def test_a_304_that_forbids_storing_removes_the_object_instead_of_keeping_it():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'"v1"'),
                             (b"Cache-Control", b"max-age=60")])
    edge = Edge(origin=origin)
    edge.get()
    edge.now += 61
    origin.headers[2] = (b"Cache-Control", b"no-store")  # the 304 updates the headers
    ex = edge.get()
    assert ex.served.status == "REVALIDATED" and ex.decision.encoding_out == "br"
    assert "removed from the cache" in ex.served.reason
    assert edge.store.stats()["objects"] == 0
    seen = len(origin.seen)
    assert edge.get().served.status == "BYPASS" and len(origin.seen) == seen + 1


def test_serving_a_hit_leaves_the_stored_object_alone_and_counts_the_hit():
    edge = Edge()
    edge.get()
    (obj,) = edge.store.objects.values()
    before = dict(vars(obj))
    edge.now += 1
    assert edge.get().served.status == "HIT" and edge.get().served.status == "HIT"
    assert vars(obj) == before
    assert edge.store.stats()["hits"] == 2


def test_invalid_validators_are_not_used_to_revalidate():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"ETag", b"v1-unquoted"),
                             (b"Last-Modified", b"1415000000"), (b"Cache-Control", b"max-age=1")])
    edge = Edge(origin=origin)
    edge.get()
    edge.now += 5
    edge.get()
    sent = origin.seen[-1][1]
    assert b"if-none-match" not in sent and b"if-modified-since" not in sent  # facts 2.4.7


def test_smart_edge_revalidation_without_origin_validators():
    origin = Origin(headers=[(b"Content-Type", b"text/css")])
    edge = Edge(origin=origin)
    first = edge.get()
    lm = _edge_headers(first)[b"last-modified"]
    assert parse_http_date(lm) == T0
    edge.now += 100
    ex = edge.get(headers=[(b"If-Modified-Since", lm)])
    assert ex.headers.not_modified == "edge" and len(origin.seen) == 1


def test_cache_response_rules_strip_etags_and_disable_smart_revalidation():
    rules = """cache_response_rules:
  - expression: http.response.code eq 200
    action_parameters: {strip_etags: true}
"""
    edge = Edge(rules)
    ex = edge.get()
    assert ex.decision.etag_out is None and (b"etag", None) in ex.headers.edits
    assert b"last-modified" not in _edge_headers(ex)  # 2.2.11: no Smart Edge Revalidation
    assert edge.get().decision.etag_out is None


def test_stale_while_revalidate_serves_updating_then_hit():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'"v1"'),
                             (b"Cache-Control", b"max-age=10, stale-while-revalidate=60")])
    edge = Edge(origin=origin)
    edge.get()
    edge.now += 20
    ex = edge.get()
    assert ex.served.status == "UPDATING" and ex.served.age == 20
    assert origin.seen[-1][1][b"if-none-match"] == b'"v1"'  # the background revalidation
    assert edge.get().served.status == "HIT"
    edge.now += 100  # past max-age + stale-while-revalidate
    assert edge.get().served.status == "REVALIDATED"


def test_stale_on_origin_failure_unless_must_revalidate():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"Cache-Control", b"max-age=5")])
    edge = Edge(origin=origin)
    edge.get()
    edge.now += 10
    origin.status, origin.body = 503, b"down"
    ex = edge.get()
    assert ex.served.status == "STALE" and ex.served.response.body == CSS
    origin.headers = [(b"Content-Type", b"text/css"),
                      (b"Cache-Control", b"max-age=5, must-revalidate")]
    origin.status, origin.body = 200, CSS
    edge.store.purge()
    edge.get()
    edge.now += 10
    origin.status, origin.body = 503, b"down"
    assert edge.get().served.status == "EXPIRED"


@pytest.mark.parametrize(("cc", "cookie", "status", "stored"), [
    ("private", False, "BYPASS", False),
    ("no-store", False, "BYPASS", False),
    (None, True, "BYPASS", False),
    ("max-age=60", False, "MISS", True),
])
def test_uncacheable_responses_go_to_the_origin_every_time(cc, cookie, status, stored):
    headers = [(b"Content-Type", b"text/css"), (b"ETag", b'"v1"')]
    if cc:
        headers.append((b"Cache-Control", cc.encode()))
    if cookie:
        headers.append((b"Set-Cookie", b"sid=1"))
    origin = Origin(headers=headers)
    edge = Edge(origin=origin)
    first = edge.get(headers=[(b"If-None-Match", b'W/"v1"')])
    assert first.served.status == status
    # BYPASS: nothing to answer from
    assert first.headers.not_modified == ("edge" if stored else None)
    second = edge.get()
    assert second.served.status == ("HIT" if stored else status)
    assert len(origin.seen) == (1 if stored else 2)


def test_head_on_a_miss_fetches_get_and_gets_the_get_headers():
    edge = Edge()
    ex = edge.get(method="HEAD")
    assert edge.origin.seen[0][0] == "GET" and ex.headers.head
    assert ex.decision.encoding_out == "br"  # the GET's headers (facts 1.7.4)
    assert edge.get().served.status == "HIT"


def test_cache_off_setting_and_bypass_rule_are_dynamic():
    edge = Edge("""cache_rules:
  - expression: 'true'
    action_parameters: {cache: false}
""")
    ex = edge.get()
    assert ex.served.status == "DYNAMIC" and "cache: false" in ex.served.reason
    assert edge.get().served.status == "DYNAMIC"


def test_browser_ttl_override_only_raises():
    rules = """cache_rules:
  - expression: 'true'
    action_parameters: {browser_ttl: {mode: override_origin, default: 3600}}
"""
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"Cache-Control",
                                                              b"public, max-age=60")])
    assert _edge_headers(Edge(rules, origin).get())[b"cache-control"] == b"public, max-age=3600"
    origin.headers[1] = (b"Cache-Control", b"max-age=86400")
    assert b"cache-control" not in _edge_headers(Edge(rules, origin).get())


def test_edge_headers_and_what_is_not_forwarded():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"Server", b"nginx"),
                             (b"Cache-Tag", b"a,b"), (b"X-Accel-Buffering", b"no")])
    h = _edge_headers(Edge(origin=origin).get())
    assert h[b"server"] == b"cloudflare" and h[b"cf-cache-status"] == b"MISS"
    assert h[b"cache-tag"] is None and h[b"x-accel-buffering"] is None
    assert h[b"cf-ray"].decode().endswith("-LCL") and len(h[b"cf-ray"]) == 20


def test_origin_request_headers():
    z = zone()
    state = request_phases(z, Request(headers=((b"X-Forwarded-For", b"10.0.0.1"),),
                                                client_ip="192.0.2.7", scheme="https"))
    h = dict(origin_headers(state))
    assert h[b"x-forwarded-for"] == b"10.0.0.1, 192.0.2.7"
    assert h[b"cf-connecting-ip"] == b"192.0.2.7" and h[b"cdn-loop"] == b"cloudflare"
    assert h[b"cf-visitor"] == b'{"scheme":"https"}' and h[b"x-forwarded-proto"] == b"https"
    assert h[b"cf-ray"] == state.ray.encode()


@pytest.mark.parametrize(("text", "where"), [
    ("edge_ttl: {mode: override_origin}", "edge_ttl.default: missing"),
    ("edge_ttl: {mode: respect}", "edge_ttl.mode: must be one of"),
    ("edge_ttl: {status_code_ttl: [{value: 5}]}", "needs exactly one of"),
    ("cache_key: {custom_key: {header: {contains: {accept-encoding: [a, b, c, d]}}}}",
     "must list 1 to 3 values"),
    ("cache_key: {custom_key: {query_string: {include: {lst: [a]}}}}", "unknown key"),
    ("serve_stale: {disable_stale_while_updating: maybe}", "must be on/off"),
])
def test_cache_rule_settings_are_validated_with_their_position(text, where):
    with pytest.raises(RulesFileError) as e:
        parse_rules(f"plan: pro\ncache_rules:\n  - expression: 'true'\n"
                    f"    action_parameters: {{{text}}}\n")
    assert where in str(e.value) and "rules.yaml:4:" in str(e.value)


def test_cache_response_rules_are_checked():
    with pytest.raises(RulesFileError, match=r"cache_response_rules\[1\].action_parameters."
                       r"strip_etag: unknown key; did you mean `strip_etags`"):
        parse_rules("plan: pro\ncache_response_rules:\n  - expression: 'true'\n"
                    "    action_parameters: {strip_etag: true}\n")


# ---- ranges of a cached object (facts 1.8) --------------------------------------------------


@pytest.mark.parametrize(("value", "status", "ranges"), [
    (b"bytes=100-199", 206, ((100, 199),)),
    (b"bytes=100-", 206, ((100, 999),)),
    (b"bytes=-100", 206, ((900, 999),)),
    (b"bytes=900-5000", 206, ((900, 999),)),  # the end is clipped
    (b"bytes=-5000", 206, ((0, 999),)),  # an oversized suffix: the whole file as 206
    (b"bytes=0-9, 20-29", 206, ((0, 9), (20, 29))),
    (b"bytes=0-9, 5000-6000", 206, ((0, 9),)),  # one satisfiable range remains
    (b"bytes=", 416, ()),
    (b"bytes=-0", 416, ()),
    (b"bytes=200-100", 416, ()),
    (b"bytes=1000-", 416, ()),
    (b"bytes=0-9, 5-20", 200, ()),  # overlapping: ignored
    (b"bytes=20-29, 0-9", 200, ()),  # out of order: ignored
    (b"items=0-9", 200, ()),
    (b"bytes=a-b", 200, ()),
    (b"bytes=0-99999999999999999999", 200, ()),
    (b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(301)), 200, ()),
])
def test_range_rules(value, status, ranges):
    answer = cache_ranges.evaluate(value, None, 1000, b'"v1"', None)
    assert (answer.status, answer.ranges) == (status, ranges), answer.reason


def test_if_range_and_empty_files():
    assert cache_ranges.evaluate(b"bytes=0-9", b'"v1"', 100, b'"v1"', None).status == 206
    assert cache_ranges.evaluate(b"bytes=0-9", b'"v0"', 100, b'"v1"', None).status == 200
    lm = b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert cache_ranges.evaluate(b"bytes=0-9", lm, 100, None, lm).status == 206
    assert cache_ranges.evaluate(b"bytes=0-9", None, 0, None, None).status == 416


def test_ranges_served_from_cache_only_for_identity():
    edge = Edge()
    edge.get()  # fill
    ex = edge.get(accept="identity", headers=[(b"Range", b"bytes=10-19")])
    assert ex.headers.range_status == 206 and ex.headers.range_body == CSS[10:20]
    assert _edge_headers(ex)[b"content-range"] == b"bytes 10-19/%d" % len(CSS)
    multi = edge.get(accept="identity", headers=[(b"Range", b"bytes=0-1, 10-11")])
    assert multi.headers.range_status == 206 and b"multipart/byteranges" in _edge_headers(multi)[
        b"content-type"]
    assert CSS[10:12] in multi.headers.range_body
    encoded = edge.get(accept="gzip", headers=[(b"Range", b"bytes=10-19")])
    assert encoded.headers.range_status is None and "Range ignored" in encoded.headers.notes[-1]
    bad = edge.get(accept="identity", headers=[(b"Range", b"bytes=99999-")])
    assert bad.headers.range_status == 416 and _edge_headers(bad)[b"content-range"] == (
        b"bytes */%d" % len(CSS))
    # If-None-Match goes first (facts 1.8.7)
    both = edge.get(accept="identity", headers=[(b"Range", b"bytes=0-1"),
                                                (b"If-None-Match", b'"v1"')])
    assert both.headers.not_modified == "edge" and both.headers.range_status is None


def test_no_cache_with_field_names():
    # no-cache="x": cached unless x is in the response (facts 6.5)
    assert _fresh('no-cache="X-Secret", max-age=60').ttl == 60
    f = _fresh('no-cache="X-Secret", max-age=60', extra=[(b"X-Secret", b"1")])
    assert f.status == "BYPASS" and "X-Secret" in f.reason
    f = _fresh('no-cache="Set-Cookie", max-age=60', extra=[(b"Set-Cookie", b"a=1")])
    assert f.store and f.strip == (b"set-cookie",)  # facts 6.7
