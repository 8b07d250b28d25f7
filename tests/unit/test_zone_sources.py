"""A zone from Cloudflare's API responses saved as JSON, alone or in a directory with a
rules.yaml: what is read, what is tolerated, what is reported, and errors with file:line."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from addon.config.loader import load_rules
from addon.config.loader import parse_rules
from addon.config.parameters import ALL
from addon.config.sources import signature
from addon.config.yaml_reader import RulesFileError

API = Path(__file__).resolve().parents[1] / "data" / "cloudflare" / "api"


def _envelope(result) -> str:
    return json.dumps({"result": result, "success": True, "errors": [], "messages": []},
                      indent=2)


def test_a_directory_of_api_responses_is_one_zone():
    zone = load_rules(API)
    assert zone.plan == "business"  # zone.json's plan.legacy_id
    assert zone.settings["brotli"] is False and zone.settings["email_obfuscation"] is False
    assert [r.description for r in zone.compression_rules] == ["Stylesheets: gzip only"]
    assert zone.compression_rules[0].action_parameters.algorithms == ("gzip",)
    static, search, off = (r for r in zone.cache_rules
                           if not r.description.startswith("Page Rule"))
    assert static.action_parameters.respect_strong_etags is True
    assert static.action_parameters.edge_ttl.status_code_ttl[0].first == 500  # "500"
    assert search.action_parameters.cache_key.query.exclude == ALL  # "exclude": "*"
    assert off.enabled is False
    assert zone.https_hosts == ("example.com", "*.example.com")  # rules.yaml, applied last
    assert any("plan business" in line for line in zone.read)


def test_what_is_not_modelled_is_reported_with_its_file_and_line():
    zone = load_rules(API)
    strip, tags, control = (r.action_parameters for r in zone.cache_response_rules)
    assert strip.strip_etags and tags.values == ("blog",)
    [edit] = control.directives
    assert (edit.name, edit.value, edit.cloudflare_only) == ("s-maxage", 3600, True)
    assert any(u.startswith("configuration_rules[2].action_parameters."
                            "redirects_for_ai_training (") and "http_config_settings.json:22"
               in u for u in zone.unknown)
    assert any(u.startswith("settings.min_tls_version (") for u in zone.unknown)
    # false asks nothing of the edge: not reported
    assert not any("cache_deception_armor" in n for n in zone.not_emulated)


def test_a_single_entrypoint_file_needs_no_plan(tmp_path):
    f = tmp_path / "compression.json"
    shutil.copy(API / "http_response_compression.json", f)
    zone = load_rules(f)
    assert zone.plan == "pro" and "no zone file: the plan is pro" in zone.read
    assert len(zone.compression_rules) == 1


def test_a_bare_ruleset_and_a_single_setting(tmp_path):
    (tmp_path / "ruleset.json").write_text(json.dumps({
        "phase": "http_config_settings",
        "rules": [{"expression": "true", "action": "set_config",
                   "action_parameters": {"rocket_loader": True}}]}))
    (tmp_path / "brotli.json").write_text(_envelope({"id": "brotli", "value": "off"}))
    zone = load_rules(tmp_path)
    assert zone.settings["brotli"] is False
    assert zone.configuration_rules[0].action_parameters["rocket_loader"] is True


def test_on_and_off_are_booleans_and_numbers_may_be_strings():
    zone = parse_rules("""plan: pro
settings: {brotli: "off", email_obfuscation: "on"}
cache_rules:
  - expression: "true"
    action_parameters:
      cache: "on"
      edge_ttl: {mode: override_origin, default: "60"}
""")
    assert zone.settings["brotli"] is False and zone.settings["email_obfuscation"] is True
    params = zone.cache_rules[0].action_parameters
    assert params.cache is True and params.edge_ttl.default == 60


def test_list_of_star_means_all():
    zone = parse_rules("""plan: pro
cache_rules:
  - expression: "true"
    action_parameters:
      cache_key: {custom_key: {query_string: {exclude: {list: ["*"]}}}}
  - expression: "true"
    action_parameters:
      cache_key: {custom_key: {query_string: {include: "*"}}}
""")
    assert zone.cache_rules[0].action_parameters.cache_key.query.exclude == ALL
    assert zone.cache_rules[1].action_parameters.cache_key.query.include == ALL


def test_unknown_keys_are_reported_but_a_typo_still_stops():
    zone = parse_rules("""plan: pro
configuration_rules:
  - expression: "true"
    id: abc
    logging: null
    action_parameters: {redirects_for_ai_training: true, email_obfuscation: false}
""")
    assert zone.unknown and "redirects_for_ai_training" in zone.unknown[0]
    with pytest.raises(RulesFileError, match=r"rules.yaml:5:29: .*email_obfuscaton: unknown "
                       r"key; did you mean `email_obfuscation`"):
        parse_rules("""plan: pro
configuration_rules:
  - expression: "true"
    action_parameters:
      {rocket_loader: true, email_obfuscaton: false}
""")


@pytest.mark.parametrize("text, expected", [
    ('{"result": {"foo": 1}, "success": true}', r"x.json:1:12: not a shape this tool reads"),
    ('{"hello": "world",\n "result": []}', r"x.json:1:1: not a Cloudflare API response: "
                                            r"unexpected hello"),
    ('{"result": [\n {"id": "brotli", "value": "on"},\n {"targets": []}]}',
     r"x.json:3:2: expected a zone setting"),
    ('{"result": {"phase": "http_config_settings", "rules": [\n  {"expression": "true",'
     ' "action_parameters": {"email_obfuscation": "maybe"}}]}}',
     r"x.json:2:69: configuration_rules\[1\].action_parameters.email_obfuscation: must be "
     r"on/off or true/false"),
    ('{"result": {\n  "phase": "http_config_settings",\n  "rules": [\n}', r"x.json:4:1: "
                                                                        r"invalid JSON"),
    ('{"result": null, "success": false, "errors": [{"code": 10000, "message": '
     '"Authentication error"}]}',
     r"x.json:1:1: the API response has no result; the API answered: 10000: Authentication "
     r"error"),
])
def test_bad_input_names_the_file_and_line(tmp_path, text, expected):
    f = tmp_path / "x.json"
    f.write_text(text)
    with pytest.raises(RulesFileError) as e:
        load_rules(f)
    assert str(e.value).startswith(str(tmp_path) + "/")
    assert re.search(expected, str(e.value)), str(e.value)


def test_an_expression_error_points_into_the_json_file(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"result": {"phase": "http_request_cache_settings", "rules": [\n'
                 '  {"expression": "http.request.uri.pth eq \\"/\\"", '
                 '"action_parameters": {"cache": true}}]}}')
    with pytest.raises(RulesFileError, match=r"x.json:2:19: cache_rules\[1\].expression: "
                       r"invalid expression: unknown field `http.request.uri.pth`"):
        load_rules(f)


def test_two_rulesets_for_one_phase_are_refused(tmp_path):
    shutil.copy(API / "http_response_compression.json", tmp_path / "a.json")
    shutil.copy(API / "http_response_compression.json", tmp_path / "b.json")
    with pytest.raises(RulesFileError, match=r"b.json:\d+:\d+: a second ruleset for phase "
                       r"http_response_compression \(the first is in a.json\)"):
        load_rules(tmp_path)


def test_a_phase_that_is_not_emulated_is_said_and_skipped(tmp_path):
    (tmp_path / "waf.json").write_text(_envelope({
        "phase": "http_request_firewall_custom",
        "rules": [{"expression": "true", "action": "block"}]}))
    zone = load_rules(tmp_path)
    assert zone.rule_count == 0
    assert zone.read[0] == ("waf.json: phase http_request_firewall_custom is not emulated, "
                            "its rules are not read")


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(RulesFileError, match="no rules file in this directory"):
        load_rules(tmp_path)


def test_the_signature_changes_with_any_file_of_the_directory(tmp_path):
    shutil.copytree(API, tmp_path / "zone")
    before = signature(tmp_path / "zone")
    assert len(before) == 8
    f = tmp_path / "zone" / "settings.json"
    f.write_text(f.read_text())
    os.utime(f, (1, 1))
    assert signature(tmp_path / "zone") != before
    (tmp_path / "zone" / "more.json").write_text("{}")
    assert len(signature(tmp_path / "zone")) == 9


def test_a_phase_without_an_entrypoint_is_nothing_to_read(tmp_path):
    shutil.copy(API / "zone.json", tmp_path / "zone.json")
    (tmp_path / "http_response_compression.json").write_text(json.dumps({
        "result": None, "success": False, "messages": [],
        "errors": [{"code": 10003, "message": "could not find entrypoint ruleset in the "
                    "http_response_compression phase"}]}))
    zone = load_rules(tmp_path)
    assert zone.rule_count == 0 and any("nothing to read" in line for line in zone.read)


def _shape(zone):
    return (zone.plan, zone.settings, zone.https_hosts, [
        [(r.description, r.expression.source, r.enabled, r.action_parameters)
         for r in getattr(zone, section)]
        for section in ("configuration_rules", "cache_rules", "compression_rules",
                        "cache_response_rules")])


def test_import_writes_a_rules_file_that_is_the_same_zone(tmp_path):
    from addon.cli import importer
    out = tmp_path / "rules.yaml"
    assert importer.main([str(API), "-o", str(out)]) == 0
    text = out.read_text()
    assert "# http_request_cache_settings.json:10, ref 5fd1d1f7a1ab4d1f9d4d5c7e1b3a2f10" in text
    assert "#   settings.min_tls_version (" in text  # left out, and said
    assert "action: set_cache_tags" in text and "cloudflare_only: true" in text
    assert _shape(load_rules(out)) == _shape(load_rules(API))


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_import_of_terraform_is_the_same_zone(tmp_path, version):
    from addon.cli import importer
    source = API.parent / "terraform" / version
    out = tmp_path / "rules.yaml"
    assert importer.main([str(source), "-o", str(out)]) == 0
    assert _shape(load_rules(out)) == _shape(load_rules(source))
    assert "only Terraform can resolve" in out.read_text() or version == "v5"


def test_import_of_bad_input_is_one_line(tmp_path, capsys):
    from addon.cli import importer
    bad = tmp_path / "bad.json"
    bad.write_text('{"result": {"phase": "http_config_settings", "rules": 7}}')
    assert importer.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"import: {bad}:1:") and "Traceback" not in err


def test_page_rules_become_rules_that_the_zones_own_rules_beat():
    zone = load_rules(API)
    docs, legacy, paused = zone.cache_rules[:3]  # by priority: the highest last
    assert docs.description == "Page Rule example.com/docs/* (priority 1)"
    assert docs.action_parameters.respect_strong_etags is True
    assert docs.action_parameters.edge_ttl.default == 7200
    assert docs.action_parameters.browser_ttl.mode == "respect_origin"  # 0: respect headers
    assert legacy.action_parameters.cache is False and paused.enabled is False
    assert zone.configuration_rules[0].action_parameters == {"email_obfuscation": False}
    assert any("action always_use_https is not converted" in line for line in zone.read)
