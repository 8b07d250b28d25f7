"""Reading YAML nodes against the rules-file schema (config/schema.py): each value checked
where it stands, every error naming the file, line, column and key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from addon.config.schema import BOOL
from addon.config.schema import INT
from addon.config.schema import LIST
from addon.config.schema import MAP
from addon.config.schema import NAMES
from addon.config.schema import STR

SWITCHES = {"on": True, "off": False, "true": True, "false": False}
_INTEGER = re.compile(r"^-?[0-9]+$")
TYPO = 0.85  # an unknown key this close to a known one is taken for a typo


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names file, line, column and key."""


class CheckedYaml:
    def __init__(self, name: str):
        self.name = name  # the file, as errors name it

    def fail(self, node: yaml.Node | None, key: str, message: str) -> RulesFileError:
        if node is None:
            return RulesFileError(f"{self.name}: {key}: {message}")
        return RulesFileError(f"{self.where(node)}: {key}: {message}")

    def where(self, node: yaml.Node) -> str:
        return position(node, self.name)

    # -- structure --

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
        if spec == NAMES:  # [a, b] / ["*"] / "*" or {list: [a, b]} / {all: true}
            if isinstance(node, yaml.ScalarNode) and node.value == "*":
                return ["*"]  # cloudflare-go and cf-terraforming write "all" this way
            if isinstance(node, yaml.MappingNode):
                return self.shape(node, where, {"list": ("list", STR), "all": BOOL})
            return self.shape(node, where, ("list", STR))
        return self.value(node, where, spec)

    def mapping(self, node: yaml.Node, where: str, allowed,
                unknown: list[str] | None = None) -> dict[str, yaml.Node]:
        """The keys of a mapping, each one allowed. With `unknown`, a key Cloudflare may
        have that this tool does not know is noted there and left out, unless it is close
        to a known one (a typo, which would change the meaning silently)."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "must be a mapping of keys to values")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            full = key if where == "(top level)" else f"{where}.{key}"
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                if unknown is not None and not difflib.get_close_matches(
                        str(key), list(allowed), n=1, cutoff=TYPO):
                    unknown.append(f"{full} ({self.where(key_node)})")
                    continue
                hint = (
                    f"; did you mean `{close[0]}`?" if close else f"; allowed: {', '.join(allowed)}"
                )
                raise self.fail(key_node, full, "unknown key" + hint)
            if key in out:
                raise self.fail(key_node, full, "duplicate key")
            if is_null(value_node):
                continue  # the API writes null for "not set"
            out[key] = value_node
        return out

    def construct(self, node: yaml.Node, key: str) -> Any:
        try:
            return construct(node)
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
            if isinstance(value, str) and value.lower() in SWITCHES:
                return SWITCHES[value.lower()]  # "on" in JSON and HCL, as the API writes it
            if not isinstance(value, bool):
                raise self.fail(node, key, f"must be on/off or true/false, not {node.value!r}")
            return value
        if kind == INT:
            if isinstance(value, str) and _INTEGER.match(value):
                return int(value)  # the Terraform provider writes some numbers as strings
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


def position(node: yaml.Node, default: str = "") -> str:
    """file:line:column of a node; a zone read from several files names the node's own."""
    mark = node.start_mark
    name = mark.name if mark.name and not mark.name.startswith("<") else default
    return f"{name}:{mark.line + 1}:{mark.column + 1}"


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def construct(node: yaml.Node) -> Any:
    """A node's Python value, as SafeLoader makes it."""
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)
