"""The report as one self-contained HTML page: the sections of the Markdown, in its order;
one inline SVG chart per question, with percentages, where the Markdown has a count table;
every URL in a table that sorts on a click and filters as you type (a few lines of inline
script, nothing fetched)."""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

from addon.report.advice import advice
from addon.report.markdown import headline
from addon.report.model import OUTCOMES
from addon.report.model import Report
from addon.report.model import human
from addon.report.model import percent

FACTS = (Path(__file__).resolve().parents[2] / "docs" / "facts.md").as_uri()
_CITATION = re.compile(r"facts (\d+(?:\.\d+)*)")
e = html.escape


def page(r: Report) -> str:
    parts = [f"<h1>{e(r.title)}</h1>", "<ul class=headline>"
             + "".join(f"<li>{e(line)}</li>" for line in headline(r)) + "</ul>"]
    whole = sum(r.outcomes.values())
    parts += ["<h2>Revalidations: what a browser holding each page can do</h2>",
              _bars([(o, r.outcomes[o]) for o in OUTCOMES], whole),
              "<p>A 304 needs a validator the browser got with the 200: an ETag (compared "
              "weakly) or, without one, Last-Modified. What the visitors' own revalidations got "
              "is under “Other responses”.</p>"]
    parts.append("<h2>What to change</h2>")
    items = advice(r)
    for n, a in enumerate(items, 1):
        parts += [f"<h3>{n}. {e(a.title)}</h3>", f"<p>{_cite(a.why)}.</p>",
                  f"<p><b>Change ({e(a.where)}):</b></p>",
                  f"<pre>{e(a.change)}</pre>" if a.where == "rules file" else
                  f"<p>{_cite(a.change)}</p>", f"<p><b>Trade-off:</b> {_cite(a.trade_off)}.</p>"]
        if a.examples:
            parts.append("<p>Examples: " + ", ".join(e(u) for u in a.examples) + "</p>")
    if not items:
        parts.append("<p>Nothing: every page keeps a validator and no origin problem was "
                     "seen.</p>")
    parts.append("<h2>Details</h2>")
    parts += _chart("ETags of full responses", r.etags, r.full)
    parts += _chart("What the edge did to the body", r.actions, r.full)
    parts += ["<h3>Codings (origin &rarr; visitor) and bytes</h3>", _table(
        ["conversion", "responses", "from the origin", "to visitors", "ratio"],
        [[e(c), _num(r.conversions[c]), _num(human(a), a), _num(human(b), b),
          _num(f"{b / a:.2f}" if a else "-")] for c, (a, b) in sorted(r.bytes.items())])]
    parts += _chart("Cache statuses (cf-cache-status)", r.cache, r.total)
    parts += _chart("Other responses (HEAD, 304, 206, errors)",
                    Counter({k: n for k, n in r.kinds.items() if k != "full"}), r.total)
    parts.append(f"<h3>Strong ETags lost ({r.lost_count})</h3>")
    parts.append(_table(["URL", "origin's ETag", "visitor's ETag", "why"], [
        [e(u), f"<code>{e(a)}</code>", f"<code>{e(b)}</code>", _cite(why)]
        for u, (a, b, why) in r.lost.items()]) if r.lost else
        "<p>None: every strong ETag reached the visitors unchanged.</p>")
    parts += ["<h2>Every URL</h2>",
              "<p><input id=filter type=search placeholder='filter: any text in a row' "
              "size=40> <span id=shown></span></p>",
              _table(["URL", "type", "status", "coding", "ETag", "cache", "bytes from the "
                      "origin", "bytes to visitors", "revalidation"],
                     [[e(row.url), e(row.media_type), e(row.status), e(row.coding),
                       f"<code>{e(row.etag)}</code>", e(row.cache),
                       _num(human(row.bytes_in), row.bytes_in),
                       _num(human(row.bytes_out), row.bytes_out), e(row.outcome)]
                      for row in r.rows.values()], table_id="urls")]
    parts += ["<h2>Every reason</h2>", _table(["responses", "reason", "example URLs"], [
        [_num(ex.count), _cite(reason), "<br>".join(e(u) for u in ex.urls)]
        for reason, ex in sorted(r.reasons.items(), key=lambda kv: -kv[1].count)])]
    parts.append(f"<p>Citations (facts N.M) link to <a href='{FACTS}'>docs/facts.md</a>, this "
                 "tool's account of Cloudflare's behaviour, each entry with Cloudflare's public "
                 "source.</p>")
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{e(r.title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")


def _cite(text: str) -> str:
    """Escaped, with each "facts N.M" a link to the product's docs."""
    return _CITATION.sub(lambda m: f"<a href='{FACTS}'>{m.group(0)}</a>", e(text))


def _num(text: object, key: float | None = None) -> str:
    """A right-aligned number; `key` is what the column sorts by when the text is not."""
    sort = f" data-sort={key}" if key is not None else ""
    return f"<span class=num{sort}>{e(str(text))}</span>"


def _table(head: list[str], rows: list[list[str]], table_id: str = "") -> str:
    ident = f" id={table_id}" if table_id else ""
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _chart(title: str, counts: Counter[str], whole: int) -> list[str]:
    return [f"<h3>{e(title)}</h3>", _bars(counts.most_common(), whole)] if counts else []


def _bars(items: list[tuple[str, int]], whole: int) -> str:
    """A horizontal bar chart with counts and shares, inline SVG."""
    label_w, bar_w, row_h = 300, 380, 22
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * row_h
        w = max(round(bar_w * value / whole), 1) if whole and value else 0
        rows.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{e(label)}</text>'
                    f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" '
                    f'fill="#f38020"/><text x="{label_w + w + 6}" y="{y + 15}">'
                    f"{value} ({percent(value, whole)})</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
            f'height="{len(items) * row_h}" role="img">' + "".join(rows) + "</svg>")


_CSS = ("body{font-family:system-ui,sans-serif;max-width:76em;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid "
        "#ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{cursor:pointer;"
        "background:#f6f6f6}td:has(.num){text-align:right}code{font-size:90%}pre{background:"
        "#f6f6f6;padding:.5em}ul.headline{font-size:110%}"
        "svg text{font-size:12px;font-family:system-ui,sans-serif}")

# click a column header to sort by it (again: the other way); type to filter the URL table
_SCRIPT = """
for (const table of document.querySelectorAll('table')) {
  table.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
    const body = table.tBodies[0], rows = [...body.rows];
    const key = r => { const c = r.cells[col], n = c.querySelector('.num');
      const v = n ? (n.dataset.sort ?? n.textContent) : c.textContent;
      return n && !isNaN(parseFloat(v)) ? parseFloat(v) : v.toLowerCase(); };
    const up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
    rows.sort((a, b) => { const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); });
    rows.forEach(r => body.appendChild(r));
  }));
}
const filter = document.getElementById('filter'), urls = document.getElementById('urls');
const shown = document.getElementById('shown');
const apply = () => { const q = filter.value.toLowerCase(); let n = 0;
  for (const r of urls.tBodies[0].rows) {
    const hit = r.textContent.toLowerCase().includes(q); r.hidden = !hit; n += hit; }
  shown.textContent = n + ' of ' + urls.tBodies[0].rows.length + ' URLs'; };
if (filter) { filter.addEventListener('input', apply); apply(); }
"""
