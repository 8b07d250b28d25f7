"""rules.yaml: the default zone, every shape Cloudflare's API allows, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from addon.config.loader import RulesFileError
from addon.config.loader import load_rules
from addon.config.loader import parse_rules
from addon.config.parameters import CacheParameters
from addon.config.parameters import CompressParameters
from addon.config.parameters import EdgeTTL

ROOT = Path(__file__).resolve().parents[2]


def test_default_rules_file_is_a_fresh_pro_zone():
    z = load_rules(ROOT / "rules.yaml")
    assert z.plan == "pro"
    assert z.settings["brotli"] is True and z.settings["email_obfuscation"] is True
    assert z.settings["automatic_https_rewrites"] is True and z.settings["rocket_loader"] is False
    assert (z.cache_rules, z.compression_rules, z.configuration_rules) == ((), (), ())


def test_issue_example_loads_and_reports_not_emulated_keys():
    z = parse_rules("""
plan: pro
settings: {brotli: on, email_obfuscation: on, automatic_https_rewrites: on, rocket_loader: off,
           mirage: off, polish: off}
cache_rules:
  - description: Strong ETags for static files
    expression: starts_with(http.request.uri.path, "/static/")
    enabled: true
    action_parameters:
      cache: true
      respect_strong_etags: true
      edge_ttl: {mode: override_origin, default: 3600}
compression_rules:
  - expression: http.request.uri.path.extension eq "csv"
    action: compress_response
    action_parameters:
      algorithms: [{name: gzip}, {name: auto}]
configuration_rules:
  - expression: starts_with(http.request.uri.path, "/app/")
    id: 2c0fc9fa937b11eaa1b71c4d701ab86e
    action_parameters:
      email_obfuscation: false
      rocket_loader: false
      security_level: high
""")
    assert z.cache_rules[0].label == 'cache_rules[1] "Strong ETags for static files"'
    assert z.compression_rules[0].action_parameters == CompressParameters(("gzip", "auto"))
    # the edge cache emulates cache, edge_ttl and respect_strong_etags
    assert z.not_emulated == ("configuration_rules[1].action_parameters.security_level",)
    params = z.cache_rules[0].action_parameters
    assert params == CacheParameters(cache=True, respect_strong_etags=True,
                                     edge_ttl=EdgeTTL("override_origin", 3600))


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("plan: gold\n", "1:7: plan", "must be one of free, pro, business, enterprise"),
        ("settings: {brotli: on}\n", "1:1: plan", "missing"),
        ("plan: pro\nsetings: {}\n", "2:1: setings", "did you mean `settings`"),
        ("plan: pro\nsettings:\n  brotlii: on\n", "3:3: settings.brotlii", "did you mean `brotli`"),
        ("plan: pro\nsettings:\n  brotli: maybe\n", "3:11: settings.brotli",
         "on/off or true/false"),
        ("plan: pro\nsettings:\n  polish: fast\n", "3:11: settings.polish", "must be one of off"),
        ("plan: pro\ncache_rules: {}\n", "2:14: cache_rules", "must be a list"),
        ("plan: pro\ncache_rules:\n  - action_parameters: {cache: true}\n",
         "3:5: cache_rules[1].expression", "missing"),
        ("plan: pro\ncache_rules:\n  - expression: ssl\n", "3:5: cache_rules[1].action_parameters",
         "missing"),
        ("plan: pro\ncache_rules:\n  - expression: ssl\n"
         "    action_parameters: {respect_strong_etag: true}\n",
         "4:25: cache_rules[1].action_parameters.respect_strong_etag",
         "did you mean `respect_strong_etags`"),
        ("plan: pro\ncache_rules:\n  - expression: ssl\n    action_parameters: {cache: 1}\n",
         "4:32: cache_rules[1].action_parameters.cache", "on/off or true/false"),
        ("plan: pro\ncache_rules:\n  - expression: ssl\n    action: set_config\n"
         "    action_parameters: {}\n", "4:13: cache_rules[1].action", "set_cache_settings"),
        ("plan: pro\ncache_rules:\n  - expression: ssl\n    enabled: yes please\n"
         "    action_parameters: {}\n", "4:14: cache_rules[1].enabled", "on/off or true/false"),
        ("plan: pro\ncache_rules:\n  - expression: 42\n    action_parameters: {}\n",
         "3:17: cache_rules[1].expression", "must be a string"),
        ("plan: pro\ncompression_rules:\n  - expression: ssl\n    action_parameters:\n"
         "      algorithms: []\n", "5:19: compression_rules[1].action_parameters.algorithms",
         "non-empty list"),
        ("plan: pro\ncompression_rules:\n  - expression: ssl\n    action_parameters:\n"
         "      algorithms: [{name: lzma}]\n",
         "5:27: compression_rules[1].action_parameters.algorithms[1].name", "must be one of gzip"),
        ("plan: pro\ncompression_rules:\n  - expression: ssl\n    action_parameters:\n"
         "      algorithms: [{name: none}, {name: gzip}]\n",
         "5:34: compression_rules[1].action_parameters.algorithms[2]", "must be the last"),
        ("plan: pro\nconfiguration_rules:\n  - expression: ssl\n    action_parameters:\n"
         "      ssl: sometimes\n", "5:12: configuration_rules[1].action_parameters.ssl",
         "must be one of off, flexible"),
        ("plan: pro\nplan: free\n", "2:1: plan", "duplicate key"),
        ("plan: [pro\n", "2:1: ", "invalid YAML"),
    ],
)
def test_errors_name_file_line_column_and_key(text, where, message):
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, "zone.yaml")
    assert str(info.value).startswith(f"zone.yaml:{where}"), str(info.value)
    assert message in str(info.value)


def test_invalid_expression_points_into_the_file():
    text = 'plan: pro\ncache_rules:\n  - expression: http.host eq "a" and http.hots eq "b"\n' \
           '    action_parameters: {cache: true}\n'
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, "zone.yaml")
    msg = str(info.value)
    assert msg.startswith("zone.yaml:3:38: cache_rules[1].expression: invalid expression: "
                          "unknown field `http.hots`")
    assert "did you mean `http.host`" in msg and "^^^^^^^^^" in msg


def test_block_expression_positions_and_phase_check():
    text = ("plan: pro\ncache_rules:\n  - expression: |\n      ssl\n"
            "        and http.response.code eq 200\n    action_parameters: {cache: true}\n")
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, "zone.yaml")
    assert str(info.value).startswith("zone.yaml:5:13: cache_rules[1].expression")
    assert "response field" in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(RulesFileError, match="empty"):
        load_rules(tmp_path / "empty.yaml")


@pytest.mark.parametrize(("written", "matches"), [("true", True), ("false", False),
                                                 ("'true'", True), ("True", True)])
def test_an_unquoted_true_is_the_expression_true(written, matches):
    """The hint for a missing expression says to write `true`; YAML reads that as a
    boolean, which must mean the expression it spells."""
    from addon.expressions import FieldValues
    from addon.http.messages import Request
    z = parse_rules(f"plan: pro\ncache_rules:\n  - expression: {written}\n"
                    "    action_parameters: {cache: true}\n")
    assert z.cache_rules[0].expression.matches(FieldValues(Request())) is matches


def test_an_expression_that_is_a_number_is_still_an_error():
    with pytest.raises(RulesFileError, match=r"zone.yaml:3:17: cache_rules\[1\].expression: "
                       "must be a string"):
        parse_rules("plan: pro\ncache_rules:\n  - expression: 42\n"
                    "    action_parameters: {cache: true}\n", "zone.yaml")


def test_the_rule_count_includes_every_ruleset():
    one = "  - expression: 'true'\n    action_parameters: {%s}\n"
    z = parse_rules("plan: pro\nconfiguration_rules:\n" + one % "rocket_loader: on"
                    + "cache_rules:\n" + one % "cache: true"
                    + "compression_rules:\n" + one % "algorithms: [{name: gzip}]"
                    + "cache_response_rules:\n" + one % "strip_etags: true")
    assert z.rule_count == 4
