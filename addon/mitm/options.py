"""Reading the addon's own options, with errors that name the option."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy.utils import human

logger = logging.getLogger("cf_edge")
running = False  # mitmproxy has started (set by ZoneLoader.running)


def refusing(configure: Callable[[Any, set[str]], None]) -> Callable[[Any, set[str]], None]:
    """A configure hook whose OptionsError, at startup, is logged as one error line, which
    stops mitmproxy as the error would, instead of mitmproxy's report of a failing script
    with its traceback; once running, it is raised, so mitmproxy keeps the previous value."""

    @functools.wraps(configure)
    def checked(self: Any, updated: set[str]) -> None:
        try:
            configure(self, updated)
        except exceptions.OptionsError as e:
            if running:
                raise
            logger.error("%s", e)

    return checked


def size(name: str) -> int:
    """A size option in mitmproxy's syntax (512k, 64m, 1g), or a clear OptionsError."""
    value = getattr(ctx.options, name)
    try:
        parsed = human.parse_size(value)
    except ValueError:
        parsed = None
    if not parsed or parsed <= 0:
        raise exceptions.OptionsError(f"{name}: {value!r} is not a size such as 512k, 64m or 1g")
    return parsed


def seconds(name: str) -> float:
    value = getattr(ctx.options, name)
    try:
        parsed = float(value)
    except ValueError:
        parsed = 0.0
    if not 0 < parsed <= 3600:
        raise exceptions.OptionsError(f"{name}: {value!r} is not a number of seconds "
                                      "between 0 and 3600")
    return parsed


def writable_file(name: str) -> str | None:
    """A file path option (Optional[str]; empty or unset: off) whose directory exists."""
    value = getattr(ctx.options, name)
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        raise exceptions.OptionsError(f"{name}: {value} is a directory; give a file path")
    if not path.parent.is_dir():
        raise exceptions.OptionsError(f"{name}: directory {path.parent} does not exist")
    return value
