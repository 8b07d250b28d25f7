"""The shape of the code: a newcomer finds each concept by its name, and no module, class
or function grows past what can be read in one go (modules ~400 lines, classes ~250,
functions ~60). Only the mitmproxy layer imports mitmproxy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "addon").rglob("*.py"))
LIMITS = {"module": 400, "class": 250, "function": 60}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_sizes(path):
    source = path.read_text()
    assert len(source.splitlines()) <= LIMITS["module"], f"{_name(path)} is too long"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            assert lines <= LIMITS[kind], f"{_name(path)}:{node.lineno} {node.name}: {lines}"


def test_only_the_mitmproxy_layer_imports_mitmproxy():
    for path in SOURCES:
        if "mitm" in path.relative_to(ROOT / "addon").parts[:1] or path.name == "edge.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                    a.name for a in node.names]
                assert not any(n.split(".")[0] == "mitmproxy" for n in names), _name(path)


def test_no_package_is_called_edge():
    assert not (ROOT / "addon" / "edge").exists()  # addon/edge.py is the entry script
