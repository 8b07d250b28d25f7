"""Cache Response Rules' set_cache_control and set_cache_tags (facts 5.2.2, 5.2.3): what
the cache stores and for how long, what visitors see, which tags an object carries."""

from __future__ import annotations

import pytest

from addon.config.loader import parse_rules
from addon.config.yaml_reader import RulesFileError
from tests.unit.test_cache import Edge
from tests.unit.test_cache import Origin


def _edge(rules: str, cache_control: bytes | None = b"max-age=60",
          extra: list | None = None) -> Edge:
    headers = [(b"Content-Type", b"text/css"), (b"ETag", b'"v1"'), *(extra or [])]
    if cache_control is not None:
        headers.append((b"Cache-Control", cache_control))
    edge = Edge(origin=Origin(headers=headers))
    edge.zone = parse_rules("plan: pro\nsettings: {email_obfuscation: off, "
                            "automatic_https_rewrites: off}\ncache_response_rules:\n" + rules)
    return edge


def _stored(edge: Edge) -> dict[bytes, bytes]:
    [obj] = edge.store.objects.values()
    return {k.lower(): v for k, v in obj.headers}


def _sent(ex) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in ex.result.final.headers}


SET_MAX_AGE = """  - action: set_cache_control
    expression: "true"
    action_parameters:
      max-age: {operation: set, value: 3600}
"""


def test_set_cache_control_changes_what_the_cache_stores_and_what_visitors_see():
    edge = _edge(SET_MAX_AGE)
    first = edge.get()
    assert first.served.status == "MISS"
    assert "Cache-Control as Cache Response Rules set it: max-age=3600" in first.served.reason
    assert _sent(first)[b"cache-control"] == b"max-age=3600"
    edge.now += 600  # past the origin's 60 s, within the rule's hour
    assert edge.get().served.status == "HIT" and len(edge.origin.seen) == 1


def test_cloudflare_only_changes_the_edge_alone():
    edge = _edge(SET_MAX_AGE.replace("value: 3600}", "value: 3600, cloudflare_only: true}"))
    first = edge.get()
    sent = _sent(first)
    assert sent[b"cache-control"] == b"max-age=60"  # visitors see the origin's
    assert b"cloudflare-cdn-cache-control" not in sent  # never forwarded (facts 8.5)
    assert _stored(edge)[b"cloudflare-cdn-cache-control"] == b"max-age=3600"
    edge.now += 600
    assert edge.get().served.status == "HIT"


def test_no_store_and_removing_a_directive():
    edge = _edge("""  - action: set_cache_control
    expression: http.response.code eq 200
    action_parameters:
      no-store: {operation: set}
""")
    ex = edge.get()
    assert ex.served.status == "BYPASS" and not edge.store.objects
    # remove no-cache: the object becomes cacheable without revalidating each time
    edge = _edge("""  - action: set_cache_control
    expression: "true"
    action_parameters:
      no-cache: {operation: remove}
      private: {operation: set, qualifiers: [set-cookie, x-user]}
""", cache_control=b"no-cache, max-age=60")
    ex = edge.get()
    assert _sent(ex)[b"cache-control"] == b'max-age=60, private="set-cookie, x-user"'


def test_the_rules_cache_control_beats_the_origins_cdn_cache_control():
    edge = _edge(SET_MAX_AGE, extra=[(b"CDN-Cache-Control", b"max-age=5")])
    edge.get()
    assert _stored(edge)[b"cloudflare-cdn-cache-control"] == b"max-age=3600"
    edge.now += 60
    assert edge.get().served.status == "HIT"


def test_last_match_wins_per_directive():
    edge = _edge(SET_MAX_AGE + """  - action: set_cache_control
    expression: "true"
    action_parameters:
      max-age: {operation: set, value: 120}
      stale-while-revalidate: {operation: set, value: 30}
""")
    ex = edge.get()
    assert _sent(ex)[b"cache-control"] == b"max-age=120, stale-while-revalidate=30"


def test_set_cache_tags_edits_the_origins_tags_and_visitors_never_see_them():
    edge = _edge("""  - action: set_cache_tags
    expression: "true"
    action_parameters: {operation: add, values: [css, site]}
  - action: set_cache_tags
    expression: "true"
    action_parameters: {operation: remove, values: [old]}
""", extra=[(b"Cache-Tag", b"old, site")])
    ex = edge.get()
    assert _stored(edge)[b"cache-tag"] == b"site, css"
    assert b"cache-tag" not in _sent(ex)
    assert edge.store.purge(tag="CSS") == 1


@pytest.mark.parametrize("params, message", [
    ("{max-age: {operation: set}}", r"max-age.value: missing; the number of seconds"),
    ("{public: {operation: set, value: 3}}", r"public.value: only max-age"),
    ("{max-age: {value: 3}}", r"max-age.operation: missing; set or remove"),
    ("{no-store: {operation: set, qualifiers: [a]}}", r"no-store.qualifiers: only private"),
    ("{max-age: {operation: replace, value: 3}}", r"must be one of set, remove"),
])
def test_set_cache_control_errors(params, message):
    with pytest.raises(RulesFileError, match=message):
        parse_rules("plan: pro\ncache_response_rules:\n  - action: set_cache_control\n"
                    f"    expression: 'true'\n    action_parameters: {params}\n")


def test_tags_from_an_expression_are_reported_and_the_rule_skipped():
    zone = parse_rules("plan: pro\ncache_response_rules:\n  - action: set_cache_tags\n"
                       "    expression: 'true'\n    action_parameters: {operation: set, "
                       "expression: 'split(http.request.uri.path, \"/\", 3)'}\n")
    assert not zone.cache_response_rules
    assert any("tags computed by an expression" in n for n in zone.not_emulated)


def test_an_action_the_edge_does_not_model_is_reported_but_a_typo_stops():
    zone = parse_rules("plan: pro\ncache_response_rules:\n  - action: log_custom_field\n"
                       "    expression: 'true'\n    action_parameters: {}\n")
    assert not zone.cache_response_rules
    assert any("action log_custom_field (rules.yaml:3:13)" in n for n in zone.not_emulated)
    with pytest.raises(RulesFileError, match=r"action: must be 'set_cache_settings' or "
                       r"'set_cache_tags' or 'set_cache_control'"):
        parse_rules("plan: pro\ncache_response_rules:\n  - action: set_cache_tag\n"
                    "    expression: 'true'\n    action_parameters: {}\n")
