"""The edge core: documented ETag tables, eligibility, negotiation, rules (issue 3)."""

from __future__ import annotations

import pytest

from addon.compression.decision import SIZE_PROBE
from addon.exchange.content import _probe_size
from addon.exchange.content import content_phase
from addon.exchange.request import request_phases
from addon.http import codings
from addon.http.accept_encoding import parse_accept_encoding
from addon.http.codings import DecodeError
from addon.http.codings import decode
from addon.http.codings import encode
from addon.http.etag import parse_etag
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support.edge_helpers import BODY
from tests.support.edge_helpers import RSE_ON
from tests.support.edge_helpers import delivered
from tests.support.edge_helpers import exchange
from tests.support.edge_helpers import zone

# facts 2.1, Brotli enabled, origin etag "foobar": (visitor, origin) -> (served, etag)
TABLE_ON = [
    ("gzip, br", "gzip", "gzip", '"foobar"', 1),
    ("gzip, br", "br", "br", '"foobar"', 2),
    ("br", "gzip", "identity", 'W/"foobar"', 3),
    ("gzip", "br", "identity", 'W/"foobar"', 4),
    ("gzip", "identity", "identity", '"foobar"', 5),
]
TABLE_OFF = [
    ("gzip, br", "gzip", "br", 'W/"foobar"', 1),
    ("gzip, br", "br", "br", '"foobar"', 2),
    ("br", "gzip", "br", 'W/"foobar"', 3),
    ("gzip", "br", "gzip", 'W/"foobar"', 4),
    ("gzip", "identity", "gzip", 'W/"foobar"', 5),
]


@pytest.mark.parametrize(("accept", "origin", "served", "etag", "row"), TABLE_ON)
def test_documented_table_respect_strong_etags_on(accept, origin, served, etag, row):
    state, response, ex = exchange(zone(RSE_ON), accept, origin)
    assert delivered(response, ex) == (served, etag, BODY)
    assert ex.decision.table_row == f"ETag table (Respect Strong ETags on), row {row}"
    assert ex.decision.basis == "documented"
    assert state.origin_accept_encoding == accept  # the visitor's own value is forwarded


@pytest.mark.parametrize(("accept", "origin", "served", "etag", "row"), TABLE_OFF)
def test_documented_table_respect_strong_etags_off(accept, origin, served, etag, row):
    state, response, ex = exchange(zone(), accept, origin)
    assert delivered(response, ex) == (served, etag, BODY)
    assert ex.decision.table_row == f"ETag table (Respect Strong ETags off), row {row}"
    assert f"row {row}, documented" in ex.decision.reason
    assert state.origin_accept_encoding == "br, gzip"


# ---- ETags ----


@pytest.mark.parametrize(
    ("value", "kind"),
    [('"123"', "strong"), ('W/"456"', "weak"), ('"W/789"', "strong"), ('""', "strong"),
     ('W/""', "weak"), ('"invalid', "malformed"), ('invalid"', "malformed"),
     ("invalid", "malformed"), ('W/"invalid', "malformed"), ("W/invalid", "malformed"),
     ('w/"x"', "malformed"), ('"a b"', "malformed"), ("index.fa99522e2f.html", "malformed")],
)
def test_etag_grammar(value, kind):
    # the HAProxy reg-test corpus (peers 4.2) plus RFC 9110 etagc
    assert parse_etag([value.encode()]).kind == kind


def test_two_etag_fields_are_malformed():
    assert parse_etag([b'"a"', b'"b"']).kind == "malformed"
    assert parse_etag([]) is None


@pytest.mark.parametrize("bad", ["index.fa99522e2f.html", '"unbalanced', "W/unquoted"])
def test_malformed_etag_removed_when_transformed_kept_on_passthrough(bad):
    _, response, ex = exchange(zone(), "gzip, br", "identity", etag=bad)
    assert ex.decision.etag_action == "removed" and ex.content.edits[b"etag"] is None
    assert "malformed" in ex.decision.reason
    # facts 2.2.8: a visitor accepting nothing the edge makes -> untouched, tag kept
    _, response, ex = exchange(zone(), "deflate", "identity", etag=bad)
    assert not ex.decision.changed and ex.decision.etag_action == "kept"
    assert delivered(response, ex)[1] == bad


def test_weak_etag_stays_weak_and_absent_etag_is_absent():
    _, _, ex = exchange(zone(), "gzip", "identity", etag='W/"v1"')
    assert (ex.decision.etag_action, ex.content.edits[b"etag"]) == ("kept", b'W/"v1"')
    _, _, ex = exchange(zone(), "gzip", "identity", etag=None)
    assert ex.decision.etag_action == "absent" and ex.content.edits[b"etag"] is None


# ---- Accept-Encoding ----


@pytest.mark.parametrize(
    ("accept", "served"),
    [("br;q=0, gzip", "gzip"), ("gzip;q=0, br;q=0.1", "br"), ("*", "br"), ("*;q=0", "identity"),
     ("*, br;q=0", "gzip"), ("GZIP", "gzip"), ("Br , GZip", "br"), ("identity", "identity"),
     (None, "identity"), ("", "identity"), ("gzip;q=abc", "identity"), ("gzip;q=0.001", "gzip"),
     ("deflate, compress", "identity"), ("zstd", "identity")],
)
def test_q_values_star_and_case(accept, served):
    _, response, ex = exchange(zone(), accept, "identity")
    assert delivered(response, ex)[0] == served


def test_q_value_order_does_not_override_server_preference():
    # facts 1.1.11: the edge's order wins over the visitor's weights
    assert parse_accept_encoding("gzip;q=1, br;q=0.5").accepts("br")
    _, response, ex = exchange(zone(), "gzip;q=1, br;q=0.5", "identity")
    assert delivered(response, ex)[0] == "br"


# ---- plans and the brotli setting ----


@pytest.mark.parametrize(
    ("plan", "brotli", "accept", "served"),
    [("free", "on", "gzip, br, zstd", "zstd"), ("free", "on", "gzip, br", "br"),
     ("free", "off", "gzip, br, zstd", "zstd"), ("free", "off", "br, gzip", "gzip"),
     ("pro", "on", "gzip, br, zstd", "br"), ("pro", "on", "zstd", "identity"),
     ("business", "on", "gzip, br, zstd", "br"), ("pro", "off", "gzip, br", "gzip"),
     ("pro", "off", "br", "identity"), ("enterprise", "on", "gzip, br, zstd", "gzip"),
     ("enterprise", "on", "br", "identity")],
)
def test_plan_defaults_and_brotli_setting(plan, brotli, accept, served):
    _, response, plan_ = exchange(zone(plan=plan, brotli=brotli), accept, "identity")
    assert delivered(response, plan_) == (served, 'W/"foobar"' if served != "identity"
                                          else '"foobar"', BODY)


# ---- eligibility ----


def test_media_type_not_in_list_is_not_compressed():
    _, response, ex = exchange(zone(), "gzip, br", content_type="image/png")
    assert not ex.decision.changed and "not in Cloudflare's list" in ex.decision.reason
    _, response, ex = exchange(zone(), "gzip, br", content_type="TEXT/CSS; charset=x")
    assert ex.decision.encoding_out == "br"


@pytest.mark.parametrize(
    ("size", "accept", "served"),
    [(47, "gzip", "identity"), (48, "gzip", "gzip"), (49, "br", "identity"), (50, "br", "br"),
     (49, "br, gzip", "gzip"), (49, "zstd", "identity")],
)
def test_minimum_sizes(size, accept, served):
    z = zone(plan="free") if "zstd" in accept else zone()
    _, response, ex = exchange(z, accept, body=b"x" * size)
    assert delivered(response, ex)[0] == served


def test_minimum_size_counts_the_decoded_body():
    _, response, ex = exchange(zone(), "br", "gzip", body=b"x" * 49)  # gzip is bigger than 49
    assert delivered(response, ex) == ("identity", 'W/"foobar"', b"x" * 49)
    assert "decoded to identity" in ex.decision.reason


@pytest.mark.parametrize(("status", "changed"), [(200, True), (403, True), (404, True),
                                                 (206, False), (301, False), (500, False)])
def test_status_codes(status, changed):
    _, _, ex = exchange(zone(), "gzip", status=status)
    assert ex.decision.changed is changed


def test_non_compressible_status_still_decodes_for_a_visitor_without_the_coding():
    _, response, ex = exchange(zone(), "identity", "gzip", status=500)
    assert delivered(response, ex) == ("identity", 'W/"foobar"', BODY)


@pytest.mark.parametrize(("status", "method"), [(204, "GET"), (304, "GET"), (101, "GET")])
def test_no_body_responses_pass_through(status, method):
    _, response, ex = exchange(zone(), "gzip, br", "gzip", status=status, method=method)
    assert not ex.decision.changed and ex.body.data is None and ex.content.edits == {}


def test_no_transform_keeps_everything():
    for origin, accept in (("identity", "gzip"), ("gzip", "br"), ("br", "identity")):
        _, response, ex = exchange(zone(), accept, origin,
                                     extra_headers=[(b"Cache-Control", b"public, no-transform")])
        assert not ex.decision.changed and ex.body.data is None
        assert not ex.content.drop_content_length
        assert "no-transform" in ex.decision.reason


@pytest.mark.parametrize("coding", ["compress", "gzip, br", "x-custom"])
def test_codings_the_edge_cannot_decode_pass_through(coding):
    _, response, ex = exchange(zone(), "gzip, br, zstd", "identity",
                                 extra_headers=[(b"Content-Encoding", coding.encode())])
    assert not ex.decision.changed
    assert "none of gzip, br, zstd and deflate" in ex.decision.reason
    assert "modelled" in ex.decision.reason


def test_undecodable_origin_body_passes_through():
    z = zone()
    state = request_phases(z, Request(headers=((b"Accept-Encoding", b"br"),)))
    response = Response(headers=((b"Content-Type", b"text/html"),
                                 (b"Content-Encoding", b"gzip")), body=b"not gzip at all")
    content = content_phase(z, state, response)
    assert not content.decision.changed and "could not be decoded" in content.decision.reason


def test_streamed_response_is_not_touched():
    z = zone()
    state = request_phases(z, Request(headers=((b"Accept-Encoding", b"br"),)))
    content = content_phase(z, state, Response(headers=(), body=None, streamed=True))
    assert not content.decision.changed and "streamed" in content.decision.reason


# ---- Vary and Content-Length ----


@pytest.mark.parametrize(
    ("vary", "expected"),
    [(None, "Accept-Encoding"), ("Origin", "Origin, Accept-Encoding"),
     ("accept-encoding", "accept-encoding"), ("Origin, Accept-Encoding", "Origin, Accept-Encoding"),
     ("*", "*")],
)
def test_vary_gains_accept_encoding_once(vary, expected):
    extra = [(b"Vary", vary.encode())] if vary else []
    _, _, ex = exchange(zone(), "gzip", extra_headers=extra)
    assert ex.content.edits[b"vary"] == expected.encode() and ex.content.drop_content_length


def test_pass_through_leaves_headers_alone():
    _, _, ex = exchange(zone(), "gzip, br", "br")
    assert ex.content.edits == {} and not ex.content.drop_content_length and ex.body.data is None


# ---- compression rules ----


def rules(*items: str) -> str:
    return "compression_rules:\n" + "".join(
        f"  - expression: '{expr}'\n    action_parameters:\n      algorithms: [{algs}]\n"
        for expr, algs in (i.split(" => ") for i in items))


@pytest.mark.parametrize(
    ("rule", "accept", "content_type", "served"),
    [
        ('http.request.uri.path.extension eq "csv" => {name: gzip}, {name: auto}', "gzip, br",
         "text/csv", "gzip"),
        ('http.request.uri.path.extension eq "csv" => {name: gzip}, {name: auto}', "br",
         "text/csv", "br"),
        ('http.request.uri.path.extension eq "csv" => {name: gzip}', "br", "text/csv",
         "identity"),
        ("true => {name: gzip}", "gzip, br", "text/html", "gzip"),
        ("true => {name: none}", "gzip, br", "text/html", "identity"),
        ("true => {name: zstd}, {name: brotli}, {name: gzip}", "gzip, br, zstd", "text/html",
         "zstd"),
        ("true => {name: zstd}, {name: brotli}, {name: gzip}", "gzip", "text/html", "gzip"),
        ("true => {name: default}", "gzip, br", "image/png", "identity"),
        ("true => {name: default}", "gzip, br", "text/html", "br"),
        ("true => {name: auto}", "gzip, br", "image/png", "br"),
        ('http.response.content_type.media_type eq "image/avif" => {name: none}', "gzip",
         "image/avif", "identity"),
        ('http.response.content_type.media_type eq "text/html" => {name: gzip}', "gzip, br",
         "text/html", "gzip"),
    ],
)
def test_compression_rules(rule, accept, content_type, served):
    _, response, ex = exchange(zone(rules(rule)), accept, content_type=content_type,
                                 path="/data.csv")
    assert delivered(response, ex)[0] == served
    if "true =>" in rule or "csv" in rule or "text/html" in rule or "avif" in rule:
        assert ex.content.rules == ("compression_rules[1]",)


def test_last_matching_compression_rule_wins():
    z = zone(rules("true => {name: gzip}", "true => {name: brotli}",
                   'http.host eq "nope" => {name: none}'))
    _, response, ex = exchange(z, "gzip, br")
    assert delivered(response, ex)[0] == "br"
    assert "compression_rules[2]" in ex.decision.reason


def test_compression_rule_keeps_size_and_status_limits():
    z = zone(rules("true => {name: gzip}"))
    _, _, ex = exchange(z, "gzip", body=b"x" * 10)
    assert not ex.decision.changed
    _, _, ex = exchange(z, "gzip", status=500)
    assert not ex.decision.changed


def test_compression_rule_does_not_override_respect_strong_etags():
    z = zone(RSE_ON + rules("true => {name: gzip}"))
    _, response, ex = exchange(z, "gzip, br", "identity")
    assert not ex.decision.changed and "not applied" in ex.decision.reason


# ---- request phases: precedence ----


def test_cache_rules_last_match_wins_per_setting():
    z = zone("""
cache_rules:
  - description: on for static
    expression: starts_with(http.request.uri.path, "/static/")
    action_parameters: {respect_strong_etags: true, cache: true}
  - description: off for static css
    expression: http.request.uri.path.extension eq "css"
    action_parameters: {respect_strong_etags: false}
  - description: disabled rule
    enabled: false
    expression: "true"
    action_parameters: {respect_strong_etags: true}
""")
    state, _, _ = exchange(z, "gzip", path="/static/app.js")
    assert state.respect_strong_etags and state.rules == ('cache_rules[1] "on for static"',)
    state, _, _ = exchange(z, "gzip", path="/static/app.css")
    assert not state.respect_strong_etags
    assert state.rules == ('cache_rules[1] "on for static"', 'cache_rules[2] "off for static css"')
    state, _, _ = exchange(z, "gzip", path="/other")
    assert not state.respect_strong_etags and state.rules == ()


def test_configuration_rules_and_respect_strong_etags_switch_features():
    z = zone("""
configuration_rules:
  - expression: starts_with(http.request.uri.path, "/app/")
    action_parameters: {email_obfuscation: false, rocket_loader: true}
""", html_features=True)
    state, _, ex = exchange(z, "gzip", path="/app/x")
    assert state.features["email_obfuscation"] is False and state.features["rocket_loader"]
    assert ex.decision.action == "rewrite" and "Rocket Loader" in ex.decision.reason
    assert ex.body.features == {"automatic_https_rewrites": {"urls": 0, "own_host": 0},
                             "rocket_loader": {"scripts_deferred": 0, "scripts_opted_out": 0}}
    state, _, ex = exchange(zone(RSE_ON, html_features=True), "gzip")
    assert not any(state.features[k] for k in ("email_obfuscation", "automatic_https_rewrites",
                                               "rocket_loader", "mirage"))
    assert state.turned_off == ("email_obfuscation", "automatic_https_rewrites")
    assert ex.decision.action == "pass" and ex.decision.etag_out == b'"foobar"'
    assert ex.content.notes == ("Respect Strong ETags turned off Email Obfuscation, Automatic "
                                "HTTPS Rewrites for this request (facts 2.2.3), so they did "
                                "not rewrite the page",)


def test_visitor_without_accept_encoding_and_rse_removes_header_to_origin():
    state, _, _ = exchange(zone(RSE_ON), None)
    assert state.origin_accept_encoding is None


# ---- codecs ----


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "identity"])
def test_codecs_round_trip(coding):
    assert decode(encode(BODY, coding), coding) == BODY


def test_gzip_decodes_every_member_and_rejects_truncation():
    two = encode(b"one", "gzip") + encode(b"two", "gzip")
    assert decode(two, "gzip") == b"onetwo"
    with pytest.raises(DecodeError):
        decode(encode(BODY, "gzip")[:-10], "gzip")


def test_the_size_probe_reads_at_most_what_the_minimums_need():
    small = codings.encode(b"x" * 10, "br")
    big = codings.encode(b"y" * 100, "br")
    assert _probe_size(small, "br") == (10, "")
    assert _probe_size(big, "br")[0] == SIZE_PROBE
    broken = b"\x8b" + small[1:]
    size, error = _probe_size(broken, "br")
    assert size is None and "br body could not be decoded" in error
