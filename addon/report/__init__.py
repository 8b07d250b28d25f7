"""The run report (cf_report): what the edge did over a recording or a live session, and
what it means for revalidation, as Markdown and as a self-contained HTML page with the same
sections in the same order: the headline, the revalidations, what to change, the details,
the origin diagnoses, every URL, every reason.

- model: fed one log record at a time; counters and bounded tables, so a long live session
  costs a fixed amount of memory;
- advice: what to change, from what the run showed, with the exact rules-file or origin
  change and its trade-off;
- markdown, page: the two formats.
"""

from addon.report.model import Report

__all__ = ["Report"]
