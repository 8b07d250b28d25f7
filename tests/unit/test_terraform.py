"""Terraform files (HCL, provider v4 and v5) as the zone: the same zone as the API's
shapes give, variables that only Terraform can resolve, and errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from addon.config.loader import load_rules
from addon.config.parameters import ALL
from addon.config.yaml_reader import RulesFileError

TERRAFORM = Path(__file__).resolve().parents[1] / "data" / "cloudflare" / "terraform"


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_a_terraform_zone(version):
    zone = load_rules(TERRAFORM / version)
    assert zone.settings["brotli"] is False and zone.settings["email_obfuscation"] is False
    assert zone.compression_rules[0].action_parameters.algorithms == ("gzip",)
    static, search = (r for r in zone.cache_rules if not r.description.startswith("Page Rule"))
    assert static.action_parameters.respect_strong_etags is True
    ttl = static.action_parameters.edge_ttl
    assert ttl.default == 3600 and (ttl.status_code_ttl[0].first,
                                    ttl.status_code_ttl[0].last) == (500, 599)
    assert search.action_parameters.cache_key.query.exclude == ALL  # ["*"], {list: ["*"]}


def test_v4_blocks_the_zone_plan_and_what_terraform_alone_can_resolve():
    zone = load_rules(TERRAFORM / "v4" / "main.tf")
    assert zone.plan == "business"
    assert [r.description for r in zone.configuration_rules] == [
        "Blog: keep the text as written"]
    skipped = next(line for line in zone.read if "only Terraform can resolve" in line)
    assert skipped.startswith("main.tf:128: a rule of configuration_rules uses ")
    assert "${var.app_prefix}" in skipped
    assert "main.tf:134: page rule 'example.com/old/*' as cache_rules" in zone.read
    legacy = zone.cache_rules[0]  # Page Rules come first: Rules beat them (facts 4.5)
    assert legacy.action_parameters.cache is False
    assert legacy.expression.source == 'http.request.full_uri wildcard "http*://example.com/old/*"'
    assert any(u.startswith("settings.always_use_https (") and "main.tf:28" in u
               for u in zone.unknown)


def test_v5_lines_point_at_each_rule():
    zone = load_rules(TERRAFORM / "v5")
    lines = (TERRAFORM / "v5" / "main.tf").read_text().splitlines()
    for rule in (*zone.cache_rules, *zone.compression_rules):
        page = rule.description.startswith("Page Rule")  # its resource's line
        assert ("cloudflare_page_rule" if page else "expression") in lines[rule.line - 1]
    [tags] = zone.cache_response_rules
    assert (tags.action_parameters.operation, tags.action_parameters.values) == ("add",
                                                                                ("blog",))


@pytest.mark.parametrize("text, expected", [
    ('resource "cloudflare_ruleset" "x" {\n  phase = "http_config_settings"\n  rules = [{\n'
     '    expression = \n  }]\n}\n', r"main.tf:4:\d+: invalid HCL: unexpected '}]'"),
    ('resource "cloudflare_ruleset" "x" {\n  phase = "http_request_cache_settings"\n'
     '  rules = [{\n    expression = "true"\n    action_parameters = {\n'
     '      cache = "maybe"\n    }\n  }]\n}\n',
     r"main.tf:6:1: cache_rules\[1\].action_parameters.cache: must be on/off or true/false"),
    ('resource "cloudflare_ruleset" "x" {\n  phase = var.phase\n  rules = []\n}\n',
     r"main.tf:2:1: phase \$\{var.phase\}: only Terraform can resolve it"),
    ('resource "cloudflare_ruleset" "x" {\n  phase = "http_config_settings"\n  rules = [{\n'
     '    expression = "http.hots eq \\"a\\""\n    action_parameters = {}\n  }]\n}\n',
     r"main.tf:4:\d+: configuration_rules\[1\].expression: invalid expression: unknown "
     r"field `http.hots`"),
])
def test_errors_name_the_file_and_line(tmp_path, text, expected):
    f = tmp_path / "main.tf"
    f.write_text(text)
    with pytest.raises(RulesFileError, match=expected):
        load_rules(f)


def test_terraform_and_a_rules_yaml_in_one_directory(tmp_path):
    (tmp_path / "main.tf").write_text((TERRAFORM / "v5" / "main.tf").read_text())
    (tmp_path / "rules.yaml").write_text("plan: enterprise\nsettings: {brotli: on}\n")
    zone = load_rules(tmp_path)
    assert zone.plan == "enterprise" and zone.settings["brotli"] is True  # applied last


def test_a_v5_page_rule():
    zone = load_rules(TERRAFORM / "v5")
    page = zone.cache_rules[0]
    assert page.description == "Page Rule example.com/docs/* (priority 1)"
    assert page.action_parameters.cache is False
    assert zone.configuration_rules[0].action_parameters == {"email_obfuscation": False}
    assert any("action always_use_https is not converted" in line for line in zone.read)
