"""Property tests for the edge cache: byte ranges, the cache key, the store and the
freshness of a sequence of requests, each against a small model written here from RFC 9110
section 14, RFC 9111 and Cloudflare's documented rules, not from the code under test."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from addon import cache
from addon.cache.key import cache_key
from addon.cache.store import CachedObject
from addon.cache.store import Store
from addon.config.parameters import CacheKey
from addon.config.parameters import cache_parameters
from addon.exchange import EdgeContext
from addon.exchange import run
from addon.http import ranges
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support.edge_helpers import zone

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ---- byte ranges (RFC 9110 14.1.2, 14.4; Cloudflare's range page) -----------------------------


def model_single(spec: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte positions of one range spec over `size` bytes; None when it
    cannot be satisfied."""
    first, _, last = spec.partition("-")
    if not first:
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start < size and start <= end else None


@PROPERTY
@given(size=st.integers(0, 5000), a=st.integers(0, 6000), b=st.integers(0, 6000),
       form=st.sampled_from(["a-b", "a-", "-b"]))
def test_one_range_is_what_rfc_9110_says(size, a, b, form):
    spec = form.replace("a", str(a)).replace("b", str(b))
    body = bytes(i % 251 for i in range(size))
    answer = ranges.evaluate(b"bytes=" + spec.encode(), None, size, None, None)
    want = model_single(spec, size)
    if form == "a-b" and b < a:  # inverted bounds: unsatisfiable (Cloudflare's 416)
        assert answer.status == 416
        return
    if want is None:
        assert answer.status == 416  # start at or after the end, -0, an empty file
        return
    assert answer.status == 206 and answer.ranges == (want,)
    part, headers = ranges.partial_body(answer, body, b"text/plain")
    assert part == body[want[0]:want[1] + 1]
    assert dict(headers)[b"content-range"] == b"bytes %d-%d/%d" % (*want, size)


@PROPERTY
@given(size=st.integers(1, 3000), cuts=st.lists(st.integers(0, 2999), min_size=2,
                                                 max_size=12, unique=True))
def test_ascending_ranges_are_a_multipart_206_of_exactly_those_bytes(size, cuts):
    cuts = sorted(c for c in cuts if c < size)
    pairs = [(cuts[i], cuts[i + 1] - 1) for i in range(0, len(cuts) - 1, 2)
             if cuts[i + 1] - 1 >= cuts[i]]
    if len(pairs) < 2:
        return
    body = bytes(i % 251 for i in range(size))
    spec = ",".join(f"{a}-{b}" for a, b in pairs)
    answer = ranges.evaluate(b"bytes=" + spec.encode(), None, size, None, None)
    assert answer.status == 206 and answer.ranges == tuple(pairs)
    data, headers = ranges.partial_body(answer, body, b"text/css")
    boundary = re.match(rb"multipart/byteranges; boundary=(\S+)",
                        dict(headers)[b"content-type"]).group(1)
    parts = data.split(b"--" + boundary)[1:-1]
    assert len(parts) == len(pairs)
    for (a, b), part in zip(pairs, parts, strict=True):
        head, _, rest = part.partition(b"\r\n\r\n")
        assert b"Content-Range: bytes %d-%d/%d" % (a, b, size) in head
        assert rest == body[a:b + 1] + b"\r\n"


@PROPERTY
@given(st.binary(max_size=60) | st.text(max_size=40).map(str.encode), st.integers(0, 500))
def test_any_range_header_gives_200_206_or_416_within_the_body(value, size):
    answer = ranges.evaluate(value, None, size, b'"e"', None)
    assert answer.status in (200, 206, 416)
    for first, last in answer.ranges:
        assert 0 <= first <= last < size


# ---- the cache key (Cloudflare's cache-keys page, custom keys) --------------------------------

NAMES = st.sampled_from(["a", "b", "utm_source", "id", "page", "x"])
PARAMS = st.lists(st.tuples(NAMES, st.text("abc123", max_size=3)), max_size=6)


def _key(host="example.com", query="", headers=(), rules=None) -> str:
    typed = cache_parameters({"cache_key": rules}).cache_key if rules else CacheKey()
    assert typed is not None
    return cache_key("https", host, "/p" + (f"?{query}" if query else ""), tuple(headers),
                     typed)


@PROPERTY
@given(PARAMS, st.sampled_from([None, "gzip", "br", "gzip, deflate, br, zstd"]))
def test_the_default_key_is_the_url_whatever_the_visitor_accepts(params, accept):
    query = urlencode(params)
    headers = [(b"Accept-Encoding", accept.encode())] if accept else []
    assert _key(query=query, headers=headers) == _key(query=query)
    assert _key("EXAMPLE.com", query) == _key("example.com", query)  # hosts have no case


@PROPERTY
@given(PARAMS, st.lists(NAMES, max_size=3))
def test_query_include_and_exclude_keep_exactly_those_parameters_in_order(params, names):
    query = urlencode(params)
    include = _key(query=query, rules={"custom_key": {"query_string": {"include": names}}})
    exclude = _key(query=query, rules={"custom_key": {"query_string": {"exclude": names}}})
    kept_in = [(k, v) for k, v in params if k in names]
    kept_out = [(k, v) for k, v in params if k not in names]
    assert include == _key(query=urlencode(kept_in))
    assert exclude == _key(query=urlencode(kept_out))
    for everything in ("*", ["*"], {"all": True}):
        rules = {"custom_key": {"query_string": {"exclude": everything}}}
        assert _key(query=query, rules=rules) == _key()


@PROPERTY
@given(PARAMS, st.randoms(use_true_random=False))
def test_ignoring_the_query_order_gives_one_key_for_every_order(params, rnd):
    shuffled = list(params)
    rnd.shuffle(shuffled)
    rules = {"ignore_query_strings_order": True}
    assert _key(query=urlencode(params), rules=rules) == \
        _key(query=urlencode(shuffled), rules=rules)


@PROPERTY
@given(st.sampled_from(["Origin", "X-Forwarded-Host", "X-Host", "Forwarded",
                        "X-HTTP-Method-Override"]), st.text("abc.:/", min_size=1, max_size=8))
def test_the_documented_request_headers_are_part_of_the_default_key(name, value):
    assert _key(headers=[(name.encode(), value.encode())]) != _key()


# ---- the store: bounded, least recently used out first ----------------------------------------


@PROPERTY
@given(st.integers(2000, 20000), st.lists(st.tuples(st.sampled_from("abcdefgh"),
                                                   st.integers(0, 4000),
                                                   st.booleans()), max_size=60))
def test_the_store_never_holds_more_than_its_capacity_and_evicts_the_oldest_use(
        capacity, operations):
    store = Store(capacity)
    model: list[tuple[str, int]] = []  # key, size; least recently used first
    for key, size, is_put in operations:
        if is_put:
            obj = CachedObject(key, f"u/{key}", 200, (), bytes(size), 0.0, 60)
            ok = store.put(obj)
            model = [(k, s) for k, s in model if k != key]
            if obj.size > capacity:
                assert not ok
            else:
                model.append((key, obj.size))
                while sum(s for _, s in model) > capacity:
                    model.pop(0)
        else:
            got = store.get(key)
            assert (got is not None) == any(k == key for k, _ in model)
            if got is not None:
                model = [(k, s) for k, s in model if k != key] + [
                    (key, next(s for k, s in model if k == key))]
        assert store.bytes == sum(s for _, s in model) <= capacity
        assert list(store.objects) == [k for k, _ in model]


# ---- freshness over a sequence of requests (RFC 9111 4.2; Cloudflare's statuses) ---------------


@PROPERTY
@given(st.integers(0, 120), st.lists(st.integers(0, 90), min_size=1, max_size=12))
def test_a_stored_object_is_a_hit_while_younger_than_max_age_then_revalidated(max_age, gaps):
    z = zone()
    store = cache.Store(1 << 20)
    asked = []

    def origin(request: Request) -> Response:
        asked.append(request)
        if header(request.headers, b"if-none-match") == b'"v"':
            return Response(304, ((b"ETag", b'"v"'),
                                       (b"Cache-Control", f"max-age={max_age}".encode())), b"")
        return Response(200, ((b"Content-Type", b"text/css"), (b"ETag", b'"v"'),
                                   (b"Cache-Control", f"max-age={max_age}".encode())),
                             b"a { b: c }" * 20)

    request = Request(target="/s.css", headers=((b"Accept-Encoding", b"gzip"),))
    now = 1_700_000_000.0
    first = run(EdgeContext(z, store), request, origin, now)
    assert first.exchange.served.status == "MISS"
    stored_at = now
    for gap in gaps:
        now += gap
        out = run(EdgeContext(z, store), request, origin, now)
        status = out.exchange.served.status
        if now - stored_at < max_age:  # fresh: the origin is not asked
            assert status == "HIT" and int(header(out.final.headers, b"age")) == int(
                now - stored_at)
        else:  # expired: revalidated with the stored ETag, fresh again from now
            assert status == "REVALIDATED"
            assert header(asked[-1].headers, b"if-none-match") == b'"v"'
            stored_at = now
        assert out.final.status == 200
    assert len(asked) == 1 + sum(1 for a in asked[1:] if header(a.headers, b"if-none-match"))
