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
from addon.config.parameters import CacheResponseParameters
from addon.config.parameters import CompressParameters
from addon.config.parameters import cache_parameters
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
from addon.html.features import FEATURES

BOOL, STR, INT, MAP, LIST, ANY = "boolean", "string", "integer", "mapping", "list", "any"

# Zone settings (API setting ids) -> allowed values (a type name or a tuple of strings).
SETTINGS: dict[str, Any] = {
    "brotli": BOOL, **dict.fromkeys(FEATURES, BOOL), "fonts": BOOL,
    "polish": ("off", "lossless", "lossy", "webp"),
}  # fmt: skip

# set_cache_settings action_parameters (facts 5.1.1-5.1.5)
CACHE_PARAMETERS: dict[str, Any] = {
    "cache": BOOL, "respect_strong_etags": BOOL, "origin_error_page_passthru": BOOL,
    "origin_cache_control": BOOL, "edge_ttl": MAP, "browser_ttl": MAP, "cache_key": MAP,
    "cache_reserve": MAP, "serve_stale": MAP, "origin_range_requests": MAP, "vary": MAP,
    "additional_cacheable_ports": LIST, "read_timeout": INT,
}  # fmt: skip

# The inside of the cache settings the cache emulates (facts 5.1.2 to 5.1.5). A dict is a
# mapping of these specs, ("list", spec) a list of them, NAMES a query-string selection.
NAMES = "names"
TTL_MODES = ("respect_origin", "bypass_by_default", "override_origin")
STATUS_RANGE = {"from": INT, "to": INT}
CACHE_SHAPES: dict[str, Any] = {
    "edge_ttl": {"mode": TTL_MODES, "default": INT,
                 "status_code_ttl": ("list", {"status_code": INT,
                                              "status_code_range": STATUS_RANGE,
                                              "value": INT})},
    "browser_ttl": {"mode": TTL_MODES, "default": INT},
    "serve_stale": {"disable_stale_while_updating": BOOL},
    "cache_key": {
        "ignore_query_strings_order": BOOL, "cache_deception_armor": BOOL,
        "cache_by_device_type": BOOL,
        "custom_key": {
            "query_string": {"include": NAMES, "exclude": NAMES},
            "header": {"include": ("list", STR), "check_presence": ("list", STR),
                       "contains": ("map", ("list", STR)), "exclude_origin": BOOL},
            "cookie": {"include": ("list", STR), "check_presence": ("list", STR)},
            "host": {"resolved": BOOL},
            "user": {"device_type": BOOL, "geo": BOOL, "lang": BOOL},
        },
    },
}  # fmt: skip
# parts of those the cache accepts but does not act on (reported once at load)
CACHE_NOT_EMULATED = ("cache_key.cache_deception_armor", "cache_key.cache_by_device_type",
                      "cache_key.custom_key.user")  # fmt: skip

# set_cache_settings in http_response_cache_settings (facts 5.2.2)
CACHE_RESPONSE_PARAMETERS: dict[str, Any] = {
    "strip_etags": BOOL, "strip_last_modified": BOOL, "strip_set_cookie": BOOL,
}  # fmt: skip

# set_config action_parameters (facts 4.2, 4.3)
CONFIG_PARAMETERS: dict[str, Any] = {
    **dict.fromkeys(FEATURES, BOOL), "bic": BOOL, "disable_rum": BOOL, "disable_zaraz": BOOL,
    "fonts": BOOL, "hotlink_protection": BOOL, "opportunistic_encryption": BOOL,
    "disable_apps": BOOL, "disable_railgun": BOOL, "server_side_excludes": BOOL, "sxg": BOOL,
    "autominify": MAP, "content_converter": BOOL,
    "security_level": ("off", "essentially_off", "low", "medium", "high", "under_attack"),
    "polish": ("off", "lossless", "lossy", "webp"),
    "request_body_buffering": ("standard", "full", "none"),
    "response_body_buffering": ("standard", "none"),
    "ssl": ("off", "flexible", "full", "strict", "origin_pull"),
}  # fmt: skip

# Rule-level keys of Cloudflare's API besides expression and action_parameters.
RULE_KEYS = {
    "description": STR,
    "expression": STR,
    "enabled": BOOL,
    "action_parameters": MAP,
    "action": STR,
    "id": STR,
    "ref": STR,
    "version": STR,
    "last_updated": STR,
    "logging": MAP,
}
TOP_KEYS = ("plan", "settings", "https_hosts", *RULESETS)
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names file, line, column and key."""


def load_rules(path: str | Path) -> Zone:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesFileError(f"{path}: cannot read the rules file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise RulesFileError(f"{path}: the rules file is not UTF-8: {e}") from e
    return parse_rules(text, str(path))


def parse_rules(text: str, name: str = "rules.yaml") -> Zone:
    return _Loader(name).zone(text)


class _Loader:
    def __init__(self, name: str):
        self.name = name
        self.not_emulated: list[str] = []

    def fail(self, node: yaml.Node | None, key: str, message: str) -> RulesFileError:
        if node is None:
            return RulesFileError(f"{self.name}: {key}: {message}")
        mark = node.start_mark
        return RulesFileError(f"{self.name}:{mark.line + 1}:{mark.column + 1}: {key}: {message}")

    # -- structure --

    def zone(self, text: str) -> Zone:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            where = f"{mark.line + 1}:{mark.column + 1}: " if mark else ""
            raise RulesFileError(f"{self.name}:{where}invalid YAML: {e.problem}") from None
        except yaml.YAMLError as e:
            raise RulesFileError(f"{self.name}: invalid YAML: {e}") from None
        if root is None:
            raise RulesFileError(f"{self.name}: the rules file is empty; it needs at least `plan`")
        top = self.mapping(root, "(top level)", TOP_KEYS)
        plan_node = top.get("plan")
        if plan_node is None:
            raise self.fail(root, "plan", f"missing; one of {', '.join(PLANS)}")
        plan = self.value(plan_node, "plan", PLANS)
        settings = dict(DEFAULT_SETTINGS)
        if "settings" in top:
            for key, node in self.mapping(top["settings"], "settings", SETTINGS).items():
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
        return [self.rule(item, section, n) for n, item in enumerate(node.value, 1)]

    def rule(self, node: yaml.Node, section: str, position: int) -> Rule:
        where = f"{section}[{position}]"
        keys = self.mapping(node, where, RULE_KEYS)
        values = {
            k: self.value(v, f"{where}.{k}", RULE_KEYS[k])
            for k, v in keys.items()
            if RULE_KEYS[k] != MAP and k != "expression"
        }
        phase_name, action = RULESETS[section]
        if "action" in values and values["action"] != action:
            raise self.fail(
                keys["action"],
                f"{where}.action",
                f"must be {action!r} in {section} (phase {phase_name})",
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
            keys["action_parameters"], section, f"{where}.action_parameters"
        )
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

    def action_parameters(self, node: yaml.Node, section: str, where: str) -> Parameters:
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
        for key, value in self.mapping(node, where, schema).items():
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
                if found is not None:
                    self.not_emulated.append(f"{where}.{part}")
            return cache_parameters(params)
        if section == "cache_response_rules":
            return CacheResponseParameters(**params)
        return MappingProxyType(params)

    def shape(self, node: yaml.Node, where: str, spec: Any) -> Any:
        """A nested value checked against its spec, with the position of the first error."""
        if isinstance(spec, dict):
            return {k: self.shape(v, f"{where}.{k}", spec[k])
                    for k, v in self.mapping(node, where, spec).items()}
        if isinstance(spec, tuple) and spec and spec[0] in ("list", "map"):
            if spec[0] == "list":
                if not isinstance(node, yaml.SequenceNode):
                    raise self.fail(node, where, "must be a list")
                return [self.shape(item, f"{where}[{n}]", spec[1])
                        for n, item in enumerate(node.value, 1)]
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, where, "must be a mapping")
            out = {}
            for key_node, value_node in node.value:
                key = self.value(key_node, where, STR)
                out[key] = self.shape(value_node, f"{where}.{key}", spec[1])
                if not 1 <= len(out[key]) <= 3:  # facts 1.5.7: 1 to 3 values
                    raise self.fail(value_node, f"{where}.{key}", "must list 1 to 3 values")
            return out
        if spec == NAMES:  # [a, b] / ["*"] or {list: [a, b]} / {all: true}
            if isinstance(node, yaml.MappingNode):
                return self.shape(node, where, {"list": ("list", STR), "all": BOOL})
            return self.shape(node, where, ("list", STR))
        return self.value(node, where, spec)

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

    def mapping(self, node: yaml.Node, where: str, allowed) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "must be a mapping of keys to values")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            full = key if where == "(top level)" else f"{where}.{key}"
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                hint = (
                    f"; did you mean `{close[0]}`?" if close else f"; allowed: {', '.join(allowed)}"
                )
                raise self.fail(key_node, full, "unknown key" + hint)
            if key in out:
                raise self.fail(key_node, full, "duplicate key")
            out[key] = value_node
        return out

    def construct(self, node: yaml.Node, key: str) -> Any:
        try:
            return _construct(node)
        except yaml.YAMLError as e:  # e.g. a !!python/... tag, which SafeLoader refuses
            problem = getattr(e, "problem", None) or str(e)
            raise self.fail(node, key, f"invalid YAML value: {problem}") from None

    def value(self, node: yaml.Node, key: str, kind: Any) -> Any:
        if kind == MAP:
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, key, "must be a mapping")
            return self.construct(node, key)
        if kind == LIST:
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, key, "must be a list")
            return self.construct(node, key)
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"must be a {kind if isinstance(kind, str) else 'string'}")
        value = self.construct(node, key)
        if kind == BOOL:
            if not isinstance(value, bool):
                raise self.fail(node, key, f"must be on/off or true/false, not {node.value!r}")
            return value
        if kind == INT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.fail(node, key, f"must be an integer, not {node.value!r}")
            return value
        if kind == STR:
            if node.tag != "tag:yaml.org,2002:str":
                raise self.fail(node, key, f"must be a string, not {node.value!r}")
            return value
        # a tuple of allowed strings; YAML reads a bare `off` as false
        text = "off" if value is False else "on" if value is True else str(value)
        if text not in kind:
            close = difflib.get_close_matches(text, kind, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise self.fail(node, key, f"must be one of {', '.join(kind)}, not {text!r}{hint}")
        return text


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


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
