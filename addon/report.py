"""The run report (cf_report): what the edge did over a recording or a live session, as
Markdown and as a self-contained HTML page with the same content and inline SVG charts.

Fed one log record at a time; holds counters and a bounded number of examples, so a long
live session costs a fixed amount of memory.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from addon.exchange.record import Record

EXAMPLES = 3  # example URLs kept per reason or diagnosis
LOST_MAX = 200  # URLs listed whose strong ETag was lost


@dataclass
class _Examples:
    count: int = 0
    urls: list[str] = field(default_factory=list)

    def add(self, url: str) -> None:
        self.count += 1
        if len(self.urls) < EXAMPLES and url not in self.urls:
            self.urls.append(url)


class Report:
    def __init__(self, title: str = "Cloudflare edge report") -> None:
        self.title = title
        self.total = 0
        self.actions: Counter[str] = Counter()
        self.etag_actions: Counter[str] = Counter()
        self.conversions: Counter[str] = Counter()
        self.bytes: dict[str, list[int]] = {}  # conversion -> [bytes in, bytes out]
        self.cache: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.reasons: dict[str, _Examples] = {}
        self.lost: dict[str, tuple[str, str, str]] = {}  # url -> (etag in, out, reason)
        self.lost_count = 0
        self.diagnoses: dict[str, tuple[dict[str, str], _Examples]] = {}
        self.skipped = 0  # flows the edge had handled already, in an earlier run
        self.har_restored = 0  # HAR replay: bodies encoded again as the HAR lists
        self.har_unrestored: dict[str, int] = {}  # coding -> bodies replayed decoded

    def add(self, r: Record) -> None:
        self.total += 1
        url = r.url
        self.actions[r.action] += 1
        self.etag_actions[r.etag_action] += 1
        conversion = f"{r.encoding_in} -> {r.encoding_out}"
        self.conversions[conversion] += 1
        sizes = self.bytes.setdefault(conversion, [0, 0])
        sizes[0] += r.bytes_in
        sizes[1] += r.bytes_out
        if r.cache_status:
            self.cache[r.cache_status] += 1
        if r.not_modified:
            self.not_modified[r.not_modified] += 1
        self.reasons.setdefault(r.reason, _Examples()).add(url)
        etag_in = r.etag_in or ""
        if etag_in.startswith('"') and r.etag_action in ("weakened", "removed"):
            self.lost_count += 1
            if url in self.lost or len(self.lost) < LOST_MAX:
                self.lost[url] = (etag_in, r.etag_out or "(none)", r.reason)
        for d in r.diagnoses or ():
            entry = self.diagnoses.setdefault(d["code"], (d, _Examples()))
            entry[1].add(url)

    def add_finding(self, url: str, finding: dict[str, str]) -> None:
        """A diagnosis found outside a logged response (a probe)."""
        entry = self.diagnoses.setdefault(finding["code"], (finding, _Examples()))
        entry[1].add(url)

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

    # ---- Markdown ----

    def markdown(self) -> str:
        out = [f"# {self.title}", "", f"{self.total} responses.", ""]
        if self.skipped:
            out += [f"**{self.skipped} flow(s) skipped**: the edge had already handled them "
                    "(the recording is the edge's own output; replay the original).", ""]
        out += [f"**{line}**" for line in self.har_lines()] + ([""] if self.har_lines()
                                                               else [])
        out += _md_counts("ETag actions", self.etag_actions)
        out += _md_counts("What the edge did to the body", self.actions)
        out += _md_counts("Encoding conversions (origin -> visitor)", self.conversions)
        out += ["## Bytes per conversion", "", "| conversion | bytes from the origin | "
                "bytes to visitors | ratio |", "|---|---:|---:|---:|"]
        for conv, (b_in, b_out) in sorted(self.bytes.items()):
            ratio = f"{b_out / b_in:.2f}" if b_in else "-"
            out.append(f"| {conv} | {b_in} | {b_out} | {ratio} |")
        out.append("")
        if self.cache:
            out += _md_counts("Cache statuses (cf-cache-status)", self.cache)
        if self.not_modified:
            out += _md_counts("304 Not Modified, answered by", self.not_modified)
        out += [f"## Strong ETags lost ({self.lost_count})", ""]
        if self.lost:
            out += ["| URL | origin's ETag | visitor's ETag | why |", "|---|---|---|---|"]
            out += [f"| {_md(u)} | `{_md(a)}` | `{_md(b)}` | {_md(why)} |"
                    for u, (a, b, why) in self.lost.items()]
            if self.lost_count > len(self.lost):
                out.append(f"\n(the first {len(self.lost)} URLs are listed)")
        else:
            out.append("None: every strong ETag reached the visitors unchanged.")
        out += ["", "## Origin diagnoses", ""]
        if self.diagnoses:
            for code, (d, ex) in sorted(self.diagnoses.items()):
                out += [f"### {code} ({ex.count})", "", d["message"], "",
                        f"**What to change at the origin:** {d['fix']}", "",
                        "Examples: " + ", ".join(_md(u) for u in ex.urls), ""]
        else:
            out += ["None found.", ""]
        out += ["## Reasons", "", "| responses | reason | example URLs |", "|---:|---|---|"]
        for reason, ex in sorted(self.reasons.items(), key=lambda kv: -kv[1].count):
            out.append(f"| {ex.count} | {_md(reason)} | {'<br>'.join(_md(u) for u in ex.urls)} |")
        return "\n".join(out) + "\n"

    # ---- HTML ----

    def html(self) -> str:
        e = html.escape
        parts = [f"<h1>{e(self.title)}</h1>", f"<p>{self.total} responses.</p>"]
        parts += [f"<p><strong>{e(line)}</strong></p>" for line in self.har_lines()]
        if self.skipped:
            parts.append(f"<p><strong>{self.skipped} flow(s) skipped</strong>: the edge had "
                         "already handled them (the recording is the edge's own output; "
                         "replay the original).</p>")
        for title, counts in (("ETag actions", self.etag_actions),
                              ("What the edge did to the body", self.actions),
                              ("Encoding conversions (origin &rarr; visitor)", self.conversions),
                              ("Cache statuses (cf-cache-status)", self.cache),
                              ("304 Not Modified, answered by", self.not_modified)):
            if counts:
                parts += [f"<h2>{title}</h2>", _svg_bars(counts), _html_table(
                    ["", "responses"], [[e(k), str(v)] for k, v in counts.most_common()])]
        parts += ["<h2>Bytes per conversion</h2>", _html_table(
            ["conversion", "bytes from the origin", "bytes to visitors", "ratio"],
            [[e(c), str(a), str(b), f"{b / a:.2f}" if a else "-"]
             for c, (a, b) in sorted(self.bytes.items())])]
        parts.append(f"<h2>Strong ETags lost ({self.lost_count})</h2>")
        if self.lost:
            parts.append(_html_table(["URL", "origin's ETag", "visitor's ETag", "why"], [
                [e(u), f"<code>{e(a)}</code>", f"<code>{e(b)}</code>", e(why)]
                for u, (a, b, why) in self.lost.items()]))
        else:
            parts.append("<p>None: every strong ETag reached the visitors unchanged.</p>")
        parts.append("<h2>Origin diagnoses</h2>")
        if not self.diagnoses:
            parts.append("<p>None found.</p>")
        for code, (d, ex) in sorted(self.diagnoses.items()):
            parts += [f"<h3>{e(code)} ({ex.count})</h3>", f"<p>{e(d['message'])}</p>",
                      f"<p><b>What to change at the origin:</b> {e(d['fix'])}</p>",
                      "<p>Examples: " + ", ".join(e(u) for u in ex.urls) + "</p>"]
        parts += ["<h2>Reasons</h2>", _html_table(["responses", "reason", "example URLs"], [
            [str(ex.count), e(reason), "<br>".join(e(u) for u in ex.urls)]
            for reason, ex in sorted(self.reasons.items(), key=lambda kv: -kv[1].count)])]
        return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                f"<title>{e(self.title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(parts) + "\n</body></html>\n")

    def write(self, path: Path) -> tuple[Path, Path]:
        """The Markdown at `path` and the HTML page next to it (same name, .html)."""
        page = path.with_suffix(".html") if path.suffix != ".html" else path.with_suffix(
            ".report.html")
        path.write_text(self.markdown(), encoding="utf-8")
        page.write_text(self.html(), encoding="utf-8")
        return path, page


_CSS = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid "
        "#ccc;padding:.25em .5em;text-align:left;vertical-align:top}code{font-size:90%}"
        "svg text{font-size:12px;font-family:system-ui,sans-serif}")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_counts(title: str, counts: Counter[str]) -> list[str]:
    rows = [f"## {title}", "", "| | responses |", "|---|---:|"]
    rows += [f"| {_md(k)} | {v} |" for k, v in counts.most_common()]
    return [*rows, ""]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _svg_bars(counts: Counter[str]) -> str:
    """A plain horizontal bar chart, inline: no script, no external asset."""
    items = counts.most_common()
    top = max(v for _, v in items) or 1
    label_w, bar_w, row_h = 220, 420, 22
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * row_h
        w = max(round(bar_w * value / top), 1)
        rows.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
                    f"{html.escape(label)}</text>"
                    f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" '
                    f'fill="#f38020"/><text x="{label_w + w + 6}" y="{y + 15}">{value}</text>')
    height = len(items) * row_h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 60}" '
            f'height="{height}" role="img">' + "".join(rows) + "</svg>")
