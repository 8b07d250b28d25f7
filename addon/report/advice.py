"""What to change, from what the run showed: each item with the exact rules-file or origin
change and its trade-off."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from addon.html.features import FEATURES
from addon.report.model import LOST
from addon.report.model import Report

LABELS = {name: spec.label for name, spec in FEATURES.items()}  # the feature registry's
TRADE_OFFS = {"email_obfuscation": "addresses on those pages are no longer hidden from "
                                   "scrapers (facts 3.1)",
              "automatic_https_rewrites": "their http:// links are no longer upgraded to "
                                          "https:// (facts 3.2)",
              "rocket_loader": "their scripts are no longer deferred (facts 3.3)",
              "mirage": "their images are no longer lazy-loaded (facts 3.4)"}  # fmt: skip


@dataclass(frozen=True)
class Advice:
    title: str
    why: str
    change: str  # what to write: a rules-file snippet, or what the origin should do
    trade_off: str
    where: str  # "rules file" or "origin"
    examples: tuple[str, ...] = ()


def advice(report: Report) -> list[Advice]:
    out = []
    if report.rewritten:
        names = ", ".join(sorted({n.strip() for key in report.rewritten
                                  for n in key.split(",")}))
        urls = [u for ex in report.rewritten.values() for u in ex.urls]
        count = sum(ex.count for ex in report.rewritten.values())
        out.append(_keep_page_etags(names, count, urls[:5], report))
    if report.outcomes[LOST]:
        out.append(Advice(
            f"Give {report.outcomes[LOST]} response(s) a validator",
            "they reach the browser with neither an ETag nor a Last-Modified, so every "
            "revalidation is a full download",
            "send Last-Modified from the origin (it survives every edge feature), or an ETag "
            "the edge keeps (see the items above)",
            "none for Last-Modified, if the origin knows when the content changed",
            "origin", tuple(u for u, row in report.rows.items() if row.outcome == LOST)[:5]))
    for code, (d, ex) in sorted(report.diagnoses.items()):
        out.append(Advice(f"{code} ({ex.count})", d["message"], d["fix"],
                          "none: it only makes the origin answer as HTTP intends", "origin",
                          tuple(ex.urls)))
    return out


def _keep_page_etags(names: str, count: int, urls: list[str], report: Report) -> Advice:
    features = [n.strip() for n in names.split(",") if n.strip() in LABELS] or list(
        LABELS)[:2]
    labels = " and ".join(LABELS[n] for n in features)
    params = ", ".join(f"{n}: false" for n in features)
    expression = _paths_expression(report)
    change = ("configuration_rules:\n"
              f"  - description: keep the ETags of these pages\n"
              f"    expression: '{expression}'\n"
              f"    action_parameters: {{{params}}}\n")
    trade = "; ".join(TRADE_OFFS.get(n, f"{LABELS[n]} no longer runs on them")
                      for n in features)
    return Advice(
        f"Keep the ETag of {count} HTML page(s) that {labels} rewrite(s)",
        f"Cloudflare removes an HTML page's ETag, weak or strong, when {labels} runs on it "
        "(facts 2.2.4, 2.3): browsers can then revalidate these pages only by Last-Modified, "
        "if the origin sends one",
        change,
        f"{trade}. Alternatively a cache rule with `respect_strong_etags: true` keeps strong "
        "ETags and turns these features off for the pages it matches, but the edge then "
        "stops re-compressing them: visitors get the origin's own coding (facts 2.1, 2.2.3)",
        "rules file", tuple(urls))


def _paths_expression(report: Report) -> str:
    """An expression that matches the pages that lost their ETag: their first path segments,
    or their exact paths when they sit at the top level."""
    clauses = []
    for prefix, _ in report.rewritten_paths.most_common(5):
        if prefix != "/":
            clauses.append(f'starts_with(http.request.uri.path, "{prefix}")')
    top = sorted({urlsplit(u).path or "/" for ex in report.rewritten.values() for u in ex.urls
                  if (urlsplit(u).path or "/").count("/") <= 1})
    if top:
        clauses.append("http.request.uri.path in {" + " ".join(f'"{p}"' for p in top) + "}")
    return " or ".join(clauses) or "true"
