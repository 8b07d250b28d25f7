"""The docs hold together: every "facts N.M" the product cites is an entry of docs/facts.md,
every log field is documented, every relative link resolves, and nothing points outside the
repository."""
from __future__ import annotations

import re
from pathlib import Path

from addon.exchange.record import FIELDS
from addon.exchange.record import docs_table

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT / "docs" / "facts.md"
CITATION = re.compile(r"facts (\d+(?:\.\d+)*)")


def _sources() -> list[Path]:
    files = [*ROOT.joinpath("addon").rglob("*.py"), *ROOT.joinpath("addon").rglob("*.js"),
             *ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md", ROOT / "rules.yaml"]
    return sorted(f for f in files if "__pycache__" not in f.parts)


def _entries() -> set[str]:
    text = FACTS.read_text()
    rows = re.findall(r"^\| (\d+(?:\.\d+)*) \|", text, re.M)
    headings = re.findall(r"^#+ (\d+(?:\.\d+)*)\.? ", text, re.M)
    return set(rows) | set(headings)


def test_every_facts_citation_resolves_in_docs_facts():
    entries = _entries()
    missing = {}
    for f in _sources():
        for number in CITATION.findall(f.read_text(errors="replace")):
            if number.rstrip(".") not in entries:
                missing.setdefault(number, str(f.relative_to(ROOT)))
    assert not missing, f"cited but not in docs/facts.md: {missing}"


def test_the_check_itself_sees_a_missing_entry():
    assert "99.9" not in _entries() and "2.1" in _entries() and "6.18" in _entries()


def test_nothing_points_at_the_teams_reference():
    for f in [*_sources(), ROOT / "Makefile", ROOT / "pyproject.toml"]:
        text = f.read_text(errors="replace")
        assert "shared/reference" not in text and "cloudflare-facts.md" not in text, f


def test_the_log_fields_table_is_the_records():
    log = (ROOT / "docs" / "log.md").read_text()
    assert docs_table() in log, "docs/log.md's table differs from Record; it should be:\n" + (
        docs_table())
    assert all(f"`{name}`" in log for name in FIELDS)


def test_every_path_the_docs_name_exists():
    for f in [ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]:
        for path in re.findall(r"\b((?:addon|tests|bench)/[\w/]+\.(?:py|js|md))", f.read_text()):
            assert (ROOT / path).exists(), f"{f.relative_to(ROOT)} names {path}"


def test_relative_links_in_the_docs_resolve():
    for f in [ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", f.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (f.parent / target).exists(), f"{f.relative_to(ROOT)}: {target}"


def test_readme_is_a_first_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 260
