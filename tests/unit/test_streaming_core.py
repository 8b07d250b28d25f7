"""Streaming in the pure core: the codecs piece by piece, a body stream's transformation
and counting, the HTML rewrite of a page split anywhere, and the decision on headers."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from addon import html
from addon.compression.stream import BodyStream
from addon.compression.stream import Threaded
from addon.exchange.content import content_phase
from addon.exchange.request import request_phases
from addon.http import codings
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support import oracle
from tests.support.edge_helpers import zone
from tests.unit.test_html import PAGE

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@PROPERTY
@given(st.binary(max_size=5000) | st.sampled_from([b"", b"x" * 70000]),
       st.sampled_from(["identity", "gzip", "br", "zstd", "deflate"]),
       st.lists(st.integers(0, 80000), max_size=8), st.sampled_from([7, 512, 65536]))
def test_a_body_decoded_piece_by_piece_is_the_body(body, coding, cuts, step):
    raw = codings.encode(body, coding)
    d = codings.StreamDecoder(coding, step=step)
    out = b"".join(b"".join(d.feed(part)) for part in _split(raw, cuts))
    d.end()
    assert out == body


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_a_body_cut_short_or_with_garbage_is_a_decode_error(coding):
    raw = codings.encode(b"some text to encode " * 500, coding)
    d = codings.StreamDecoder(coding)
    list(d.feed(raw[: len(raw) // 2]))
    with pytest.raises(codings.DecodeError):
        d.end()
    d = codings.StreamDecoder(coding)
    with pytest.raises(codings.DecodeError):
        list(d.feed(b"\x00 this is not " + coding.encode()))
        d.end()


def test_a_bomb_streams_in_bounded_pieces():
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(c.compress(bytes(1 << 20)) for _ in range(64)) + c.flush()
    d = codings.StreamDecoder("gzip", step=1 << 16)
    sizes = [len(p) for i in range(0, len(bomb), 4096) for p in d.feed(bomb[i:i + 4096])]
    d.end()
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 16


@PROPERTY
@given(st.binary(max_size=3000), st.sampled_from(["gzip", "br", "zstd", "identity"]),
       st.lists(st.integers(0, 3000), max_size=6))
def test_every_flush_hands_over_what_decodes_so_far(body, coding, cuts):
    e = codings.StreamEncoder(coding)
    sent, pos = b"", 0
    for part in _split(body, cuts):
        sent += e.feed(part) + e.flush()
        pos += len(part)
        # what left so far decodes to the body so far: nothing waits in the encoder
        so_far = codings.StreamDecoder(coding)
        assert b"".join(so_far.feed(sent)) == body[:pos]
    sent += e.finish()
    assert codings.decode(sent, coding) == body


@PROPERTY
@given(st.sampled_from(["identity", "gzip", "br", "zstd", "deflate"]),
       st.sampled_from(["identity", "gzip", "br", "zstd"]),
       st.lists(st.integers(0, 40000), max_size=8), st.integers(0, 50000))
def test_a_body_stream_re_codes_counts_and_keeps_a_copy(source, target, cuts, keep):
    body = b"The quick brown fox jumps over the lazy dog. " * 800
    raw = codings.encode(body, source)
    stream = BodyStream(source, target, keep=keep)
    out = b"".join(b"".join(stream(part)) for part in _split(raw, cuts) if part)
    out += b"".join(stream(b""))
    assert oracle.decode(out, [] if target == "identity" else [target]) == body
    assert stream.bytes_in == len(raw) and stream.bytes_out == len(out)
    assert stream.stored == (raw if 0 < len(raw) <= keep else None)


def test_a_body_that_breaks_midway_stops_there_and_says_why():
    raw = codings.encode(b"abc " * 20000, "gzip")
    broken = raw[:2000] + b"\xff" * 50 + raw[2050:]
    stream = BodyStream("gzip", "br")
    out = [stream(broken[i:i + 1000]) for i in range(0, len(broken), 1000)]
    assert stream.error and out[-1] == [] and stream(b"") == []
    assert stream.bytes_in == len(broken)


def test_a_stream_that_never_ended_is_not_kept():
    stream = BodyStream(keep=1 << 20)
    stream(b"part one")
    assert stream.stored is None  # no end: the origin was cut off
    assert stream(b"") == [] and stream.stored == b"part one"


@PROPERTY
@given(st.lists(st.integers(0, len(PAGE.encode())), max_size=12))
def test_a_page_rewritten_as_it_streams_is_the_page_rewritten_whole(cuts):
    page = PAGE.encode()
    job = html.HtmlJob(("email_obfuscation", "automatic_https_rewrites", "rocket_loader",
                        "mirage"), "utf-8", ("example.com",), "example.com")
    whole = html.rewrite(page, job, random.Random(7))
    stream = html.StreamRewrite(job, random.Random(7))
    out = b"".join(stream.feed(part) for part in _split(page, cuts)) + stream.end()
    assert out == whole.body and stream.counts() == whole.counts


def _decide(headers, **facts):
    z = zone(html_features=True)
    state = request_phases(z, Request(headers=((b"Accept-Encoding", b"br"),)))
    return content_phase(z, state, Response(200, tuple(headers), None, streaming=True, **facts))


def test_the_decision_on_headers_for_a_body_that_will_stream():
    css = (b"Content-Type", b"text/css")
    content = _decide([css, (b"Content-Length", b"100000")])
    assert content.decision.action == "compress" and content.recode.target == "br"
    small = _decide([css, (b"Content-Length", b"10")])  # the minimums still hold
    assert small.decision.action == "pass"
    unknown = _decide([css])  # no length: above the minimums (modelled), and said so
    assert unknown.decision.action == "compress" and "streamed body" in unknown.notes[-1]
    late = _decide([css], size_hint=1 << 20)  # past the threshold: known large
    assert late.decision.action == "compress" and not late.notes


def test_a_streamed_page_in_another_charset_is_not_rewritten():
    content = _decide([(b"Content-Type", b"text/html; charset=iso-8859-1")])
    assert content.decision.action != "rewrite"
    assert "streamed page in iso-8859-1 is not rewritten" in " ".join(content.notes)
    utf8 = _decide([(b"Content-Type", b"text/html; charset=UTF-8")])
    assert utf8.decision.action == "rewrite" and utf8.recode.html is not None


@PROPERTY
@given(st.sampled_from(["identity", "gzip", "br"]), st.sampled_from(["br", "gzip", "identity"]),
       st.lists(st.integers(0, 400000), max_size=10))
def test_a_threaded_stream_gives_the_same_bytes_in_the_same_order(source, target, cuts):
    body = b"The quick brown fox jumps over the lazy dog. " * 8000
    raw = codings.encode(body, source)
    threaded = Threaded(BodyStream(source, target))
    out = b"".join(b"".join(threaded(part)) for part in _split(raw, cuts) if part)
    out += b"".join(threaded(b""))
    assert oracle.decode(out, [] if target == "identity" else [target]) == body
    assert threaded.bytes_in == len(raw) and threaded.bytes_out == len(out)
    assert threaded.worker is None and not threaded.pending


def test_a_small_piece_after_big_ones_hands_over_everything_so_far():
    body = b"x" * 600_000 + b"the end of a burst\n"
    threaded = Threaded(BodyStream("identity", "gzip"))
    sent = b"".join(b"".join(threaded(body[i:i + 65536])) for i in range(0, 589824, 65536))
    assert threaded.pending or threaded.worker is not None  # the worker had pieces
    sent += b"".join(threaded(body[589824:]))  # smaller than a full read: a pause
    so_far = codings.StreamDecoder("gzip")
    assert b"".join(so_far.feed(sent)) == body  # nothing is left with the worker
