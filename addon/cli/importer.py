"""`python -m addon import FILE_OR_DIR... [-o rules.yaml]`: a zone as Cloudflare's API
returns it (config/sources.py), written as the equivalent rules.yaml, so that a user can
read and edit what this tool understood.

Each rule keeps its description and gets a comment naming where it came from (its `ref`,
file and line); the header lists what was read, what is not emulated and what this tool
does not know.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from addon.config.cache_actions import DIRECTIVES
from addon.config.loader import load_rules
from addon.config.schema import BOOL
from addon.config.schema import CACHE_PARAMETERS
from addon.config.schema import CACHE_RESPONSE_PARAMETERS
from addon.config.schema import CACHE_TAGS
from addon.config.schema import CONFIG_PARAMETERS
from addon.config.schema import SETTINGS
from addon.config.sources import Source
from addon.config.yaml_reader import SWITCHES
from addon.config.yaml_reader import RulesFileError
from addon.config.yaml_reader import construct
from addon.config.zone import RULESETS
from addon.config.zone import Zone

KNOWN = {"configuration_rules": CONFIG_PARAMETERS, "cache_rules": CACHE_PARAMETERS,
         "cache_response_rules": CACHE_RESPONSE_PARAMETERS,
         "compression_rules": {"algorithms": None},
         "set_cache_control": dict.fromkeys(DIRECTIVES), "set_cache_tags": CACHE_TAGS,
         }  # fmt: skip


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m addon import", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR",
                   help="API responses saved as JSON, rules files, or directories of them")
    p.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    args = p.parse_args(argv)
    try:
        zone = load_rules(*args.paths)  # everything checked as the edge would check it
        root = Source(*args.paths).read()
    except RulesFileError as e:
        print(f"import: {e}", file=sys.stderr)
        return 2
    text = render(root, zone, args.paths)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"import: {args.output}: plan {zone.plan}, {zone.rule_count} rule(s)",
              file=sys.stderr)
    return 0


def render(root: yaml.Node, zone: Zone, paths: list[Path]) -> str:
    top = {k.value: v for k, v in root.value} if isinstance(root, yaml.MappingNode) else {}
    out = [f"# Imported by `python -m addon import` from {', '.join(map(str, paths))}.",
           "# Edit freely: this is the edge's rules file (docs/rules-file.md)."]
    out += _comment_block("Read", zone.read)
    out += _comment_block("Accepted but not emulated", zone.not_emulated)
    out += _comment_block("Not known to this tool, left out", zone.unknown)
    out += ["", f"plan: {zone.plan}"]
    settings = construct(top["settings"]) if "settings" in top else {}
    kept = {k: _switch(v) if SETTINGS.get(k) == BOOL else v
            for k, v in settings.items() if k in SETTINGS}
    if kept:
        out += ["", "settings:"] + _indent(_dump(kept), 2)
    for section in RULESETS:
        if section in top:
            out += ["", f"{section}:  # phase {RULESETS[section][0]}"]
            for item in top[section].value:
                out += _rule(section, item)
    rest = {k: construct(v) for k, v in top.items()
            if k not in ("plan", "settings", *RULESETS)}
    if rest:
        out += [""] + _dump(rest)
    return "\n".join(out) + "\n"


def _rule(section: str, node: yaml.Node) -> list[str]:
    rule = construct(node)
    mark = node.start_mark
    where = f"{Path(mark.name).name}:{mark.line + 1}"
    ref = rule.get("ref") or rule.get("id")
    head = f"  # {where}" + (f", ref {ref}" if ref else "")
    params = rule.get("action_parameters") or {}
    action = rule.get("action") or RULESETS[section][1]
    known = KNOWN.get(action) or KNOWN[section]
    kept: dict[str, Any] = {}
    if action != RULESETS[section][1]:
        kept["action"] = action
    if rule.get("description"):
        kept["description"] = rule["description"]
    expression = rule.get("expression")
    kept["expression"] = ("true" if expression is True else "false" if expression is False
                          else expression)
    if rule.get("enabled") in (False, "false", "off"):
        kept["enabled"] = False
    kept["action_parameters"] = {k: v for k, v in params.items()
                                 if k in known and v is not None}
    return [head, *_indent(_dump([kept]), 2)]



def _switch(value: Any) -> Any:
    return SWITCHES.get(value.lower(), value) if isinstance(value, str) else value


def _dump(value: Any) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    return text.rstrip("\n").split("\n")


def _indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + line for line in lines]


def _comment_block(title: str, lines: tuple[str, ...]) -> list[str]:
    if not lines:
        return []
    return ["#", f"# {title}:", *(f"#   {line}" for line in lines)]
