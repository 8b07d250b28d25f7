"""The workflows' pure parts: origin diagnosis, the report, the trace header, explain."""

from __future__ import annotations

import re

import pytest

from addon.cli import explain as cli_explain
from addon.cli.explain import ExplainError
from addon.cli.explain import explain
from addon.cli.explain import parse_header_dump
from addon.config.loader import parse_rules
from addon.diagnosis import OriginDiagnosis
from addon.diagnosis import probe_needed
from addon.exchange import EdgeContext
from addon.exchange import run
from addon.exchange.headers import TRACE_HEADER
from addon.exchange.record import Record
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response
from addon.report import Report
from tests.support.edge_helpers import exchange
from tests.support.edge_helpers import zone


def _req(*headers, target="/a.css"):
    return Request(target=target, headers=((b"Host", b"example.com"), *headers))


def _resp(*headers, status=200):
    return Response(status, tuple(headers), b"x")


# ---- origin diagnosis -------------------------------------------------------------------------


def test_origin_that_compares_strongly_is_found():
    d = OriginDiagnosis()
    strong = (b"ETag", b'"v1"')
    found = d.check(_req((b"If-None-Match", b'W/"v1"')), _resp(strong))
    assert [f.code for f in found] == ["weak-if-none-match-ignored"]
    assert "weak comparison" in found[0].fix
    # a 304, a different tag, or validators that never reached the origin: nothing to say
    assert d.check(_req((b"If-None-Match", b'W/"v1"')), _resp(strong, status=304)) == []
    assert d.check(_req((b"If-None-Match", b'W/"v0"')), _resp(strong)) == []
    assert d.check(_req((b"If-None-Match", b'W/"v1"')), _resp(strong),
                   validators_forwarded=False) == []


def test_weak_if_match_and_invalid_last_modified():
    d = OriginDiagnosis()
    found = d.check(_req((b"If-Match", b'W/"v1"')), _resp((b"Last-Modified", b"1415000000")))
    assert {f.code for f in found} == {"weak-if-match", "invalid-last-modified"}
    ok = d.check(_req((b"If-Match", b'"v1"')),
                 _resp((b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT")))
    assert ok == []


def test_missing_vary_on_an_encoded_response():
    d = OriginDiagnosis()
    found = d.check(_req(), _resp((b"Content-Encoding", b"gzip")))
    assert [f.code for f in found] == ["missing-vary-accept-encoding"]
    assert d.check(_req(), _resp((b"Content-Encoding", b"gzip"),
                                 (b"Vary", b"Origin, accept-encoding"))) == []


def test_same_strong_etag_on_two_encodings_of_one_url():
    d = OriginDiagnosis(remembered=2)
    vary = (b"Vary", b"Accept-Encoding")
    assert d.check(_req(), _resp((b"ETag", b'"v1"'), (b"Content-Encoding", b"gzip"), vary)) == []
    found = d.check(_req(), _resp((b"ETag", b'"v1"'), (b"Content-Encoding", b"br"), vary))
    assert [f.code for f in found] == ["same-strong-etag-different-encodings"]
    assert "gzip and with br" in found[0].message
    for n in range(3):  # bounded: old URLs are forgotten
        d.check(_req(target=f"/{n}.css"), _resp((b"ETag", b'"x"')))
    assert len(d.seen) == 2


def test_probe_needed_only_for_a_200_with_a_strong_etag():
    assert probe_needed(_req(), _resp((b"ETag", b'"v1"'))) == b'W/"v1"'
    assert probe_needed(_req(), _resp((b"ETag", b'W/"v1"'))) is None
    assert probe_needed(_req(), _resp((b"ETag", b'"v1"'), status=404)) is None
    # the edge removed the ETag (an HTML feature): no browser revalidates with it
    assert probe_needed(_req(), _resp((b"ETag", b'"v1"')), visitor_etag=None) is None


def test_apache_suffix_gets_its_own_finding_and_fix_not_compare_weakly():
    d = OriginDiagnosis()
    apache = (b"ETag", b'"1d10-60a24181e4000-gzip"')
    gz = (b"Content-Encoding", b"gzip")
    vary = (b"Vary", b"Accept-Encoding")
    found = d.check(_req((b"If-None-Match", b'W/"1d10-60a24181e4000-gzip"')),
                    _resp(apache, gz, vary))
    assert [f.code for f in found] == ["apache-etag-suffix"]
    assert "DeflateAlterETag NoChange" in found[0].fix and "weak comparison" not in found[0].fix
    found = d.check(_req(), _resp((b"ETag", b'"x-br"'), (b"Content-Encoding", b"br"),
                                  (b"Vary", b"Accept-Encoding")))
    assert [f.code for f in found] == ["apache-etag-suffix"]
    assert "BrotliAlterETag" in found[0].fix
    # an identity response with such a tag is not Apache's doing
    assert d.check(_req(), _resp((b"ETag", b'"x-gzip"'))) == []


def test_revalidation_that_keeps_bringing_the_same_etag_back_in_full():
    d = OriginDiagnosis()
    full = _resp((b"ETag", b'W/"x"'))
    assert d.revalidation("k", b'W/"x"', "EXPIRED", full) is None  # once may be a change
    found = d.revalidation("k", b'W/"x"', "EXPIRED", full, "RFC 9111 4.3.4 says so")
    assert found.code == "revalidation-full-body" and "2 times in a row" in found.message
    assert "same ETag on a 304" in found.fix
    assert d.revalidation("k", b'W/"x"', "REVALIDATED", full) is None  # a 304 resets it
    assert d.revalidation("k", b'W/"x"', "EXPIRED", full) is None
    assert d.revalidation("k", b'W/"x"', "EXPIRED", _resp((b"ETag", b'W/"y"'))) is None


# ---- the report ----------------------------------------------------------------------------


def _record(url, **kw):
    r = {"url": url, "method": "GET", "status_out": 200, "action": "compress",
         "etag_action": "weakened", "encoding_in": "identity", "encoding_out": "br",
         "bytes_in": 1000, "bytes_out": 200, "reason": "why A (facts 0.8)", "etag_in": '"v1"',
         "etag_out": 'W/"v1"', "cache_status": "MISS", "not_modified": None,
         "media_type": "text/css"}
    return Record(**(r | kw))


def _page(url, **kw):
    return _record(url, action="rewrite", etag_action="removed", etag_in='W/"p1"',
                   etag_out=None, encoding_in="gzip", media_type="text/html",
                   features={"email_obfuscation": {}, "automatic_https_rewrites": {}},
                   reason="Email Obfuscation on (facts 2.2.4)", **kw)


def _report() -> Report:
    rep = Report()
    for n in range(5):
        rep.add(_record(f"https://e.test/{n}.css"))
    rep.add(_page("https://e.test/docs/a", last_modified_out="Tue, 01 Dec 2026 10:00:00 GMT"))
    rep.add(_page("https://e.test/docs/b"))
    rep.add(_record("https://e.test/0.css", status_out=304, not_modified="edge",
                    cache_status="HIT", bytes_out=0))
    rep.add(_record("https://e.test/h.css", method="HEAD", bytes_out=0))
    rep.add(_record("https://e.test/p", action="pass", etag_action="kept",
                    encoding_out="identity", bytes_out=1000, reason="why B",
                    diagnoses=[{"code": "invalid-last-modified", "message": "m", "fix": "f"}]))
    return rep


def test_report_headline_answers_first():
    md = _report().markdown()
    head = md.split("## Revalidations")[0]
    assert "- 10 responses: 8 full, 1 304 from the edge, 1 HEAD" in head
    # full responses only: 5 x 1000 -> 200, 2 x 1000 -> 200 pages, 1 x 1000 -> 1000
    assert "- Bytes: 8.0 kB from the origin, 2.4 kB to visitors (saved 5.6 kB, 70%)." in head
    assert "- ETags: 5 strong ETag(s) lost (weakened or removed), 2 ETag(s) removed in all." \
        in head
    assert ("- Revalidations: 7 of 8 page(s) can be revalidated (6 by ETag, 1 only by "
            "Last-Modified); 1 would be downloaded in full each time.") in head
    assert "| by ETag (weak) | 6 | 75% |" in md and "| lost: no validator" in md
    # HEAD and 304 are buckets of their own, not conversions
    assert "| 304 from the edge | 1 | 10% |" in md and "| HEAD | 1 | 10% |" in md
    assert "| identity -> br | 5 | 5.0 kB | 1.0 kB | 0.20 |" in md
    # the URL table keeps the page's own row, and says what came after
    assert "| https://e.test/0.css | text/css | 200, then 304 from the edge |" in md


def test_what_to_change_is_a_rule_that_loads_and_does_it():
    from addon.report.advice import advice
    items = advice(_report())
    keep = items[0]
    assert keep.title == ("Keep the ETag of 2 HTML page(s) that Automatic HTTPS Rewrites and "
                          "Email Obfuscation rewrite(s)")
    assert "respect_strong_etags: true" in keep.trade_off and "scrapers" in keep.trade_off
    zone = parse_rules("plan: pro\n" + keep.change)
    [rule] = zone.configuration_rules
    assert rule.action_parameters == {"automatic_https_rewrites": False,
                                      "email_obfuscation": False}
    assert rule.expression.source == 'starts_with(http.request.uri.path, "/docs/")'
    assert any(a.where == "origin" and a.title.startswith("Give 1 response(s) a validator")
               for a in items)
    assert any(a.title == "invalid-last-modified (1)" and a.change == "f" for a in items)


def test_report_html_is_self_contained_sortable_with_charts():
    rep = _report()
    rep.add(_record("https://e.test/<x>.css"))
    page = rep.html()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<rect" in page
    assert "7 (78%)" in page  # bars carry their share
    assert not re.search(r"\ssrc=", page)  # nothing fetched
    hrefs = re.findall(r"href='([^']+)'", page)
    assert hrefs and all(h.startswith("file://") and h.endswith("/docs/facts.md")
                         for h in hrefs)
    assert "https://e.test/&lt;x&gt;.css" in page  # escaped
    assert "<table id=urls>" in page and "addEventListener('click'" in page
    # the same sections in the same order as the Markdown
    md = rep.markdown()
    order = ["Revalidations", "What to change", "Details", "Every URL", "Every reason"]
    assert [page.index(t) for t in order] == sorted(page.index(t) for t in order)
    assert [md.index(t) for t in order] == sorted(md.index(t) for t in order)


def test_report_write_puts_the_html_next_to_the_markdown(tmp_path):
    rep = Report()
    rep.add(_record("https://e.test/a.css"))
    md, page = rep.write(tmp_path / "run.md")
    assert md.read_text().startswith("# Cloudflare edge report") and page.name == "run.html"


# ---- the trace header ----------------------------------------------------------------------


def test_trace_names_the_change_the_reason_and_the_rule():
    z = zone(extra="""cache_rules:
  - description: strong for css
    expression: 'true'
    action_parameters: {respect_strong_etags: true}
""")
    _, response, _ = exchange(z, accept="gzip", origin="br")
    request = Request(target="/page.html", headers=((b"Accept-Encoding", b"gzip"),))
    out = run(EdgeContext(z, trace=True), request, lambda sent: response, 0.0)
    traced = header(out.final.headers, TRACE_HEADER)
    assert traced is not None
    assert traced.startswith(b'decompress br->identity; ETag weakened "foobar"->W/"foobar"')
    assert b'rules: cache_rules[1] "strong for css"' in traced and b"row 4" in traced
    assert b"\r" not in traced and b"\n" not in traced and traced.isascii()


# ---- explain -------------------------------------------------------------------------------


def test_header_dump_takes_the_last_response():
    status, headers = parse_header_dump(
        "HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\nHTTP/2 200\r\nETag: \"v1\"\r\n\r\n", "d")
    assert status == 200 and headers == ((b"ETag", b'"v1"'),)


@pytest.mark.parametrize(("text", "message"), [
    ("ETag: x\n", "d:1: expected a status line"),
    ("HTTP/1.1 OK\n", "d:1: not a status line"),
    ("HTTP/1.1 200 OK\nno colon here\n", "d:2: not a header line"),
    ("\n\n", "d: no response in it"),
])
def test_header_dump_errors_name_the_line(text, message):
    with pytest.raises(ExplainError, match=message):
        parse_header_dump(text, "d")


def test_explain_a_stylesheet_for_a_gzip_visitor():
    out = explain(["--accept-encoding", "gzip", "--url", "https://example.com/app.css",
                   "--header", "Content-Type: text/css", "--header", 'ETag: "v1"'])
    assert "Decision:  compress, identity -> gzip; ETag weakened: \"v1\" -> W/\"v1\"" in out
    assert "ETag table (Respect Strong ETags off), row 5" in out
    assert "Cache:     MISS" in out and '  ETag: W/"v1"' in out
    assert 'gets 304 from the edge (HIT)' in out


def test_explain_reads_a_dump_from_stdin_and_html_loses_its_etag():
    dump = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nETag: \"p1\"\r\nContent-Length: 900\r\n"
    out = explain(["-"], stdin_text=dump)
    assert "ETag removed" in out and "900 bytes decoded" in out
    assert "cannot revalidate with If-None-Match" in out


def test_explain_does_not_take_a_compressed_length_for_the_decoded_size():
    """A 40-byte gzip body is not a 40-byte page: below the minimums it would not be
    re-encoded, while a typical page is."""
    dump = ("HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Encoding: gzip\r\n"
            'ETag: "g1"\r\nContent-Length: 40\r\n')
    out = explain(["--accept-encoding", "br", "-"], stdin_text=dump)
    assert "10240 bytes decoded (assumed: Content-Length counts the gzip bytes" in out
    assert "Decision:  transcode, gzip -> br" in out
    out = explain(["--accept-encoding", "br", "--size", "40", "-"], stdin_text=dump)
    assert "40 bytes decoded, " in out and "Decision:  decompress, gzip -> identity" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--url", "example.com/x"], "give an absolute http:// or https:// URL"),
    (["--header", "no colon"], "--header 'no colon': write it as 'Name: value'"),
    (["/nonexistent/dump.txt"], "/nonexistent/dump.txt: cannot read it"),
    (["--rules", "/nonexistent/rules.yaml"], "/nonexistent/rules.yaml: cannot read"),
])
def test_explain_bad_input_gets_a_clear_message(argv, message, capsys):
    assert cli_explain.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
