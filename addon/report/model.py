"""What the report counts, one log record at a time, in bounded memory."""

from __future__ import annotations

from collections import Counter
from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

from addon.exchange.record import Record

EXAMPLES = 5  # example URLs kept per reason or diagnosis
LOST_MAX = 200  # URLs listed whose strong ETag was lost
URL_MAX = 5000  # rows of the per-URL table (the latest response of each URL)

# What a browser holding this response can revalidate with (RFC 9110 13.1)
BY_STRONG, BY_WEAK = "by ETag (strong)", "by ETag (weak)"
BY_DATE, LOST = "by Last-Modified only", "lost: no validator, a full download each time"
OUTCOMES = (BY_STRONG, BY_WEAK, BY_DATE, LOST)


@dataclass
class Examples:
    count: int = 0
    urls: list[str] = field(default_factory=list)

    def add(self, url: str) -> None:
        self.count += 1
        if len(self.urls) < EXAMPLES and url not in self.urls:
            self.urls.append(url)


@dataclass
class Row:
    """One URL's latest response, for the per-URL table."""

    url: str
    media_type: str
    status: str  # 200, 304 by edge, HEAD 200, ...
    coding: str  # origin -> visitor
    etag: str  # origin's -> visitor's
    cache: str
    bytes_in: int
    bytes_out: int
    outcome: str  # revalidation outcome, for full responses


def outcome(r: Record) -> str | None:
    """The revalidation outcome of a full response (a GET 200), else None."""
    if r.method.upper() != "GET" or r.status_out != 200:
        return None
    if r.etag_out:
        return BY_WEAK if r.etag_out.startswith("W/") else BY_STRONG
    return BY_DATE if r.last_modified_out else LOST


def kind(r: Record) -> str:
    """Full responses are counted apart from HEAD, 304, 206 and the edge's errors, whose
    bodies (none, or a part) say nothing of re-coding."""
    if r.origin_error:
        return "edge error (52x)"
    if r.method.upper() == "HEAD":
        return "HEAD"
    if r.status_out in (304, 206, 416):
        return str(r.status_out) + (f" from the {r.not_modified}" if r.not_modified else "")
    return "full"


class Report:
    def __init__(self, title: str = "Cloudflare edge report") -> None:
        self.title = title
        self.total = 0
        self.kinds: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()  # full responses only, as all below
        self.etags: Counter[str] = Counter()
        self.conversions: Counter[str] = Counter()
        self.bytes: dict[str, list[int]] = {}  # conversion -> [bytes in, bytes out]
        self.bytes_in = self.bytes_out = 0
        self.cache: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.reasons: dict[str, Examples] = {}
        self.lost: dict[str, tuple[str, str, str]] = {}  # url -> (etag in, out, reason)
        self.lost_count = 0
        self.rewritten: dict[str, Examples] = {}  # feature names -> pages that lost the ETag
        self.rewritten_paths: Counter[str] = Counter()  # their first path segments
        self.diagnoses: dict[str, tuple[dict[str, str], Examples]] = {}
        self.rows: OrderedDict[str, Row] = OrderedDict()
        self.skipped = 0  # flows the edge had handled already, in an earlier run
        self.har_restored = 0  # HAR replay: bodies encoded again as the HAR lists
        self.har_unrestored: dict[str, int] = {}  # coding -> bodies replayed decoded

    def add(self, r: Record) -> None:
        self.total += 1
        k = kind(r)
        self.kinds[k] += 1
        url = r.url
        if r.cache_status:
            self.cache[r.cache_status] += 1
        for d in r.diagnoses or ():
            self.diagnoses.setdefault(d["code"], (d, Examples()))[1].add(url)
        self._row(r, k)
        if k != "full":
            return
        self.actions[r.action] += 1
        self.etags[_etag_kind(r)] += 1
        conversion = f"{r.encoding_in} -> {r.encoding_out}"
        self.conversions[conversion] += 1
        sizes = self.bytes.setdefault(conversion, [0, 0])
        sizes[0] += r.bytes_in
        sizes[1] += r.bytes_out
        self.bytes_in += r.bytes_in
        self.bytes_out += r.bytes_out
        self.reasons.setdefault(r.reason, Examples()).add(url)
        if (result := outcome(r)) is not None:
            self.outcomes[result] += 1
        etag_in = r.etag_in or ""
        if etag_in.startswith('"') and r.etag_action in ("weakened", "removed"):
            self.lost_count += 1
            if url in self.lost or len(self.lost) < LOST_MAX:
                self.lost[url] = (etag_in, r.etag_out or "(none)", r.reason)
        if r.action == "rewrite" and r.etag_action == "removed" and r.features is not None:
            names = ", ".join(sorted(r.features)) or "the HTML features"
            self.rewritten.setdefault(names, Examples()).add(url)
            self.rewritten_paths[_first_segment(url)] += 1

    def add_finding(self, url: str, finding: dict[str, str]) -> None:
        """A diagnosis found outside a logged response (a probe)."""
        self.diagnoses.setdefault(finding["code"], (finding, Examples()))[1].add(url)

    def _row(self, r: Record, k: str) -> None:
        status = str(r.status_out) if k == "full" else k
        if r.method.upper() != "GET":
            status = f"{r.method} {r.status_out}"
        etag = (f"{r.etag_in or '-'} -> {r.etag_out or '-'}" if r.etag_in or r.etag_out
                else "-")
        before = self.rows.get(r.url)
        if k != "full" and before is not None and before.outcome:
            # a revalidation, a HEAD after the page: said beside what the page got
            if len(before.status) < 60:
                before.status += f", then {status}"
            return
        row = Row(r.url, r.media_type or "", status, f"{r.encoding_in} -> {r.encoding_out}",
                  etag, r.cache_status or "", r.bytes_in, r.bytes_out, outcome(r) or "")
        self.rows.pop(r.url, None)
        self.rows[r.url] = row
        if len(self.rows) > URL_MAX:
            self.rows.popitem(last=False)

    # ---- what the formats need ----

    @property
    def full(self) -> int:
        return self.kinds["full"]

    @property
    def revalidable(self) -> int:
        return sum(self.outcomes[o] for o in (BY_STRONG, BY_WEAK, BY_DATE))

    def har_lines(self) -> list[str]:
        """What a HAR replay could and could not restore (mitmproxy decodes HAR bodies)."""
        out = []
        if self.har_restored:
            out.append(f"HAR replay: {self.har_restored} response(s) were encoded again with "
                       "the Content-Encoding the HAR lists; their sizes are approximate.")
        if self.har_unrestored:
            listed = ", ".join(f"{n} {c}" for c, n in sorted(self.har_unrestored.items()))
            out.append(f"HAR replay: {sum(self.har_unrestored.values())} response(s) were "
                       f"replayed decoded, as identity ({listed}): the HAR lists a coding "
                       "this tool cannot re-create, so their conversions are not what the "
                       "origin's would be.")
        return out

    def write(self, path: Path) -> tuple[Path, Path]:
        """The Markdown at `path` and the HTML page next to it (same name, .html)."""
        from addon.report.markdown import markdown
        from addon.report.page import page

        html_path = path.with_suffix(".html") if path.suffix != ".html" else path.with_suffix(
            ".report.html")
        path.write_text(markdown(self), encoding="utf-8")
        html_path.write_text(page(self), encoding="utf-8")
        return path, html_path

    def markdown(self) -> str:
        from addon.report.markdown import markdown

        return markdown(self)

    def html(self) -> str:
        from addon.report.page import page

        return page(self)


def _etag_kind(r: Record) -> str:
    """What happened to the ETag, strong and weak apart."""
    if r.etag_action == "kept":
        return "kept (weak)" if (r.etag_out or "").startswith("W/") else "kept (strong)"
    if r.etag_action == "removed":
        return "removed"
    if r.etag_action == "weakened":
        return "weakened (strong -> weak)"
    return "none from the origin"


def _first_segment(url: str) -> str:
    path = urlsplit(url).path or "/"
    parts = path.split("/")
    return "/" if len(parts) < 3 else f"/{parts[1]}/"


def human(n: float) -> str:
    """Bytes in human units (kB, MB, GB: powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"
