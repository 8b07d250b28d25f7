"""`python -m addon explain ...` and `python -m addon demo`: see addon/cli."""

from __future__ import annotations

import sys

from addon.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
