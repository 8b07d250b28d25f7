"""The zone settings that touch the cache (facts 6.10, 6.16, 6.19, 6.20): Browser Cache TTL,
Caching Level, Development Mode, Sort Query String and Always Online, each through the
exchange with the cache, and beaten by a cache rule that says otherwise (facts 5.1.7)."""

from __future__ import annotations

from addon.cache.settings import cache_settings
from addon.config.loader import parse_rules
from addon.config.parameters import cache_parameters
from tests.unit.test_cache import Edge
from tests.unit.test_cache import Origin

RULE_KEY = """cache_rules:
  - expression: "true"
    action_parameters: {cache_key: {custom_key: {query_string: {include: {all: true}}}}}
"""


def _edge(settings: str, rules: str = "", origin: Origin | None = None) -> Edge:
    edge = Edge(origin=origin)
    edge.zone = parse_rules(f"plan: pro\nsettings: {{{settings}}}\n{rules}")
    return edge


def test_browser_cache_ttl_raises_a_lower_max_age_for_the_browser():
    origin = Origin(headers=[(b"Content-Type", b"text/css"), (b"Cache-Control", b"max-age=60")])
    ex = _edge("browser_cache_ttl: 14400", origin=origin).get()
    assert dict(ex.headers.edits)[b"cache-control"] == b"max-age=14400"
    longer = Origin(headers=[(b"Content-Type", b"text/css"), (b"Cache-Control",
                                                              b"max-age=86400")])
    assert b"cache-control" not in dict(_edge("browser_cache_ttl: 14400",
                                              origin=longer).get().headers.edits)
    # 0 is "Respect Existing Headers"
    assert b"cache-control" not in dict(_edge("browser_cache_ttl: 0", origin=origin)
                                        .get().headers.edits)


def test_caching_level_ignore_query_string_shares_one_object():
    edge = _edge("cache_level: simplified")
    assert edge.get("/a.css?v=1").served.status == "MISS"
    assert edge.get("/a.css?v=2").served.status == "HIT"
    # a cache rule's key beats the zone setting
    edge = _edge("cache_level: simplified", RULE_KEY)
    edge.get("/a.css?v=1")
    assert edge.get("/a.css?v=2").served.status == "MISS"


def test_caching_level_no_query_string_does_not_cache_a_query():
    edge = _edge("cache_level: basic")
    ex = edge.get("/a.css?v=1")
    assert ex.served.status == "DYNAMIC" and "No Query String" in ex.served.reason
    assert edge.get("/a.css").served.status == "MISS"
    assert edge.get("/a.css").served.status == "HIT"


def test_standard_keeps_queries_apart_and_sort_query_string_sorts_them():
    edge = _edge("cache_level: aggressive")
    edge.get("/a.css?a=1&b=2")
    assert edge.get("/a.css?b=2&a=1").served.status == "MISS"
    edge = _edge("sort_query_string_for_cache: on")
    edge.get("/a.css?a=1&b=2")
    assert edge.get("/a.css?b=2&a=1").served.status == "HIT"


def test_development_mode_bypasses_the_cache_and_polish():
    edge = _edge("development_mode: on, polish: lossless")
    first, second = edge.get(), edge.get()
    assert first.served.status == second.served.status == "DYNAMIC"
    assert "Development Mode" in second.served.reason and len(edge.origin.seen) == 2
    assert edge.last.exchange.state.features["polish"] == "off"


def test_always_online_turns_stale_while_revalidate_off():
    origin = Origin(headers=[(b"Content-Type", b"text/css"),
                             (b"Cache-Control", b"max-age=10, stale-while-revalidate=60")])
    edge = _edge("always_online: off", origin=origin)
    edge.get()
    edge.now += 20
    assert edge.get().served.status == "UPDATING"
    edge = _edge("always_online: on", origin=origin)
    edge.get()
    edge.now += 20
    assert edge.get().served.status in ("EXPIRED", "REVALIDATED")


def test_settings_as_the_api_writes_them_and_rules_win():
    zone = parse_rules('plan: pro\nsettings: {browser_cache_ttl: "7200", '
                       'development_mode: "off", cache_level: aggressive}\n')
    assert zone.cache_defaults.browser_ttl.default == 7200
    assert not zone.cache_defaults.development_mode
    rule = cache_parameters({"browser_ttl": {"mode": "respect_origin"}})
    s = cache_settings("GET", "/a.css", rule, "pro", zone.cache_defaults)
    assert s.browser_ttl.mode == "respect_origin"  # the rule beats the zone (facts 5.1.7)
