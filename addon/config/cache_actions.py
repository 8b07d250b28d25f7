"""The other actions of http_response_cache_settings (facts 5.2.2): set_cache_control, per
directive, and set_cache_tags, read into typed parameters with file:line:key errors."""

from __future__ import annotations

import yaml

from addon.config.parameters import CacheControlParameters
from addon.config.parameters import CacheTagParameters
from addon.config.parameters import DirectiveEdit
from addon.config.schema import CACHE_CONTROL_DIRECTIVE
from addon.config.schema import CACHE_CONTROL_FLAGS
from addon.config.schema import CACHE_CONTROL_QUALIFIED
from addon.config.schema import CACHE_CONTROL_SECONDS
from addon.config.schema import CACHE_TAGS
from addon.config.schema import MAP
from addon.config.yaml_reader import CheckedYaml

DIRECTIVES = (*CACHE_CONTROL_SECONDS, *CACHE_CONTROL_QUALIFIED, *CACHE_CONTROL_FLAGS)


def cache_control(reader: CheckedYaml, node: yaml.Node, where: str,
                  unknown: list[str]) -> CacheControlParameters:
    edits = []
    for name, value in reader.mapping(node, where, dict.fromkeys(DIRECTIVES, MAP),
                                      unknown).items():
        key = f"{where}.{name}"
        d = reader.shape(value, key, CACHE_CONTROL_DIRECTIVE)
        operation = d.get("operation")
        if operation is None:
            raise reader.fail(value, f"{key}.operation", "missing; set or remove")
        seconds = d.get("value")
        if operation == "set" and name in CACHE_CONTROL_SECONDS and seconds is None:
            raise reader.fail(value, f"{key}.value", "missing; the number of seconds")
        if seconds is not None and (name not in CACHE_CONTROL_SECONDS or seconds < 0):
            raise reader.fail(value, f"{key}.value", f"only {', '.join(CACHE_CONTROL_SECONDS)}"
                              " take a value, of 0 or more seconds")
        if d.get("qualifiers") and name not in CACHE_CONTROL_QUALIFIED:
            raise reader.fail(value, f"{key}.qualifiers", "only private and no-cache take "
                              "qualifiers")
        edits.append(DirectiveEdit(name, operation, seconds if operation == "set" else None,
                                   tuple(d.get("qualifiers") or ()) if operation == "set"
                                   else (), bool(d.get("cloudflare_only"))))
    if not edits:
        raise reader.fail(node, where, "names no directive; e.g. max-age: {operation: set, "
                          "value: 3600}")
    return CacheControlParameters(tuple(edits))


def cache_tags(reader: CheckedYaml, node: yaml.Node, where: str,
               not_emulated: list[str]) -> CacheTagParameters | None:
    """The tag operation, or None for tags computed by an expression (not emulated)."""
    d = reader.shape(node, where, CACHE_TAGS)
    if "operation" not in d:
        raise reader.fail(node, f"{where}.operation", "missing; add, remove or set")
    if "expression" in d:
        not_emulated.append(f"{where}.expression ({reader.where(node)}): tags computed by "
                            "an expression; the rule is skipped")
        return None
    if "values" not in d:
        raise reader.fail(node, f"{where}.values", "missing; a list of tags")
    return CacheTagParameters(d["operation"], tuple(d["values"]))
