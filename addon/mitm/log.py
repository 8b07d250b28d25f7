"""The edge's log: one JSON line per handled response (cf_log), and a line in mitmproxy's
event log per conversion (cf_eventlog).

The JSON Lines file is written through a buffer, flushed FLUSH_AFTER seconds after the
first unflushed record and when mitmproxy stops: one system call per burst instead of one
per response. What a crash (not a normal stop) can lose is the last FLUSH_AFTER seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO
from typing import Any

from mitmproxy import ctx
from mitmproxy import exceptions

from addon.exchange.record import JSON
from addon.exchange.record import Record
from addon.mitm import options
from addon.vocabulary import NotModifiedBy

logger = logging.getLogger("cf_edge")

EVENTLOG_CHOICES = ("changes", "all", "off")
FLUSH_AFTER = 0.5  # seconds
BUFFER = 1 << 20  # bytes


class EdgeLog:
    def __init__(self) -> None:
        self.file: IO[bytes] | None = None
        self.eventlog = "changes"
        self.flush_scheduled = False

    def load(self, loader) -> None:
        loader.add_option(
            "cf_log", str | None, None,
            "Append one JSON Lines record per handled response to this file (unset: off).",
        )  # fmt: skip
        loader.add_option(
            "cf_eventlog", str, "changes",
            "What goes to mitmproxy's event log: 'changes' (one line per converted response), "
            "'all' (pass-throughs too, costs throughput) or 'off'.",
            choices=EVENTLOG_CHOICES,
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_log" in updated:
            self._open(options.writable_file("cf_log"))
        if "cf_eventlog" in updated:
            if ctx.options.cf_eventlog not in EVENTLOG_CHOICES:  # --set does not check choices
                raise exceptions.OptionsError(
                    f"cf_eventlog: {ctx.options.cf_eventlog!r} is not one of "
                    f"{', '.join(EVENTLOG_CHOICES)}")
            self.eventlog = ctx.options.cf_eventlog

    def done(self) -> None:
        self._close()

    def record(self, r: Record, entry: dict[str, Any] | None = None) -> None:
        """A handled response: its JSON line, and a line in the event log if it is news.
        `entry`: the record as a dict, when the caller made it already."""
        if self.file is not None:
            self._write(JSON.encode(entry if entry is not None else r.as_dict()).encode(
                "utf-8", "backslashreplace") + b"\n")
        if self.eventlog == "off":
            return
        if r.origin_error is not None:
            logger.warning("cf_edge: %s %s %s: %s", r.method, r.url, r.status_out, r.reason)
            return
        if not (r.changed or r.not_modified is NotModifiedBy.EDGE or self.eventlog == "all"):
            return  # a log line costs an event-loop round trip in mitmproxy
        status = f" [cf-cache-status {r.cache_status}]" if r.cache_status else ""
        logger.info(f"cf_edge: {r.method} {r.url} {r.status_out}: {r.encoding_in} -> "
                    f"{r.encoding_out}, ETag {r.etag_action}: {r.reason}{status}")
        for note in r.notes:
            logger.info("cf_edge: %s: %s", r.url, note)

    def line(self, entry: dict[str, Any]) -> None:
        """A record that is not a response's (an origin-diagnosis probe's finding)."""
        if self.file is not None:
            self._write(JSON.encode(entry).encode("utf-8", "backslashreplace")
                        + b"\n")

    def _write(self, line: bytes) -> None:
        assert self.file is not None
        try:
            self.file.write(line)
        except (OSError, ValueError) as e:
            logger.warning("cf_edge: cannot write %s: %s", ctx.options.cf_log, e)
            return
        if not self.flush_scheduled:
            try:
                asyncio.get_running_loop().call_later(FLUSH_AFTER, self._flush)
                self.flush_scheduled = True
            except RuntimeError:  # no event loop (an in-process test): write through
                self._flush()

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.file is not None:
            try:
                self.file.flush()
            except (OSError, ValueError) as e:
                logger.warning("cf_edge: cannot write %s: %s", ctx.options.cf_log, e)

    def _open(self, path: str | None) -> None:
        self._close()
        if path is None:
            return
        try:
            # kept open while mitmproxy runs; a large buffer: the timer flushes it
            self.file = open(path, "ab", buffering=BUFFER)  # noqa: SIM115
        except OSError as e:
            raise exceptions.OptionsError(f"cf_log: cannot open {path}: {e.strerror}") from e

    def _close(self) -> None:
        if self.file is not None:
            self._flush()
            self.file.close()
            self.file = None
