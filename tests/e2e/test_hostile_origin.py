"""A hostile origin, end to end: real mitmdump with the addon, raw bytes from a loopback origin.

Every response is either converted correctly or passed through untouched, never
half-modified, and every one is logged.
"""

from __future__ import annotations

import gzip
import zlib

import pytest

from addon.http import codings
from tests.support import oracle
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import Mitmdump

PAGE = b"<p>A page from a hostile origin, long enough to be compressed.</p>\n" * 40
HTML = (b"Content-Type", b"text/html; charset=utf-8")
GZ = gzip.compress(PAGE)
BR = codings.encode(PAGE, "br")
BOMB = zlib.compressobj(9, zlib.DEFLATED, 31)
BOMB = b"".join(BOMB.compress(bytes(1 << 20)) for _ in range(64)) + BOMB.flush()


def ok(*headers: tuple[bytes, bytes], body: bytes = PAGE, status: int = 200, **kw) -> Route:
    return Route(response(status, [*headers], body, **kw))


CASES: dict[bytes, Route] = {
    b"/truncated-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"t"'),
                           body=GZ[:-30]),
    b"/mislabelled-plain-as-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"m"')),
    b"/mislabelled-br-as-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), body=BR),
    b"/trailing-garbage": ok(HTML, (b"Content-Encoding", b"gzip"), body=GZ + b"garbage"),
    b"/multi-member-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"mm"'),
                              body=gzip.compress(PAGE[:500]) + gzip.compress(PAGE[500:])),
    b"/stacked-one-field": ok(HTML, (b"Content-Encoding", b"gzip, br"),
                              body=codings.encode(GZ, "br")),
    b"/stacked-two-fields": ok(HTML, (b"Content-Encoding", b"gzip"), (b"Content-Encoding", b"br"),
                               body=codings.encode(GZ, "br")),
    b"/unknown-coding": ok(HTML, (b"Content-Encoding", b"x-custom"), body=b"\x00\x01" * 100),
    b"/deflate": ok(HTML, (b"Content-Encoding", b"deflate"), body=zlib.compress(PAGE)),
    b"/zstd": ok(HTML, (b"Content-Encoding", b"zstd"), body=codings.encode(PAGE, "zstd")),
    b"/bomb": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"bomb"'), body=BOMB),
    b"/empty-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"e"'), body=b""),
    b"/empty": ok(HTML, (b"ETag", b'"e"'), body=b""),
    b"/partial": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"p"'),
                    (b"Content-Range", b"bytes 0-%d/99999" % (len(GZ) - 1)), body=GZ, status=206),
    b"/two-etags": ok(HTML, (b"ETag", b'"a"'), (b"ETag", b'"b"')),
    b"/non-ascii": ok(HTML, (b"ETag", b'"caf\xe9"'), (b"Vary", b"X-Caf\xe9"),
                      (b"X-Note", b"\xff\xfe raw")),
    b"/utf8-etag": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"caf\xc3\xa9"'), body=GZ),
    b"/malformed-etag": ok(HTML, (b"ETag", b"index.fa99.html")),
    b"/weak-etag-br": ok(HTML, (b"Content-Encoding", b"br"), (b"ETag", b'W/"w"'), body=BR),
    b"/oversized-header": ok(HTML, (b"ETag", b'"big"'), (b"X-Big", b"v" * 16000)),
    b"/http10": Route(response(200, [HTML, (b"ETag", b'"old"')], PAGE, version=b"HTTP/1.0",
                               length=False), close=True),
    b"/chunked-gzip": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"c"'), body=GZ,
                         chunked=True),
    b"/no-transform": ok(HTML, (b"Content-Encoding", b"gzip"), (b"Cache-Control",
                                                                 b"public, no-transform"),
                         (b"ETag", b'"nt"'), body=GZ),
    b"/not-modified": ok((b"ETag", b'"nm"'), (b"Content-Encoding", b"gzip"), status=304,
                         body=b"", length=False),
    b"/no-content": ok((b"ETag", b'"nc"'), status=204, body=b"", length=False),
    b"/server-error": ok(HTML, (b"Content-Encoding", b"gzip"), (b"ETag", b'"se"'), body=GZ,
                         status=500),
    b"/odd-content-type": ok((b"Content-Type", b"TEXT/HTML;;; charset=\xff"), (b"ETag", b'"ct"')),
    b"/no-content-type": ok((b"ETag", b'"x"'), (b"Content-Encoding", b"gzip"), body=GZ),
}

VISITORS: list[bytes | None] = [None, b"gzip", b"br", b"gzip, br", b"*", b"identity;q=0",
                                b"br;q=0, gzip", b"\xff\xfe;q=abc, GZIP"]


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    origin = Origin(CASES)
    rules = "plan: pro\nsettings: {email_obfuscation: off, automatic_https_rewrites: off}\n"
    proxy = Mitmdump(tmp_path_factory.mktemp("hostile"), rules,
                     "--set", "cf_decode_limit=8m", reverse_to=origin.port)
    yield proxy
    proxy.stop()
    origin.stop()


def _origin_body(route: Route) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """What the origin sent: headers and the body without chunked framing."""
    head, _, body = route.raw.partition(b"\r\n\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]
    if any(k == b"Transfer-Encoding" for k, _ in headers):
        out, rest = [], body
        while (size := int(rest.split(b"\r\n", 1)[0], 16)):
            rest = rest.split(b"\r\n", 1)[1]
            out.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(out)
    return headers, body


def _values(headers, name: bytes) -> list[bytes]:
    return [v for k, v in headers if k.lower() == name]


def _exchange_all(edge, method: bytes) -> dict:
    async def go():
        shared = await Client.connect(edge.port)
        got = {}
        for path, route in CASES.items():
            for visitor in VISITORS:
                # a close-delimited response ends its connection: give it one of its own
                client = await Client.connect(edge.port) if route.close else shared
                headers = [(b"Accept-Encoding", visitor)] if visitor is not None else []
                target = path + b"?%s=%d" % (method, len(got))
                try:
                    got[path, visitor] = target, await client.get(target, headers,
                                                                  method=method)
                except Exception as e:
                    raise AssertionError(f"{path} {visitor}: {e!r}\n{edge.output()}") from e
                if route.close:
                    await client.close()
        await shared.close()
        return got

    return run(go())


LIMIT = 8 << 20  # cf_decode_limit below


def test_every_hostile_response_is_readable_exact_and_logged(edge):
    """Judged by an independent oracle (tests/support/oracle.py), never by the addon's own view of
    what it did: the coding is one the visitor accepts unless the log says why not; the
    body decodes to exactly what the origin meant, or is the origin's byte for byte; the
    ETag is the origin's when the bytes are, else the documented conversion; HEAD carries
    the GET's coding and ETag; the framing is one HTTP/1.1 allows."""
    gets, heads = _exchange_all(edge, b"GET"), _exchange_all(edge, b"HEAD")
    records = {r["url"].rsplit("/", 1)[1]: r
               for r in edge.records(at_least=len(gets) + len(heads))}
    assert "Traceback" not in edge.output() and "Addon error" not in edge.output()
    for (path, visitor), (target, reply) in gets.items():
        route = CASES[path]
        sent_headers, sent_body = _origin_body(route)
        status = int(route.raw.split(b" ", 2)[1])
        record = records[target.decode()[1:]]  # every response is logged
        where = (path, visitor, record["reason"], record.get("unresolved"))
        assert reply.status == status == record["status_out"], where
        out = oracle.codings_of(reply.headers)
        assert record["encoding_out"] == (", ".join(out) or "identity"), where
        for name in (b"x-note", b"x-big", b"content-range"):
            assert reply.header(name) == (_values(sent_headers, name) or [None])[0], where
        # never a coding the visitor did not accept, unless the record says why
        refused = [c for c in out if not oracle.accepts(visitor, c)]
        origin_codings = oracle.codings_of(sent_headers)
        try:
            meant = oracle.decode(sent_body, origin_codings, LIMIT)
        except oracle.Undecodable:
            meant = None
        no_transform = any(b"no-transform" in v for v in _values(sent_headers, b"cache-control"))
        if refused:
            assert record.get("unresolved"), where
            assert meant is None or no_transform or status == 206, where
        # the body: what the origin meant, or the origin's bytes untouched
        untouched = reply.body == sent_body and out == origin_codings
        if status not in (204, 304) and not untouched:
            assert meant is not None, where
            assert oracle.decode(reply.body, out) == meant, where
        # the ETag: the origin's with the origin's bytes, else the documented conversion
        sent_etag = _values(sent_headers, b"etag")
        if untouched or status in (204, 304):
            assert _values(reply.headers, b"etag") == sent_etag, where
        else:
            assert reply.header(b"etag") == oracle.changed_etag(sent_etag), where
            assert b"accept-encoding" in (reply.header(b"vary") or b"").lower(), where
        # framing: never both; a length is the body's
        assert not (reply.header(b"content-length") and reply.header(b"transfer-encoding"))
        if reply.header(b"content-length") is not None:
            assert int(reply.header(b"content-length")) == len(reply.body), where
        # HEAD: the GET's coding and ETag, no body (but a HEAD cannot know that the GET's
        # body will turn out to be broken, or a range that cannot be decoded)
        head = heads[path, visitor][1]
        assert head.status == reply.status and head.body == b"", where
        if meant is None or refused:
            continue
        assert oracle.codings_of(head.headers) == out, where
        assert _values(head.headers, b"etag") == _values(reply.headers, b"etag"), where


def test_the_four_faults_end_to_end(edge):
    async def go():
        client = await Client.connect(edge.port)
        non_ascii = await client.get(b"/non-ascii", [(b"Accept-Encoding", b"gzip")])
        partial = await client.get(b"/partial", [])
        bomb = await client.get(b"/bomb", [(b"Accept-Encoding", b"br")])
        raw_target = await client.get(b"/caf\xe9-not-utf8", [])
        await client.close()
        return non_ascii, partial, bomb, raw_target

    non_ascii, partial, bomb, raw_target = run(go())
    # 1. header bytes: the edge compressed the page and weakened the ETag, byte-exact
    assert non_ascii.header(b"etag") == b'W/"caf\xe9"'
    assert non_ascii.header(b"vary") == b"X-Caf\xe9, Accept-Encoding"
    assert non_ascii.header(b"x-note") == b"\xff\xfe raw"
    edge.wait_records(lambda r: "not-utf8" in r["url"])  # the last of the four
    log = {r["url"]: r for r in edge.records()}
    assert log["http://127.0.0.1/non-ascii"]["etag_out"] == 'W/"caf\\xe9"'
    # 2. a 206 is never decoded
    assert partial.status == 206 and partial.body == GZ
    assert partial.header(b"content-encoding") == b"gzip"
    # 3. a request target that is not UTF-8 is logged, escaped, without a traceback
    assert raw_target.status == 404
    assert "http://127.0.0.1/caf\\xe9-not-utf8" in log
    # 4. a bomb over cf_decode_limit goes out untouched, with the reason
    assert bomb.body == BOMB and bomb.header(b"content-encoding") == b"gzip"
    assert "decode limit (cf_decode_limit, 8 MiB)" in log["http://127.0.0.1/bomb"]["reason"]
    assert "Traceback" not in edge.output()
