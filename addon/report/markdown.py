"""The report as Markdown: the same sections, in the same order, as the HTML page; the
per-URL table limited to its first rows (the HTML page has them all)."""

from __future__ import annotations

from collections import Counter

from addon.report.advice import advice
from addon.report.model import OUTCOMES
from addon.report.model import Report
from addon.report.model import human
from addon.report.model import percent

URL_ROWS = 50


def headline(r: Report) -> list[str]:
    """The answers first, as sentences (the HTML page shows the same)."""
    saved = r.bytes_in - r.bytes_out
    if not r.total:
        return ["No response was handled.", *_skipped(r), *r.har_lines()]
    lines = [f"{r.total} responses: {r.full} full, "
             + ", ".join(f"{n} {k}" for k, n in sorted(r.kinds.items()) if k != "full")
             if len(r.kinds) > 1 or not r.full else f"{r.total} responses, all full.",
             f"Bytes: {human(r.bytes_in)} from the origin, {human(r.bytes_out)} to visitors "
             f"({'saved' if saved >= 0 else 'added'} {human(abs(saved))}, "
             f"{percent(abs(saved), r.bytes_in)}).",
             f"ETags: {r.lost_count} strong ETag(s) lost (weakened or removed), "
             f"{r.etags['removed']} ETag(s) removed in all.",
             f"Revalidations: {r.revalidable} of {sum(r.outcomes.values())} page(s) can be "
             f"revalidated ({r.outcomes[OUTCOMES[0]] + r.outcomes[OUTCOMES[1]]} by ETag, "
             f"{r.outcomes[OUTCOMES[2]]} only by Last-Modified); {r.outcomes[OUTCOMES[3]]} "
             "would be downloaded in full each time."]
    return lines + _skipped(r) + r.har_lines()


def _skipped(r: Report) -> list[str]:
    if not r.skipped:
        return []
    return [f"{r.skipped} flow(s) skipped: the edge had already handled them (the recording "
            "is the edge's own output; replay the original)."]


def markdown(r: Report) -> str:
    out = [f"# {r.title}", ""] + [f"- {line}" for line in headline(r)] + [""]
    out += ["## Revalidations: what a browser holding each page can do", "",
            "| outcome | pages | share |", "|---|---:|---:|"]
    whole = sum(r.outcomes.values())
    out += [f"| {o} | {r.outcomes[o]} | {percent(r.outcomes[o], whole)} |" for o in OUTCOMES]
    out += ["", "A 304 needs a validator the browser got with the 200: an ETag (compared "
            "weakly) or, without one, Last-Modified. What the visitors' own revalidations "
            "got is under \"Other responses\".", ""]
    out += ["## What to change", ""]
    items = advice(r)
    for n, a in enumerate(items, 1):
        out += [f"### {n}. {a.title}", "", a.why + ".", "", f"**Change ({a.where}):**", ""]
        out += (["```yaml", a.change.rstrip(), "```"] if a.where == "rules file"
                else [a.change])
        out += ["", f"**Trade-off:** {a.trade_off}.", ""]
        if a.examples:
            out += ["Examples: " + ", ".join(_md(u) for u in a.examples), ""]
    if not items:
        out += ["Nothing: every page keeps a validator and no origin problem was seen.", ""]
    out += ["## Details", ""]
    out += _counts("ETags of full responses", r.etags, r.full)
    out += _counts("What the edge did to the body", r.actions, r.full)
    out += ["### Codings (origin -> visitor) and bytes", "",
            "| conversion | responses | from the origin | to visitors | ratio |",
            "|---|---:|---:|---:|---:|"]
    for conv, (b_in, b_out) in sorted(r.bytes.items()):
        ratio = f"{b_out / b_in:.2f}" if b_in else "-"
        out.append(f"| {conv} | {r.conversions[conv]} | {human(b_in)} | {human(b_out)} | "
                   f"{ratio} |")
    out.append("")
    out += _counts("Cache statuses (cf-cache-status)", r.cache, r.total)
    out += _counts("Other responses (HEAD, 304, 206, errors)",
                   Counter({k: n for k, n in r.kinds.items() if k != "full"}), r.total)
    out += [f"### Strong ETags lost ({r.lost_count})", ""]
    if r.lost:
        out += ["| URL | origin's ETag | visitor's ETag | why |", "|---|---|---|---|"]
        out += [f"| {_md(u)} | `{_md(a)}` | `{_md(b)}` | {_md(why)} |"
                for u, (a, b, why) in list(r.lost.items())[:URL_ROWS]]
        if r.lost_count > min(len(r.lost), URL_ROWS):
            out.append(f"\n(the first {min(len(r.lost), URL_ROWS)} are listed)")
    else:
        out.append("None: every strong ETag reached the visitors unchanged.")
    out += ["", "## Every URL", "",
            "| URL | type | status | coding | ETag | cache | bytes | revalidation |",
            "|---|---|---|---|---|---|---:|---|"]
    for row in list(r.rows.values())[:URL_ROWS]:
        out.append(f"| {_md(row.url)} | {row.media_type} | {row.status} | {row.coding} | "
                   f"{_md(row.etag)} | {row.cache} | {human(row.bytes_in)} -> "
                   f"{human(row.bytes_out)} | {row.outcome} |")
    if len(r.rows) > URL_ROWS:
        out.append(f"\n(the first {URL_ROWS} of {len(r.rows)} URLs; the HTML page has them "
                   "all, sortable and filterable)")
    out += ["", "## Every reason", "", "| responses | reason | example URLs |", "|---:|---|---|"]
    for reason, ex in sorted(r.reasons.items(), key=lambda kv: -kv[1].count):
        out.append(f"| {ex.count} | {_md(reason)} | {'<br>'.join(_md(u) for u in ex.urls)} |")
    out += ["", "Citations (facts N.M) are entries of docs/facts.md in this tool's repository, "
            "each with Cloudflare's public source."]
    return "\n".join(out) + "\n"


def _counts(title: str, counts: Counter[str], whole: int) -> list[str]:
    if not counts:
        return []
    rows = [f"### {title}", "", "| | responses | share |", "|---|---:|---:|"]
    rows += [f"| {_md(k)} | {v} | {percent(v, whole)} |" for k, v in counts.most_common()]
    return [*rows, ""]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
