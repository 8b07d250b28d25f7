"""Command-line tools around the edge: `explain` (one decision, no proxy), `demo` (a
bundled origin with the proxy in front of it) and `import` (a zone from Cloudflare's API
as a rules.yaml)."""

from __future__ import annotations

USAGE = """usage: python -m addon COMMAND ...

commands:
  explain   what Cloudflare would do to one response, without a proxy
  demo      a demo origin with the edge in front of it, and a table of what happened
  import    Cloudflare's API responses (JSON files, directories) as a rules.yaml

`python -m addon COMMAND --help` for a command's options."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "explain":
        from addon.cli import explain

        return explain.main(rest)
    if command == "demo":
        from addon.cli import demo

        return demo.main(rest)
    if command == "import":
        from addon.cli import importer

        return importer.main(rest)
    print(f"unknown command {command!r}\n\n{USAGE}")
    return 2
