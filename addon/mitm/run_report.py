"""cf_report: the run report (addon/report.py), written when mitmproxy stops, which is when
a recording (`-nr`) has been replayed."""

from __future__ import annotations

import logging
from pathlib import Path

from addon.exchange.record import Record
from addon.mitm import options
from addon.report import Report

logger = logging.getLogger("cf_edge")


class RunReport:
    def __init__(self) -> None:
        self.report: Report | None = None
        self.path: Path | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "cf_report", str | None, None,
            "Write a report of the run to this Markdown file, and the same as a self-contained "
            "HTML page next to it, when mitmproxy stops or a recording has been replayed.",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_report" in updated:
            value = options.writable_file("cf_report")
            self.path = Path(value) if value else None
            self.report = Report() if value else None

    def add(self, r: Record) -> None:
        if self.report is not None:
            self.report.add(r)

    def har(self, restored: int, unrestored: dict[str, int]) -> None:
        if self.report is not None:
            self.report.har_restored, self.report.har_unrestored = restored, unrestored

    def skipped(self) -> None:
        if self.report is not None:
            self.report.skipped += 1

    def add_finding(self, url: str, finding: dict[str, str]) -> None:
        if self.report is not None:
            self.report.add_finding(url, finding)

    def done(self) -> None:
        if self.report is None or self.path is None:
            return
        try:
            md, page = self.report.write(self.path)
            logger.info("cf_edge: report written to %s and %s", md, page)
        except OSError as e:
            logger.warning("cf_edge: cannot write the report %s: %s", self.path, e)
