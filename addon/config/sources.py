"""Where a zone comes from: our rules.yaml, Cloudflare's API responses saved as JSON, or a
directory holding any mix of them. Each file is read into YAML nodes (JSON is YAML) that
remember their own file, line and column, then put into the rules file's shape, so that
one checker (loader.py) reads them all and every error names the file it is in.

The API shapes (docs/rules-file.md, "Bring your zone"):
- a ruleset, as `GET .../rulesets/phases/{phase}/entrypoint` or `.../rulesets/{id}` returns
  it: `{"result": {"phase": ..., "rules": [...]}}`, or bare;
- the zone settings, `GET /zones/{id}/settings`: `{"result": [{"id": ..., "value": ...}]}`;
  one setting, `GET /zones/{id}/settings/{name}`: `{"result": {"id": ..., "value": ...}}`;
- the zone, `GET /zones/{id}`: its `plan.legacy_id` is the plan.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from addon.config import page_rules
from addon.config.terraform import interpolated
from addon.config.terraform import read_terraform
from addon.config.yaml_reader import RulesFileError
from addon.config.yaml_reader import construct
from addon.config.yaml_reader import is_null
from addon.config.yaml_reader import position
from addon.config.zone import RULESETS

STR_TAG, MAP_TAG, SEQ_TAG = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:map",
                             "tag:yaml.org,2002:seq")
PHASES = {phase: section for section, (phase, _) in RULESETS.items()}
READ = (".yaml", ".yml", ".json", ".tf")  # the files of a directory that are read
ENVELOPE = ("result", "success", "errors", "messages", "result_info")
RULESET_KEYS = ("id", "name", "description", "kind", "version", "phase", "last_updated",
                "rules", "source")  # fmt: skip
_NOT_FOUND = re.compile(r"not found|could not find|does not exist", re.I)
OURS = "rules.yaml"  # in a directory, applied last: what the API does not hold


class Source:
    """One zone's files, read and merged into a rules-file node tree."""

    def __init__(self, path: Path, *more: Path):
        self.path = path
        self.more = more  # further files or directories, read after `path`
        self.notes: list[str] = []  # what was read from where, and what was left out
        self.plan: yaml.Node | None = None
        self.settings: list[tuple[yaml.Node, yaml.Node]] = []
        self.sections: dict[str, list[yaml.Node]] = {}
        self.section_from: dict[str, str] = {}  # section -> the API file that gave it
        self.other: list[tuple[yaml.Node, yaml.Node]] = []  # rules.yaml's other keys
        self.page_rules: list[page_rules.PageRule] = []

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in (self.path, *self.more):
            if not path.is_dir():
                found.append(path)
                continue
            found += sorted(p for p in path.iterdir()
                            if p.suffix in READ and p.is_file() and not p.name.startswith("."))
        return sorted(found, key=lambda p: p.name == OURS)  # ours last (a stable sort)

    def read(self) -> yaml.MappingNode:
        files = self.files()
        if not files:
            raise RulesFileError(f"{self.path}: no rules file in this directory (looked for "
                                 f"{', '.join('*' + s for s in READ)})")
        roots = [(f, None if f.suffix == ".tf" else compose(f)) for f in files]
        first = roots[0][1]
        if len(roots) == 1 and not self.path.is_dir() and first is not None and _ours(first):
            return first  # one rules file: checked as it stands
        for f, root in roots:
            if root is None:
                self.terraform(f)
            else:
                self.add(f, root)
        return self.merged()

    def terraform(self, path: Path) -> None:
        other = 0
        for kind, name, body in read_terraform(path, _read_text(path)):
            if kind == "cloudflare_ruleset":
                self.ruleset(path, body, terraform=True)
            elif kind == "cloudflare_zone_settings_override":
                settings = _get(body, "settings")
                if isinstance(settings, yaml.MappingNode):
                    self.settings.extend(settings.value)
                    self.notes.append(f"{path.name}: {kind}.{name}, "
                                      f"{len(settings.value)} zone setting(s)")
            elif kind == "cloudflare_zone_setting":
                key, value = _get(body, "setting_id"), _get(body, "value")
                if key is None or value is None:
                    raise _fail(body, f"{kind}.{name}: needs setting_id and value")
                self.settings.append((key, value))
                self.notes.append(f"{path.name}: {kind}.{name}, the zone setting {_text(key)}")
            elif kind == "cloudflare_page_rule":
                actions = _get(body, "actions")
                target = _get(body, "target")
                if not isinstance(actions, yaml.MappingNode) or target is None:
                    raise _fail(body, f"{kind}.{name}: needs target and actions")
                self.page_rule(path, body, _text(target), construct(actions),
                               _text(_get(body, "priority")) or "1",
                               _text(_get(body, "status")) in ("", "active"))
            elif kind == "cloudflare_zone" and isinstance(_get(body, "plan"), yaml.ScalarNode):
                self.plan = _get(body, "plan")
                self.notes.append(f"{path.name}: {kind}.{name}, plan {_text(self.plan)}")
            else:
                other += 1
        if other:
            self.notes.append(f"{path.name}: {other} other resource(s) left alone")

    def add(self, path: Path, root: yaml.Node) -> None:
        if _ours(root):
            assert isinstance(root, yaml.MappingNode)
            self.ours(root)
            return
        body = root
        if isinstance(root, yaml.MappingNode) and "result" in _keys(root):
            unknown = _keys(root) - set(ENVELOPE)
            if unknown:
                raise _fail(root, f"not a Cloudflare API response: unexpected "
                            f"{', '.join(sorted(unknown))} beside result")
            body = _get(root, "result")
            if body is None or is_null(body):
                errors = _messages(_get(root, "errors"))
                if errors and all(_NOT_FOUND.search(e) for e in errors):
                    self.notes.append(f"{path.name}: nothing to read (the API answered: "
                                      f"{'; '.join(errors)})")  # a phase without rules
                    return
                raise _fail(root, "the API response has no result" + (
                    f"; the API answered: {'; '.join(errors)}" if errors else ""))
        if isinstance(body, yaml.SequenceNode):
            self.setting_list(path, body)
        elif isinstance(body, yaml.MappingNode) and {"id", "value"} <= _keys(body) and not (
                _keys(body) & {"rules", "phase"}):
            self.setting(body)
            self.notes.append(f"{path.name}: the zone setting {_text(_get(body, 'id'))}")
        elif isinstance(body, yaml.MappingNode) and "plan" in _keys(body):
            self.zone(path, body)
        elif isinstance(body, yaml.MappingNode) and _keys(body) & {"rules", "phase"}:
            self.ruleset(path, body)
        else:
            raise _fail(body, "not a shape this tool reads: expected a ruleset (phase, rules), "
                        "zone settings ([{id, value}]), a zone (plan) or a rules file (plan, "
                        "settings, cache_rules, ...)")

    def ours(self, root: yaml.MappingNode) -> None:
        for key, value in root.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name == "plan":
                self.plan = value
            elif name == "settings" and isinstance(value, yaml.MappingNode):
                self.settings.extend(value.value)
            elif name in RULESETS and isinstance(value, yaml.SequenceNode):
                self.sections.setdefault(name, []).extend(value.value)
            elif name in RULESETS and is_null(value):
                continue
            else:  # checked by the loader, where it stands
                self.other.append((key, value))

    def setting_list(self, path: Path, body: yaml.SequenceNode) -> None:
        if body.value and all(isinstance(i, yaml.MappingNode) and {"targets", "actions"}
                              <= _keys(i) for i in body.value):
            for item in body.value:
                self.page_rule_api(path, item)
            return
        for item in body.value:
            if not (isinstance(item, yaml.MappingNode) and {"id", "value"} <= _keys(item)):
                raise _fail(item, "expected a zone setting {id, value} (or a Page Rule "
                            "{targets, actions}); a list of other things is not read")
            self.setting(item)
        self.notes.append(f"{path.name}: {len(body.value)} zone setting(s)")

    def page_rule_api(self, path: Path, item: yaml.MappingNode) -> None:
        rule = construct(item)
        targets = [t.get("constraint", {}).get("value") for t in rule.get("targets") or ()
                   if isinstance(t, dict)]
        actions = {a.get("id"): a.get("value") for a in rule.get("actions") or ()
                   if isinstance(a, dict)}
        if not targets or not isinstance(targets[0], str):
            raise _fail(item, "a Page Rule without a URL target")
        self.page_rule(path, item, targets[0], actions, rule.get("priority") or 1,
                       rule.get("status", "active") == "active")

    def page_rule(self, path: Path, node: yaml.Node, target: str, actions: dict,
                  priority: Any, enabled: bool) -> None:
        where = f"{path.name}:{node.start_mark.line + 1}"
        converted = page_rules.convert(where, node.start_mark, target, actions,
                                       int(priority) if str(priority).isdigit() else 1,
                                       enabled)
        self.page_rules.append(converted)
        self.notes += converted.notes
        self.notes.append(f"{where}: page rule {target!r} as "
                          f"{' and '.join(converted.rules) or 'nothing'}")

    def setting(self, item: yaml.MappingNode) -> None:
        key, value = _get(item, "id"), _get(item, "value")
        assert key is not None and value is not None
        self.settings.append((key, value))

    def zone(self, path: Path, body: yaml.MappingNode) -> None:
        plan = _get(body, "plan")
        legacy = _get(plan, "legacy_id") if isinstance(plan, yaml.MappingNode) else None
        if legacy is None:
            raise _fail(plan or body, "the zone's plan has no legacy_id (free, pro, business "
                        "or enterprise)")
        self.plan = legacy
        self.notes.append(f"{path.name}: the zone {_text(_get(body, 'name')) or ''}, plan "
                          f"{_text(legacy)}".replace("  ", " "))

    def ruleset(self, path: Path, body: yaml.MappingNode, terraform: bool = False) -> None:
        phase_node = _get(body, "phase")
        if phase_node is None:
            raise _fail(body, "the ruleset has no phase; save the entrypoint of a phase "
                        f"({', '.join(PHASES)})")
        phase = _text(phase_node)
        if terraform and interpolated(phase_node) is not None:
            raise _fail(phase_node, f"phase {phase}: only Terraform can resolve it; write "
                        "the phase's name")
        section = PHASES.get(phase)
        if section is None:
            self.notes.append(f"{path.name}: phase {phase} is not emulated, its rules are "
                              "not read")
            return
        if section in self.section_from:
            raise _fail(phase_node, f"a second ruleset for phase {phase} (the first is in "
                        f"{self.section_from[section]}); a zone has one per phase")
        self.section_from[section] = path.name
        rules = _get(body, "rules")
        if rules is not None and not is_null(rules) and not isinstance(rules,
                                                                        yaml.SequenceNode):
            raise _fail(rules, "rules: must be a list of rules")
        items = rules.value if isinstance(rules, yaml.SequenceNode) else []
        if terraform:
            items = [item for item in items if self.resolvable(path, section, item)]
        self.sections.setdefault(section, []).extend(items)
        self.notes.append(f"{path.name}: phase {phase}, {len(items)} rule(s) as {section}")

    def resolvable(self, path: Path, section: str, rule: yaml.Node) -> bool:
        """A Terraform rule whose expression and parameters need no Terraform to read."""
        for key in ("expression", "action_parameters", "enabled", "action"):
            found = interpolated(_get(rule, key)) if _get(rule, key) is not None else None
            if found is not None:
                mark = found.start_mark
                self.notes.append(f"{path.name}:{mark.line + 1}: a rule of {section} uses "
                                  f"{found.value!r} in its {key}, which only Terraform can "
                                  "resolve: the rule is skipped")
                return False
        return True

    def merged(self) -> yaml.MappingNode:
        mark = _mark(self.path)
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        if self.plan is not None:
            pairs.append((_scalar("plan", self.plan.start_mark), self.plan))
        if self.settings:
            pairs.append((_scalar("settings", self.settings[0][0].start_mark),
                          yaml.MappingNode(MAP_TAG, _last_wins(self.settings), mark, mark)))
        first = sorted(self.page_rules, key=lambda p: p.priority)  # the highest wins: last
        for section in RULESETS:
            items = [p.rules[section] for p in first if section in p.rules]
            items += self.sections.get(section, [])  # Rules beat Page Rules (facts 4.5)
            if section in self.sections or items:
                pairs.append((_scalar(section, mark),
                              yaml.SequenceNode(SEQ_TAG, items, mark, mark)))
        pairs.extend(self.other)
        return yaml.MappingNode(MAP_TAG, pairs, mark, mark)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesFileError(f"{path}: cannot read the rules file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise RulesFileError(f"{path}: the rules file is not UTF-8: {e}") from e


def compose(path: Path) -> yaml.Node:
    """A file's YAML nodes, their marks naming the file."""
    text = _read_text(path)
    if path.suffix == ".json":  # JSON may indent with tabs, YAML may not
        return compose_text(text.replace("\t", " "), str(path), "JSON")
    return compose_text(text, str(path))


def compose_text(text: str, name: str, kind: str = "YAML") -> yaml.Node:
    """A text's YAML nodes, their marks naming `name`; errors give its line and column."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # refuses control characters already
        loader.name = name  # every mark names this file
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark else ""
        raise RulesFileError(f"{name}:{where}invalid {kind}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise RulesFileError(f"{name}: invalid {kind}: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise RulesFileError(f"{name}: the rules file is empty; it needs at least `plan`")
    return root


def signature(path: Path) -> tuple[tuple[str, float], ...]:
    """What changes when any file of the zone changes (for the reload watcher)."""
    try:
        files = Source(path).files()
        return tuple((str(f), f.stat().st_mtime) for f in files)
    except OSError:
        return ()


def _last_wins(pairs: list[tuple[yaml.Node, yaml.Node]]) -> list[tuple[yaml.Node, yaml.Node]]:
    """Settings from several files: a later file's value replaces an earlier one's."""
    by_key: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in pairs:
        by_key.pop(_text(key), None)
        by_key[_text(key)] = (key, value)
    return list(by_key.values())


def _ours(root: yaml.Node) -> bool:
    """Our rules file, rather than an API response or a bare ruleset."""
    return isinstance(root, yaml.MappingNode) and not _keys(root) & {"result", *RULESET_KEYS}


def _messages(errors: yaml.Node | None) -> list[str]:
    """The API's error messages, as `code: message`."""
    out = []
    for item in errors.value if isinstance(errors, yaml.SequenceNode) else ():
        code, message = _text(_get(item, "code")), _text(_get(item, "message"))
        out.append(f"{code}: {message}" if code else message)
    return out



def _keys(node: yaml.MappingNode) -> set[str]:
    return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _text(node: yaml.Node | None) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else ""



def _scalar(text: str, mark: yaml.Mark) -> yaml.ScalarNode:
    return yaml.ScalarNode(STR_TAG, text, mark, mark)


def _mark(path: Path) -> yaml.Mark:
    return yaml.Mark(str(path), 0, 0, 0, None, None)


def _fail(node: yaml.Node, message: str) -> RulesFileError:
    return RulesFileError(f"{position(node)}: {message}")
