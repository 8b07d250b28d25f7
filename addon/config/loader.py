"""Load and validate rules.yaml into a Zone.

Every error names the file, line, column and key, e.g.
`rules.yaml:12:7: cache_rules[1].action_parameters.respect_strong_etag: unknown key ...`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from addon.compression.policy import ALGORITHM_CODINGS
from addon.compression.policy import ALGORITHM_KEYWORDS
from addon.compression.policy import PLANS
from addon.config.cache_actions import cache_control
from addon.config.cache_actions import cache_tags
from addon.config.parameters import CacheResponseParameters
from addon.config.parameters import CompressParameters
from addon.config.parameters import ZoneCacheSettings
from addon.config.parameters import cache_parameters
from addon.config.schema import CACHE_NOT_EMULATED
from addon.config.schema import CACHE_PARAMETERS
from addon.config.schema import CACHE_RESPONSE_PARAMETERS
from addon.config.schema import CACHE_SHAPES
from addon.config.schema import CONFIG_PARAMETERS
from addon.config.schema import LIST
from addon.config.schema import MAP
from addon.config.schema import RULE_KEYS
from addon.config.schema import SETTINGS
from addon.config.schema import STR
from addon.config.schema import TOP_KEYS
from addon.config.sources import Source
from addon.config.sources import compose_text
from addon.config.yaml_reader import TYPO
from addon.config.yaml_reader import CheckedYaml
from addon.config.yaml_reader import RulesFileError
from addon.config.zone import ACTIONS
from addon.config.zone import DEFAULT_SETTINGS
from addon.config.zone import EMULATED_CACHE_PARAMETERS
from addon.config.zone import EMULATED_CACHE_RESPONSE_PARAMETERS
from addon.config.zone import EMULATED_CONFIG_PARAMETERS
from addon.config.zone import EMULATED_SETTINGS
from addon.config.zone import RESPONSE_PHASES
from addon.config.zone import RULESETS
from addon.config.zone import Parameters
from addon.config.zone import Rule
from addon.config.zone import Zone
from addon.expressions import ExpressionError
from addon.expressions import Phase
from addon.expressions import compile_expression

# an action the edge models, in the wrong section, is a mistake; another is reported
MODELLED_ACTIONS = {a for _, a in RULESETS.values()} | {a for x in ACTIONS.values() for a in x}
DEFAULT_PLAN = "pro"  # the plan of the bundled rules.yaml: a fresh Pro zone
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def load_rules(path: str | Path, *more: str | Path) -> Zone:
    """The zone of a rules file, an API response saved as JSON, or a directory of them
    (and of `more` such files or directories, read after it)."""
    source = Source(Path(path), *map(Path, more))
    root = source.read()
    return _Loader(str(path)).zone(root, tuple(source.notes))


def parse_rules(text: str, name: str = "rules.yaml") -> Zone:
    return _Loader(name).zone(compose_text(text, name))


class _Loader(CheckedYaml):
    """The zone: its structure, its rules and what their action parameters mean."""

    def __init__(self, name: str):
        super().__init__(name)
        self.not_emulated: list[str] = []
        self.unknown: list[str] = []  # keys Cloudflare may have that this tool does not know

    def zone(self, root: yaml.Node, read: tuple[str, ...] = ()) -> Zone:
        top = self.mapping(root, "(top level)", TOP_KEYS)
        plan_node = top.get("plan")
        if plan_node is None:
            if not read:  # our own rules file must say it
                raise self.fail(root, "plan", f"missing; one of {', '.join(PLANS)}")
            plan = DEFAULT_PLAN
            read = (*read, f"no zone file: the plan is {DEFAULT_PLAN}")
        else:
            plan = self.value(plan_node, "plan", PLANS)
        settings = dict(DEFAULT_SETTINGS)
        if "settings" in top:
            for key, node in self.mapping(top["settings"], "settings", SETTINGS,
                                          self.unknown).items():
                settings[key] = self.value(node, f"settings.{key}", SETTINGS[key])
                if key not in EMULATED_SETTINGS:
                    self.not_emulated.append(f"settings.{key}")
        https_hosts = self.hosts(top["https_hosts"]) if "https_hosts" in top else ()
        rulesets = {s: tuple(self.rules(top[s], s)) if s in top else () for s in RULESETS}
        return Zone(
            self.name,
            plan,
            settings,
            rulesets["configuration_rules"],
            rulesets["cache_rules"],
            rulesets["compression_rules"],
            rulesets["cache_response_rules"],
            tuple(self.not_emulated),
            https_hosts,
            tuple(self.unknown),
            read,
            ZoneCacheSettings.of(settings),
        )

    def hosts(self, node: yaml.Node) -> tuple[str, ...]:
        """https_hosts: host names known to serve HTTPS (`*.example.com` for subdomains)."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "https_hosts", "must be a list of host names")
        hosts = []
        for n, item in enumerate(node.value, 1):
            host = self.value(item, f"https_hosts[{n}]", STR).strip().lower()
            if not _HOST.match(host):
                raise self.fail(item, f"https_hosts[{n}]",
                                f"{host!r} is not a host name such as example.com or "
                                "*.example.com (no scheme, port or path)")
            hosts.append(host)
        return tuple(hosts)

    def rules(self, node: yaml.Node, section: str) -> list[Rule]:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, section, "must be a list of rules")
        rules = (self.rule(item, section, n) for n, item in enumerate(node.value, 1))
        return [rule for rule in rules if rule is not None]

    def rule(self, node: yaml.Node, section: str, position: int) -> Rule | None:
        """A rule, or None for one whose action this tool does not model (noted)."""
        where = f"{section}[{position}]"
        keys = self.mapping(node, where, RULE_KEYS, self.unknown)
        values = {
            k: self.value(v, f"{where}.{k}", RULE_KEYS[k])
            for k, v in keys.items()
            if RULE_KEYS[k] != MAP and k != "expression"
        }
        phase_name, action = RULESETS[section]
        allowed = ACTIONS.get(section, (action,))
        given = values.get("action", action)
        if given not in allowed and given not in MODELLED_ACTIONS and not (
                difflib.get_close_matches(given, allowed, 1, TYPO)):
            self.not_emulated.append(f"{where}.action {given} ({self.where(keys['action'])}):"
                                     " an action the edge does not model; the rule is skipped")
            return None
        if given not in allowed:
            raise self.fail(
                keys["action"],
                f"{where}.action",
                f"must be {' or '.join(map(repr, allowed))} in {section} (phase {phase_name})",
            )
        if "expression" not in keys:
            raise self.fail(
                node, f"{where}.expression", "missing; write `true` to match everything"
            )
        phase = Phase.RESPONSE if section in RESPONSE_PHASES else Phase.REQUEST
        expression = self.expression(keys["expression"], f"{where}.expression", phase)
        if "action_parameters" not in keys:
            raise self.fail(node, f"{where}.action_parameters", "missing")
        params = self.action_parameters(
            keys["action_parameters"], section, f"{where}.action_parameters",
            values.get("action", action)
        )
        if params is None:
            return None
        return Rule(
            section,
            position,
            values.get("description", ""),
            expression,
            values.get("enabled", True),
            params,
            node.start_mark.line + 1,
        )

    def expression(self, node: yaml.Node, key: str, phase: Phase):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            # `expression: true` unquoted is YAML's boolean: the expression it spells
            source = "true" if self.construct(node, key) else "false"
        else:
            source = self.value(node, key, STR)
        try:
            return compile_expression(source, phase)
        except ExpressionError as e:
            line, column = _source_position(node, e.line, e.column)
            raise RulesFileError(
                f"{self.name}:{line}:{column}: {key}: invalid expression: "
                + str(e).replace("(line ", "(expression line ", 1)
            ) from None

    def action_parameters(self, node: yaml.Node, section: str, where: str, action: str
                          ) -> Parameters | None:
        if action == "set_cache_control":
            return cache_control(self, node, where, self.unknown)
        if action == "set_cache_tags":
            return cache_tags(self, node, where, self.not_emulated)
        if section == "compression_rules":
            keys = self.mapping(node, where, {"algorithms": LIST})
            if "algorithms" not in keys:
                raise self.fail(node, f"{where}.algorithms", "missing; e.g. [{name: gzip}]")
            return CompressParameters(self.algorithms(keys["algorithms"], f"{where}.algorithms"))
        schema, emulated = {
            "cache_rules": (CACHE_PARAMETERS, EMULATED_CACHE_PARAMETERS),
            "cache_response_rules": (CACHE_RESPONSE_PARAMETERS,
                                     EMULATED_CACHE_RESPONSE_PARAMETERS),
        }.get(section, (CONFIG_PARAMETERS, EMULATED_CONFIG_PARAMETERS))
        params = {}
        for key, value in self.mapping(node, where, schema, self.unknown).items():
            if section == "cache_rules" and key in CACHE_SHAPES:
                params[key] = self.shape(value, f"{where}.{key}", CACHE_SHAPES[key])
                self.check_ttl(params[key], value, f"{where}.{key}")
            else:
                params[key] = self.value(value, f"{where}.{key}", schema[key])
            if key not in emulated:
                self.not_emulated.append(f"{where}.{key}")
        if section == "cache_rules":
            for part in CACHE_NOT_EMULATED:
                head, *rest = part.split(".")
                found: Any = params.get(head)
                for name in rest:
                    found = found.get(name) if isinstance(found, dict) else None
                if found not in (None, False, {}):  # false: nothing asked of the edge
                    self.not_emulated.append(f"{where}.{part}")
            return cache_parameters(params)
        if section == "cache_response_rules":
            return CacheResponseParameters(**params)
        return MappingProxyType(params)

    def check_ttl(self, value: dict, node: yaml.Node, where: str) -> None:
        if value.get("mode") == "override_origin" and "default" not in value:
            raise self.fail(node, f"{where}.default", "missing; override_origin needs the TTL "
                            "in seconds")
        if value.get("default", 0) < 0:
            raise self.fail(node, f"{where}.default", "must be 0 or more seconds")
        for n, entry in enumerate(value.get("status_code_ttl") or (), 1):
            key = f"{where}.status_code_ttl[{n}]"
            if ("status_code" in entry) == ("status_code_range" in entry):
                raise self.fail(node, key, "needs exactly one of status_code and "
                                "status_code_range")
            if "value" not in entry or entry["value"] < -1:
                raise self.fail(node, f"{key}.value", "needs seconds: a number of seconds, "
                                "0 (always revalidate) or -1 (no-store)")

    def algorithms(self, node: yaml.Node, where: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, where, "must be a non-empty list such as [{name: gzip}]")
        names = []
        allowed = (*ALGORITHM_CODINGS, *ALGORITHM_KEYWORDS)
        for n, item in enumerate(node.value, 1):
            key = f"{where}[{n}]"
            name_node = self.mapping(item, key, {"name": STR}).get("name")
            if name_node is None:
                raise self.fail(item, f"{key}.name", "missing")
            name = self.value(name_node, f"{key}.name", allowed)
            if names and names[-1] in ALGORITHM_KEYWORDS:
                raise self.fail(
                    item,
                    key,
                    f"`{names[-1]}` must be the last algorithm "
                    "(none, auto and default end the list, facts 1.1.4)",
                )
            if name in names:
                raise self.fail(item, key, f"`{name}` is listed twice")
            names.append(name)
        return tuple(names)

    # -- scalars and mappings --

def _source_position(node: yaml.Node, line: int, column: int) -> tuple[int, int]:
    """Map a position inside an expression string to the YAML file (plain, quoted or block)."""
    mark = node.start_mark
    if node.style in ("|", ">"):
        return mark.line + 1 + line, column + _block_indent(node)
    if line == 1:
        quote = 1 if node.style in ("'", '"') else 0
        return mark.line + 1, mark.column + 1 + quote + column - 1
    return mark.line + line, column


def _block_indent(node: yaml.Node) -> int:
    lines = node.end_mark.buffer.splitlines() if node.end_mark.buffer else []
    first = node.start_mark.line + 1
    if first < len(lines):
        text = lines[first]
        return len(text) - len(text.lstrip(" "))
    return 0
