"""Legacy Page Rules (`GET /zones/{id}/pagerules`, Terraform's `cloudflare_page_rule`) as
the rules they amount to: a cache rule and a configuration rule per page rule, for the
actions the edge models; the others are reported.

Modelled (docs/rules-file.md): the URL pattern becomes `http.request.full_uri wildcard`;
Rules beat Page Rules (facts 4.5), so these come before the zone's own rules of each
section; Cloudflare applies only the highest-priority page rule that matches, while these
stack like rules (the highest priority last, so it wins each setting it sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

import yaml

from addon.config.yaml_reader import SWITCHES
from addon.html import features as html_features

CACHE_LEVEL = {"bypass": {"cache": False}, "cache_everything": {"cache": True},
               "simplified": {"cache_key": {"custom_key": {"query_string": {"exclude": "*"}}}},
               "aggressive": {}}  # fmt: skip
FEATURES = tuple(html_features.FEATURES)  # a Page Rule action of the same name for each


@dataclass
class PageRule:
    """One page rule, converted."""

    priority: int
    rules: dict[str, yaml.Node] = field(default_factory=dict)  # section -> rule node
    notes: list[str] = field(default_factory=list)


def convert(where: str, mark: yaml.Mark, target: str, actions: dict[str, Any],
            priority: int, enabled: bool) -> PageRule:
    """`actions`: action id -> value, as the API or Terraform gives them."""
    out = PageRule(priority)
    cache: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for action, value in actions.items():
        text = str(value).lower() if isinstance(value, str | bool) else value
        if action == "cache_level" and text in CACHE_LEVEL:
            cache.update(CACHE_LEVEL[text])
        elif action == "edge_cache_ttl" and _seconds(value) is not None:
            cache["edge_ttl"] = {"mode": "override_origin", "default": _seconds(value)}
        elif action == "browser_cache_ttl" and _seconds(value) is not None:
            ttl = _seconds(value)
            cache["browser_ttl"] = ({"mode": "override_origin", "default": ttl} if ttl
                                    else {"mode": "respect_origin"})
        elif action == "respect_strong_etag" and text in SWITCHES:
            cache["respect_strong_etags"] = SWITCHES[text]
        elif action in FEATURES and text in SWITCHES:
            config[action] = SWITCHES[text]
        elif action == "polish" and text in ("off", "lossless", "lossy"):
            config["polish"] = text
        elif action == "disable_performance":
            config.update(rocket_loader=False, mirage=False, polish="off")
        else:
            out.notes.append(f"{where}: page rule {target!r}: action {action} is not "
                             "converted (not emulated)")
    expression = f'http.request.full_uri wildcard "{_pattern(target)}"'
    description = f"Page Rule {target} (priority {priority})"
    for section, params in (("cache_rules", cache), ("configuration_rules", config)):
        if params:
            out.rules[section] = node({"description": description, "expression": expression,
                                       "enabled": enabled, "action_parameters": params}, mark)
    return out


def node(value: Any, mark: yaml.Mark) -> yaml.Node:
    """Python data as YAML nodes, all marked at the page rule."""
    if isinstance(value, dict):
        return yaml.MappingNode("tag:yaml.org,2002:map",
                                [(node(k, mark), node(v, mark)) for k, v in value.items()],
                                mark, mark)
    if isinstance(value, list):
        return yaml.SequenceNode("tag:yaml.org,2002:seq", [node(v, mark) for v in value],
                                 mark, mark)
    if isinstance(value, bool):
        return yaml.ScalarNode("tag:yaml.org,2002:bool", str(value).lower(), mark, mark)
    if isinstance(value, int):
        return yaml.ScalarNode("tag:yaml.org,2002:int", str(value), mark, mark)
    return yaml.ScalarNode("tag:yaml.org,2002:str", str(value), mark, mark)


def _pattern(target: str) -> str:
    """A Page Rule URL pattern as a wildcard over the full URI: any scheme when it names
    none, the root path when it names no path."""
    pattern = target.strip()
    if "://" not in pattern:
        pattern = "http*://" + pattern
    if "/" not in pattern.split("://", 1)[1]:
        pattern += "/"
    return pattern.replace("\\", "\\\\").replace('"', '\\"')


def _seconds(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
