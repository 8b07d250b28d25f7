"""Terraform files (HCL) as the zone's source: the Cloudflare provider's resources read into
the same YAML nodes as an API response (sources.py), so one checker reads them all.

Read: `cloudflare_ruleset` (provider v4: nested blocks, `rules { ... }` repeated; v5:
attributes with the API's nesting, `rules = [{ ... }]`), `cloudflare_zone_settings_override`
(v4: one `settings { ... }` block), `cloudflare_zone_setting` (v5: one resource per
setting), and `plan` of `cloudflare_zone`. Other resources, variables and outputs are not the
edge's business and are left alone.

Terraform's variables and interpolations (`var.zone_id`, "${...}") cannot be resolved without
Terraform: ignored where the edge does not read them (zone_id, account_id, names), and inside
a rule's expression or parameters reported with the file and line, and that rule skipped.

python-hcl2 (7.x) parses; its 7.x line gives each block its first line (`with_meta`), which
8.x no longer does. A value's line is its block's; a v5 rule's is found in the text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import yaml
from lark.exceptions import UnexpectedCharacters
from lark.exceptions import UnexpectedInput
from lark.exceptions import UnexpectedToken

from addon.config.yaml_reader import RulesFileError

TAGS = {bool: "bool", int: "int", float: "float", str: "str"}
REPEATED = ("rules", "algorithms", "status_code_ttl")  # v4 blocks that may repeat
META = ("__start_line__", "__end_line__")
INTERPOLATION = re.compile(r"\$\{")


class TerraformFile:
    """One .tf file: its resources as (kind, name, YAML node) for sources.Source."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text
        self.lines = text.splitlines()

    def resources(self) -> list[tuple[str, str, yaml.Node]]:
        try:
            data = hcl2.loads(self.text, with_meta=True)
        except UnexpectedInput as e:
            raise RulesFileError(f"{self.path}:{e.line}:{e.column}: invalid HCL: "
                                 f"{_lark_problem(e)}") from None
        except Exception as e:  # python-hcl2 reports some errors as plain exceptions
            raise RulesFileError(f"{self.path}: invalid HCL: {e}") from None
        out = []
        for group in data.get("resource", []):
            for kind, named in group.items():
                for name, body in named.items():
                    line = body.get("__start_line__", 1)
                    out.append((kind, name, self.node(body, line)))
        return out

    def node(self, value: Any, line: int, key: str = "") -> yaml.Node:
        """A value as YAML nodes marked with this file and `line` (a block's own line for
        what is inside it). v4 blocks that occur once become mappings."""
        mark = yaml.Mark(str(self.path), 0, line - 1, 0, None, None)
        if isinstance(value, dict):
            inner = value.get("__start_line__", line)
            pairs = []
            for k, v in value.items():
                if k in META:
                    continue
                at = self._line_of(k, v, inner)
                key_mark = yaml.Mark(str(self.path), 0, at - 1, 0, None, None)
                pairs.append((yaml.ScalarNode("tag:yaml.org,2002:str", k, key_mark, key_mark),
                              self.node(v, at, k)))
            return yaml.MappingNode("tag:yaml.org,2002:map", pairs, mark, mark,
                                    flow_style=False)
        if isinstance(value, list):
            blocks = value and all(isinstance(v, dict) and "__start_line__" in v for v in value)
            if blocks and len(value) == 1 and key not in REPEATED:
                return self.node(value[0], line, key)  # v4: `action_parameters { ... }`
            items = [self.node(v, self._item_line(v, line), key) for v in value]
            return yaml.SequenceNode("tag:yaml.org,2002:seq", items, mark, mark,
                                     flow_style=False)
        if value is None:
            return yaml.ScalarNode("tag:yaml.org,2002:null", "null", mark, mark)
        tag = TAGS.get(type(value), "str")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return yaml.ScalarNode(f"tag:yaml.org,2002:{tag}", text, mark, mark)

    def _item_line(self, item: Any, line: int) -> int:
        if isinstance(item, dict):
            if "__start_line__" in item:
                return item["__start_line__"]
            expression = item.get("expression")
            if isinstance(expression, str):  # a v5 rule: find it in the text
                return self._find(expression.split("\n", 1)[0], line)
        return line

    def _line_of(self, key: str, value: Any, line: int) -> int:
        if isinstance(value, dict) and "__start_line__" in value:
            return value["__start_line__"]
        if isinstance(value, list) and value and isinstance(value[0], dict) and (
                "__start_line__" in value[0]):
            return value[0]["__start_line__"]
        return self._find_key(key, line)

    def _find(self, needle: str, after: int) -> int:
        escaped = needle.replace("\\", "\\\\").replace('"', '\\"')
        for n in range(max(after - 1, 0), len(self.lines)):
            if needle in self.lines[n] or escaped in self.lines[n]:
                return n + 1
        return after

    def _find_key(self, key: str, after: int) -> int:
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for n in range(max(after - 1, 0), min(after + 200, len(self.lines))):
            if pattern.match(self.lines[n]):
                return n + 1
        return after


def read_terraform(path: Path, text: str) -> list[tuple[str, str, yaml.Node]]:
    """The file's resources: (type, name, body as YAML nodes)."""
    return TerraformFile(path, text).resources()


def interpolated(node: yaml.Node) -> yaml.Node | None:
    """The first value inside `node` that only Terraform could resolve."""
    if isinstance(node, yaml.ScalarNode):
        return node if node.tag.endswith(":str") and INTERPOLATION.search(node.value) else None
    children = (node.value if isinstance(node, yaml.SequenceNode)
                else [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else [])
    for child in children:
        found = interpolated(child)
        if found is not None:
            return found
    return None


def _lark_problem(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedToken):
        text = str(e.token).strip().splitlines()
        return f"unexpected {text[0][:30]!r}" if text else "unexpected end of line"
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {e.char!r}"
    return type(e).__name__
