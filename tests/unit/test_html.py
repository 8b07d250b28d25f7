"""The HTML features (issue 7): each on realistic pages, every skip rule and opt-out, the
charset round trip, the engine's guarantees, and what the pipeline makes of them."""

from __future__ import annotations

import gc
import random
import re
import sys
import threading

import pytest

from addon import html
from addon import polish
from addon.config.loader import RulesFileError
from addon.config.loader import parse_rules
from addon.html import cdn_cgi
from addon.html import charset
from addon.html.engine import Rewriter
from addon.html.features.email_obfuscation import decode as cf_decode
from addon.html.features.email_obfuscation import encode as cf_encode
from addon.html.features.rocket_loader import opted_out
from tests.support.edge_helpers import RSE_ON
from tests.support.edge_helpers import exchange
from tests.support.edge_helpers import zone

EO = ("email_obfuscation",)
AHR = ("automatic_https_rewrites",)
RL = ("rocket_loader",)

PAGE = """<!DOCTYPE html>
<html lang="de">
<head>
  <meta charset="utf-8">
  <title>Kontakt: office@example.com</title>
  <meta name="author" content="head@example.com">
  <script>var support = "script@example.com";</script>
</head>
<BODY class="page">
  <header><nav><a href="/">Start</a> ·
    <a href='mailto:Jürgen.Groß@example.de?subject=Grüße&amp;body=Hallo'>Jürgen</a></nav>
  </header>
  <main>
    <h1>Grüße aus Köln</h1>
    <p>Schreiben Sie an <b>alice@example.com</b>, oder an bob.smith+news@mail.example.org.</p>
    <p>Im Link: <a href="mailto:carol@example.com">carol@example.com</a></p>
    <img src="/team.jpg" alt="dave@example.com" title="dave@example.com">
    <!-- a comment mentioning eve@example.com -->
    <!--email_off--><p>Nicht versteckt: frank@example.com</p><!--/email_off-->
    <noscript>noscript@example.com</noscript>
    <textarea name="t">textarea@example.com</textarea>
    <xmp>xmp@example.com</xmp>
    <div><section><ul><li>tief <em>verschachtelt: grace@example.com</em></li></ul></section></div>
  </main>
  <script src="/app.js"></script>
</BODY>
</html>
"""


def rewrite(page: str | bytes, features=EO, ct: str | None = None, hosts=("example.com",),
            seed: int = 7) -> html.RewriteResult:
    body = page.encode() if isinstance(page, str) else page
    return html.rewrite(body, html.HtmlJob(features, ct, hosts), random.Random(seed))


def cfemails(out: str) -> list[str]:
    return [cf_decode(h) for h in re.findall(r'data-cfemail="([0-9a-f]+)"', out)]


def protected_links(out: str) -> list[str]:
    return [cf_decode(h) for h in re.findall(r'email-protection#([0-9a-f]+)"', out)]


# ---- Email Obfuscation ----


def test_encoding_is_cloudflares_and_decodes_back():
    assert cf_encode("a@b.co", 0x5A) == "5a" + "".join(f"{b ^ 0x5A:02x}" for b in b"a@b.co")
    for address in ("alice@example.com", "Jürgen.Groß@example.de", "x+y@z.io"):
        for key in (0, 1, 0x7F, 0xFF):
            assert cf_decode(cf_encode(address, key)) == address


def test_addresses_in_text_become_cf_email_markup_and_decode_back():
    out = rewrite(PAGE).body.decode()
    assert cfemails(out) == ["alice@example.com", "bob.smith+news@mail.example.org",
                             "carol@example.com", "grace@example.com"]
    assert out.count('class="__cf_email__"') == 4
    assert ('<a href="/cdn-cgi/l/email-protection" class="__cf_email__" data-cfemail="'
            in out)
    assert "[email&#160;protected]</a>" in out


def test_mailto_links_point_at_email_protection_and_link_text_becomes_a_span():
    out = rewrite(PAGE).body.decode()
    assert protected_links(out) == ["Jürgen.Groß@example.de?subject=Grüße&body=Hallo",
                                    "carol@example.com"]
    assert re.search(r'<a href="/cdn-cgi/l/email-protection#[0-9a-f]+"><span '
                     r'class="__cf_email__" data-cfemail="[0-9a-f]+">\[email&#160;protected\]'
                     r"</span></a>", out)


@pytest.mark.parametrize("address", ["office@example.com", "head@example.com",
                                     "script@example.com", "dave@example.com", "eve@example.com",
                                     "frank@example.com", "noscript@example.com",
                                     "textarea@example.com", "xmp@example.com"])
def test_skipped_exactly_where_cloudflare_skips(address):
    # head, script, attributes other than a href, comments, email_off, noscript,
    # textarea, xmp (facts 3.1.3)
    assert address in rewrite(PAGE).body.decode()


def test_a_page_whose_only_addresses_are_mailto_links_gets_the_decoder_too():
    """The protected link is decoded by the script; without it the link is dead."""
    page = b'<html><body><p><a href="mailto:y@example.com">contact us</a></p></body></html>'
    result = rewrite(page.decode())
    out = result.body.decode()
    assert result.counts == {"email_obfuscation": {"addresses": 0, "mailto_links": 1}}
    assert protected_links(out) == ["y@example.com"]
    assert out.count("/cloudflare-static/email-decode.min.js") == 1
    assert out.index("email-decode.min.js") < out.index("</body>")


def test_counts_and_decoder_injected_once_before_the_first_later_script():
    result = rewrite(PAGE)
    out = result.body.decode()
    assert result.counts == {"email_obfuscation": {"addresses": 4, "mailto_links": 2}}
    decoder = ('<script data-cfasync="false" '
               'src="/cdn-cgi/scripts/5c5dd728/cloudflare-static/email-decode.min.js"></script>')
    assert out.count(decoder) == 1
    assert out.index(decoder) < out.index('<script src="/app.js">')
    assert out.index(decoder) > out.index("verschachtelt")


def test_decoder_goes_before_body_end_without_a_later_script_and_at_the_end_without_body():
    out = rewrite("<html><body><p>a@example.com</p></body></html>").body.decode()
    assert out.endswith('email-decode.min.js"></script></body></html>')
    fragment = rewrite("<p>a@example.com</p>").body.decode()
    assert fragment.endswith('email-decode.min.js"></script>')


def test_a_page_without_addresses_comes_out_byte_for_byte():
    page = PAGE.replace("@", " at ").replace("mailto:", "").encode()
    result = rewrite(page, EO + AHR + RL)
    # only the scripts change (Rocket Loader); with EO alone nothing does
    assert rewrite(page).body == page
    assert result.counts["email_obfuscation"] == {"addresses": 0, "mailto_links": 0}


def test_bytes_outside_rewritten_spans_are_exact():
    page = ('<!doctype html>\r\n<HTML><Body BGCOLOR=white>\r\n<P CLASS=x>caf\u00e9 &amp; '
            '&#169; <br/> Mail: z@example.com!</P>\r\n<img src=x.png alt=\'q\'>\r\n</Body>'
            '</HTML>\r\n').encode()
    out = rewrite(page).body
    before, _, after = page.partition(b"z@example.com")
    assert out.startswith(before)
    assert out.endswith(after.replace(b"</Body>", b"").replace(b"</HTML>\r\n", b"")
                        ) or after.split(b"</Body>")[0] in out
    assert out.count(b"</Body></HTML>\r\n") == 1


def test_a_long_text_node_is_one_chunk_so_no_address_is_split():
    # engine.py writes the document in one piece; lol-html then hands over a text node of
    # any length in one chunk (measured with its bindings). Addresses at 64 KiB and 1 MiB
    # boundaries:
    for at in (64 * 1024, 1 << 20):
        prefix = "<html><body><p>" + "x " * ((at - 20) // 2)
        page = prefix + " alice@example.com and more</p></body></html>"
        out = rewrite(page).body.decode()
        assert cfemails(out) == ["alice@example.com"] and "alice@" not in out


def test_email_off_also_covers_mailto_links_on_a_page_without_addresses_in_text():
    page = ('<p><!--email_off--><a href="mailto:x@example.com">x</a><!--/email_off-->'
            '<a href="mailto:y@example.com">y</a></p>')
    out = rewrite(page).body.decode()
    assert 'href="mailto:x@example.com"' in out and protected_links(out) == ["y@example.com"]


def test_false_positives_cloudflare_is_known_for_are_reproduced():
    out = rewrite("<p>rabbit@node.name.com and @user@mastodon.social</p>").body.decode()
    assert cfemails(out) == ["rabbit@node.name.com", "user@mastodon.social"]


def test_keys_are_random_per_address():
    out = rewrite("<p>a@example.com a@example.com a@example.com a@example.com</p>").body.decode()
    keys = {h[:2] for h in re.findall(r'data-cfemail="([0-9a-f]+)"', out)}
    assert len(keys) > 1


# ---- charsets ----


def test_legacy_charset_is_rewritten_and_its_bytes_kept():
    page = ("<html><head><meta charset=iso-8859-1></head><body><p>Gr\u00fc\u00dfe, "
            "m\u00fcller@example.de schreibt: a@example.de</p></body></html>").encode("latin-1")
    result = rewrite(page)
    assert result.charset == "iso8859-1"
    # a non-ASCII local part is not an address to the (ASCII) pattern, nor is its tail
    assert b"Gr\xfc\xdfe, m\xfcller@example.de schreibt: " in result.body
    assert cfemails(result.body.decode("latin-1")) == ["a@example.de"]
    assert b"\xef\xbf\xbd" not in result.body  # nothing replaced by U+FFFD


def test_charset_from_content_type_wins_and_windows_1252_round_trips():
    page = "<p>\u201cquote\u201d a@example.com</p>".encode("cp1252")
    result = rewrite(page, ct="windows-1252")
    assert result.charset == "cp1252" and result.body.startswith(b"<p>\x93quote\x94 ")


def test_charset_detection():
    assert charset.from_content_type(b"text/html; charset=\"Shift_JIS\"") == "Shift_JIS"
    assert charset.from_content_type(b"text/html") is None
    assert charset.detect(None, b"\xef\xbb\xbf<p>") == "utf-8"
    assert charset.detect(None, b'<meta http-equiv="Content-Type" '
                                b'content="text/html; charset=EUC-JP">') == "euc_jp"
    assert charset.detect(None, b"<p>nothing declared</p>") == "utf-8"


@pytest.mark.parametrize(("page", "ct", "why"), [
    (b"<p>caf\xe9 a@example.com</p>", None, "not valid UTF-8 at byte 6"),
    (b"<p>a@example.com</p>", "x-klingon", "unknown charset 'x-klingon'"),
    (b"<p>\x81 a@example.com</p>", "windows-1252", "not valid cp1252"),
])
def test_a_page_that_cannot_round_trip_is_refused(page, ct, why):
    with pytest.raises(html.RewriteError, match=re.escape(why)):
        rewrite(page, ct=ct)


# ---- Automatic HTTPS Rewrites ----

AHR_PAGE = """<html><head>
<script src="http://example.com/a.js"></script>
<script src="http://cdn.other.net/b.js"></script>
<link rel="stylesheet" href="http://localhost:8000/s.css">
<link rel="stylesheet" href="http://static.example.com/t.css">
</head><body>
<iframe src="http://dev.localhost/frame"></iframe>
<img src="http://localhost/i.png" srcset="http://example.com/1x.png 1x, http://other.net/2x.png 2x">
<img SRC="HTTP://example.com/upper.png">
<video src="http://example.com/v.mp4" poster="http://example.com/p.jpg"></video>
<a href="http://example.com/page">known</a> <a href="http://other.net/page">unknown</a>
<form action="http://example.com/post"></form>
<a href="https://example.com/already">ok</a> <a href="/relative">rel</a>
<p>Text http://example.com/ stays text</p>
</body></html>"""


def test_https_rewrites_follow_the_documented_model():
    result = rewrite(AHR_PAGE, AHR, hosts=("example.com", "*.example.com"))
    out = result.body.decode()
    for upgraded in ('src="https://example.com/a.js"', 'href="https://localhost:8000/s.css"',
                     'href="https://static.example.com/t.css"', 'src="https://dev.localhost/frame"',
                     'srcset="https://example.com/1x.png 1x, http://other.net/2x.png 2x"',
                     'SRC="https://example.com/upper.png"', 'src="https://example.com/v.mp4"',
                     'poster="https://example.com/p.jpg"', 'href="https://example.com/page"',
                     'action="https://example.com/post"'):
        assert upgraded in out, upgraded
    for kept in ('src="http://cdn.other.net/b.js"', 'src="http://localhost/i.png"',
                 'href="http://other.net/page"', "Text http://example.com/ stays text",
                 'href="https://example.com/already"', 'href="/relative"'):
        assert kept in out, kept
    assert result.counts == {"automatic_https_rewrites": {"urls": 10, "own_host": 0}}


def test_https_hosts_default_to_the_request_host_and_validate_in_the_rules_file():
    _, _, ex = exchange(zone(html_features=True), "gzip", body=AHR_PAGE.encode())
    # the request's Host is example.com: its subdomains are not known to serve HTTPS
    assert ex.content.recode is None
    assert ex.body.features["automatic_https_rewrites"] == {"urls": 9, "own_host": 7}
    from addon.http import codings
    out = codings.decode(ex.body.data, "gzip")
    assert b'href="http://static.example.com/t.css"' in out
    assert b'src="https://example.com/a.js"' in out
    assert parse_rules("plan: pro\nhttps_hosts: [a.com, '*.b.org']\n").https_hosts == (
        "a.com", "*.b.org")
    with pytest.raises(RulesFileError, match=r"rules.yaml:2:15: https_hosts\[1\]: 'a.com:8080'"):
        parse_rules("plan: pro\nhttps_hosts: [a.com:8080]\n")
    with pytest.raises(RulesFileError, match=r"rules.yaml:2:14: https_hosts: must be a list"):
        parse_rules("plan: pro\nhttps_hosts: a.com\n")


def test_a_page_over_plain_http_whose_own_links_are_upgraded_says_what_follows():
    """The browser then comes back over HTTPS, through mitmproxy's certificate."""
    from addon.http.messages import Request
    from addon.http.messages import Response
    from tests.support.edge_helpers import through

    page = Response(200, ((b"Content-Type", b"text/html"),), AHR_PAGE.encode())
    for scheme, noted in (("http", True), ("https", False)):
        request = Request(scheme=scheme, host="example.com", target="/p",
                          headers=((b"Accept-Encoding", b"gzip"),))
        notes = " ".join(through(zone(html_features=True), request, page).result.record.notes)
        assert ("turned 7 link(s) to this very host into https://" in notes) is noted
        assert ("trusts mitmproxy's CA" in notes) is noted


# ---- Rocket Loader ----

RL_PAGE = """<html><head>
<script src="/head.js"></script>
<script type="text/javascript">var a = 1;</script>
</head><body>
<script data-cfasync="false" src="/opt-out.js"></script>
<script src="/too-late.js" data-cfasync="false"></script>
<script data-cfasync='false'>var inline_opt_out = 1;</script>
<script type="module" src="/m.js"></script>
<script type="application/ld+json">{"@type": "Thing"}</script>
<script type="application/javascript">var b = 2;</script>
</body></html>"""


def test_rocket_loader_defers_classic_scripts_and_honours_the_opt_out():
    result = rewrite(RL_PAGE, RL, seed=3)
    out = result.body.decode()
    token = re.search(r'data-cf-settings="([0-9a-f]{24})-\|49"', out).group(1)
    assert f'<script src="/head.js" type="{token}-text/javascript">' in out
    assert f'<script type="{token}-text/javascript">var a = 1;' in out
    assert f'<script src="/too-late.js" data-cfasync="false" type="{token}-text/javascript">' in out
    assert f'<script type="{token}-application/javascript">var b = 2;' in out
    for untouched in ('<script data-cfasync="false" src="/opt-out.js">',
                      "<script data-cfasync='false'>var inline_opt_out",
                      '<script type="module" src="/m.js">',
                      '<script type="application/ld+json">'):
        assert untouched in out
    assert out.endswith(f'<script src="/cdn-cgi/scripts/7d0fa10a/cloudflare-static/'
                        f'rocket-loader.min.js" data-cf-settings="{token}-|49" defer></script>'
                        "</body></html>")
    assert result.counts == {"rocket_loader": {"scripts_deferred": 4, "scripts_opted_out": 2}}


def test_opt_out_needs_false_before_src():
    assert opted_out([("data-cfasync", "false"), ("src", "x")])
    assert opted_out([("DATA-CFASYNC", " FALSE ")])
    assert not opted_out([("src", "x"), ("data-cfasync", "false")])
    assert not opted_out([("data-cfasync", "true"), ("src", "x")])


def test_no_scripts_no_loader():
    page = b"<html><body><p>static</p></body></html>"
    assert rewrite(page, RL).body == page


# ---- Mirage ----


def test_mirage_hides_images_behind_data_cfsrc_with_a_noscript_fallback():
    result = rewrite('<body><img src="/a.jpg" alt="A" style="border:0"><noscript><img src="/n.jpg">'
                     "</noscript></body>", ("mirage",))
    out = result.body.decode()
    assert ('<img alt="A" style="display:none;visibility:hidden;border:0" data-cfsrc="/a.jpg">'
            '<noscript><img src="/a.jpg"></noscript>') in out
    assert 'mirage2.min.js"></script></body>' in out
    assert result.counts == {"mirage": {"images": 1}}


def test_which_features_apply():
    on = {"email_obfuscation": True, "automatic_https_rewrites": True, "rocket_loader": True,
          "mirage": True}
    assert html.active_features(on, "text/html", "pro") == (
        "email_obfuscation", "automatic_https_rewrites", "rocket_loader", "mirage")
    assert html.active_features(on, "application/xhtml+xml", "pro") == ("email_obfuscation",)
    assert html.active_features(on, "text/html", "free") == (
        "email_obfuscation", "automatic_https_rewrites", "rocket_loader")
    assert html.active_features(on, "application/json", "pro") == ()


# ---- the engine ----


def test_element_marks_are_set_before_the_document_text_handler_runs():
    # engine.py relies on lol-html calling element-scoped text handlers first
    seen = []
    rw = Rewriter()
    rw.mark_text_inside("script, b", "m")
    rw.on_text(lambda text, marks: seen.append((text, "m" in marks)))
    rw.run(b"<p>a<b>b</b>c<script>d</script>e</p>")
    assert seen == [("a", False), ("b", True), ("c", False), ("d", True), ("e", False)]


def test_engine_output_is_byte_exact_without_changes():
    page = PAGE.encode() + b"<p>\xf0\x9f\x98\x80 emoji</p>"
    rw = Rewriter()
    rw.on_text(lambda text, marks: None)
    assert rw.run(page) == page


# ---- the edge's /cdn-cgi/ paths ----


@pytest.mark.parametrize(("path", "status", "kind", "needle"), [
    ("/cdn-cgi/scripts/5c5dd728/cloudflare-static/email-decode.min.js", 200, b"javascript",
     b"data-cfemail"),
    ("/cdn-cgi/scripts/f2bf09f8/cloudflare-static/email-decode.min.js", 200, b"javascript",
     b"decodeURIComponent"),
    ("/cdn-cgi/scripts/7d0fa10a/cloudflare-static/rocket-loader.min.js", 200, b"javascript",
     b"data-cf-settings"),
    ("/cdn-cgi/scripts/04b3eb47/cloudflare-static/mirage2.min.js", 200, b"javascript",
     b"data-cfsrc"),
    ("/cdn-cgi/l/email-protection", 200, b"text/html", b"Email Protection"),
    ("/cdn-cgi/nothing", 404, b"text/plain", b"404"),
])
def test_cdn_cgi_answers(path, status, kind, needle):
    got_status, headers, body, _ = cdn_cgi.answer(path)
    assert got_status == status and kind in dict(headers)[b"content-type"] and needle in body


# ---- Polish ----


def test_polish_applies_to_cacheable_raster_images_on_paid_plans():
    ok = polish.applies("lossless", "pro", "image/jpeg", 200, ["accept-encoding"], {})
    assert ok == polish.Verdict("lossless")
    assert polish.applies("off", "pro", "image/jpeg", 200, [], {}).mode == ""
    assert polish.applies("lossy", "pro", "image/webp", 200, [], {}).mode == ""
    assert "Pro plan" in polish.applies("lossy", "free", "image/png", 200, [], {}).note
    assert "vary_header_present" in polish.applies("lossy", "pro", "image/png", 200,
                                                   ["accept"], {}).note
    assert "uncacheable" in polish.applies("lossy", "pro", "image/gif", 200, [],
                                           {"private": None}).note


def test_polish_weakens_the_etag_and_adds_cf_polished_without_touching_the_bytes():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    z = zone("  polish: lossless\n")
    _, response, ex = exchange(z, "gzip, br", body=png, content_type="image/png")
    assert ex.decision.action == "polish" and ex.decision.basis == "modelled"
    assert ex.content.edits == {b"etag": b'W/"foobar"', b"cf-polished": b"origSize=1032"}
    assert ex.body.data is None and not ex.content.drop_content_length
    assert "not recompressed" in ex.decision.reason
    _, _, ex = exchange(z, "gzip", body=png, content_type="image/png", etag='W/"w"')
    assert ex.content.edits[b"etag"] == b'W/"w"'
    _, _, ex = exchange(z, "gzip", body=png, content_type="image/png",
                          extra_headers=[(b"Cache-Control", b"no-store")])
    assert ex.decision.action == "pass" and "uncacheable" in ex.content.notes[0]


# ---- the decision and the pipeline ----


@pytest.mark.parametrize(("accept", "origin", "served"), [
    ("gzip, br", "gzip", "br"), ("gzip, br", "br", "br"), ("gzip", "identity", "gzip"),
    ("br", "br", "br"), (None, "gzip", "identity"), ("deflate", "identity", "identity"),
])
@pytest.mark.parametrize("etag", ['"v1"', 'W/"v1"', "v1-unquoted", None])
def test_an_active_feature_removes_the_etag_and_recodes_as_the_edge_chooses(accept, origin,
                                                                             served, etag):
    page = PAGE.encode()
    _, _, ex = exchange(zone(html_features=True), accept, origin, body=page, etag=etag)
    d = ex.decision
    assert d.action == "rewrite" and d.etag_out is None
    assert d.etag_action == ("absent" if etag is None else "removed")
    assert d.encoding_out == served and d.basis == "documented"
    assert ex.content.edits[b"etag"] is None and ex.content.drop_content_length
    assert (ex.content.edits[b"content-encoding"] or b"identity").decode() == served
    from addon.http import codings
    out = codings.decode(ex.body.data, served).decode()
    assert cfemails(out)[0] == "alice@example.com"
    assert ex.body.features["email_obfuscation"] == {"addresses": 4, "mailto_links": 2}


def test_rocket_loader_alone_is_modelled_and_the_reason_says_so():
    z = zone("  rocket_loader: on\n")
    _, _, ex = exchange(z, "gzip, br", body=RL_PAGE.encode())
    assert ex.decision.basis == "modelled"
    assert "modelled, facts 2.3 step 2" in ex.decision.reason


def test_no_transform_and_head_and_304_are_never_rewritten():
    z = zone(html_features=True)
    _, _, ex = exchange(z, "gzip", body=PAGE.encode(),
                          extra_headers=[(b"Cache-Control", b"no-transform")])
    assert ex.decision.action == "pass" and ex.decision.etag_out == b'"foobar"'
    # a HEAD gets the headers of the GET, whose ETag the features remove; no body to rewrite
    _, _, ex = exchange(z, "gzip", body=b"", method="HEAD")
    assert ex.decision.action == "rewrite" and ex.decision.etag_out is None
    assert ex.content.edits[b"etag"] is None and ex.content.recode is None and ex.body.data is None
    _, _, ex = exchange(z, "gzip", body=b"", status=304)
    assert ex.decision.action == "pass"


def test_a_page_that_cannot_be_rewritten_passes_through_untouched_with_the_reason():
    _, response, ex = exchange(zone(html_features=True), "gzip", "gzip",
                                 body=b"<p>caf\xe9 a@example.com</p>" * 10)
    assert ex.decision.action == "pass" and ex.body.data is None
    assert "could not be rewritten byte-faithfully (not valid UTF-8" in ex.decision.reason
    assert ex.decision.etag_out == b'"foobar"'


def test_features_off_by_configuration_rule_and_under_respect_strong_etags():
    z = zone("""configuration_rules:
  - expression: starts_with(http.request.uri.path, "/plain/")
    action_parameters: {email_obfuscation: false, automatic_https_rewrites: false}
""", html_features=True)
    _, _, ex = exchange(z, "gzip, br", "gzip", body=PAGE.encode(), path="/plain/x.html")
    assert ex.decision.action == "transcode" and ex.decision.etag_out == b'W/"foobar"'
    _, _, ex = exchange(zone(RSE_ON, html_features=True), "gzip, br", "gzip", body=PAGE.encode())
    assert ex.decision.action == "pass" and ex.decision.etag_out == b'"foobar"'
    assert "Respect Strong ETags turned off Email Obfuscation" in ex.content.notes[0]


def test_the_log_record_lists_what_each_feature_changed():
    z = zone("  rocket_loader: on\n", html_features=True)
    _, _, ex = exchange(z, "gzip", body=PAGE.encode())
    entry = ex.result.record.as_dict()
    assert entry["action"] == "rewrite" and entry["etag_out"] is None
    assert entry["features"] == {
        "email_obfuscation": {"addresses": 4, "mailto_links": 2},
        "automatic_https_rewrites": {"urls": 0, "own_host": 0},
        "rocket_loader": {"scripts_deferred": 2, "scripts_opted_out": 0},
    }


def test_nothing_of_lol_html_outlives_a_rewrite_on_its_thread():
    """The adapter rewrites big pages in a worker thread. lol-html's elements may only be
    freed on the thread that made them; anything a rewrite leaves in a reference cycle is
    freed later by whichever thread runs the collector, which lol-html reports as an error
    (and leaks the object)."""
    page = (b"<html><head><title>t</title></head><body><p>a@example.com "
            b'<a href="mailto:b@example.com">b</a> <img src="http://example.com/x.png">'
            b"<script>1</script></p></body></html>")
    job = html.HtmlJob(("email_obfuscation", "automatic_https_rewrites", "rocket_loader",
                        "mirage"), None, ("example.com",))
    errors: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: errors.append(repr(u.exc_value))
    try:
        gc.collect()
        worker = threading.Thread(target=lambda: [html.rewrite(page, job) for _ in range(20)])
        worker.start()
        worker.join()
        gc.collect()  # on this thread, not the worker's
    finally:
        sys.unraisablehook = hook
    assert not [e for e in errors if "unsendable" in e], errors
