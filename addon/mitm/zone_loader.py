"""The zone (cf_rules): a rules file, an API response saved as JSON, or a directory of
them (config/sources.py); loaded when cf_rules is set, re-read when any of its files
changes on disk. A broken edit is reported with its file:line:key and the previous zone
stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
from pathlib import Path

from mitmproxy import ctx
from mitmproxy import exceptions

from addon.config.loader import RulesFileError
from addon.config.loader import load_rules
from addon.config.sources import signature
from addon.config.zone import Zone
from addon.mitm import options

logger = logging.getLogger("cf_edge")

DEFAULT_RULES = "rules.yaml"
BUNDLED_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"
RELOAD_INTERVAL = 1.0


class ZoneLoader:
    def __init__(self, known_options: tuple[str, ...] = ()) -> None:
        self.zone: Zone | None = None
        self.path: Path | None = None
        self.seen: tuple[tuple[str, float], ...] = ()  # each file of the zone, its mtime
        self.watcher: asyncio.Task | None = None
        self.known_options = known_options  # every addon's, to name a misspelled one

    def load(self, loader) -> None:
        loader.add_option(
            "cf_rules", str, DEFAULT_RULES,
            "The Cloudflare zone: a rules file (plan, settings, cache, compression and "
            "configuration rules), an API response saved as JSON, or a directory of them. "
            "Re-read when a file changes on disk.",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_rules" not in updated:
            return
        path = Path(ctx.options.cf_rules)
        if ctx.options.cf_rules == DEFAULT_RULES and not path.exists():
            path = BUNDLED_RULES  # started from another directory: use the repo's default
        try:
            zone = load_rules(path)
        except RulesFileError as e:
            raise exceptions.OptionsError(f"cf_rules: {e}") from None
        self._install(zone, path)

    def running(self) -> None:
        options.running = True
        for typo in sorted(k for k in ctx.options.deferred if k.startswith("cf_")):
            # an error, so that mitmproxy stops at startup whatever -q says
            close = difflib.get_close_matches(typo, self.known_options, n=1)
            logger.error("unknown option %s: %s", typo, f"did you mean {close[0]}?" if close
                         else f"the edge's options are {', '.join(self.known_options)}")
        if self.watcher is None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing to watch
                self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        options.running = False
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    def _install(self, zone: Zone, path: Path) -> None:
        first = self.zone is None
        self.zone, self.path, self.seen = zone, path, signature(path)
        logger.info("cf_edge: %s %s: plan %s, %d rule(s)", "loaded" if first else "reloaded",
                    path, zone.plan, zone.rule_count)
        for line in zone.read:
            logger.info("cf_edge: read %s", line)
        if zone.not_emulated:
            logger.info("cf_edge: accepted but not emulated yet: %s",
                        ", ".join(zone.not_emulated))
        if zone.unknown:
            logger.info("cf_edge: not known to this tool, ignored: %s", ", ".join(zone.unknown))

    async def _watch(self) -> None:
        reported: tuple[tuple[str, float], ...] = ()
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            path = self.path
            if path is None:
                continue
            seen = signature(path)  # every file of a directory: one changed, one came or went
            if not seen or seen == self.seen or seen == reported:
                continue
            try:
                zone = load_rules(path)
            except RulesFileError as e:
                reported = seen
                logger.warning("cf_edge: rules file not reloaded, previous rules stay in "
                               "force:\n%s", e)
                continue
            self._install(zone, path)
