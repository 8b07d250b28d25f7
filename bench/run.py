"""`make bench`: what the edge costs, as ratios against a baseline measured in the same run.

Everything runs on loopback: a raw asyncio origin in its own process, mitmdump with and
without the addon, an asyncio client. Prints one table and writes it as JSON
(`bench-results.json`, or the path in $BENCH_OUT). See README, "Performance".
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import brotli

from addon.config.loader import parse_rules
from addon.exchange import EdgeContext
from addon.exchange import Exchange
from addon.exchange import run
from addon.exchange.content import content_phase
from addon.exchange.recode import recode
from addon.exchange.request import request_phases
from addon.expressions import FieldValues
from addon.expressions import Phase
from addon.expressions import compile_expression
from addon.http import codings
from addon.http.messages import Request
from addon.http.messages import Response
from tests.support.loopback import Client
from tests.support.loopback import Gated
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.mitm import MITMDUMP
from tests.support.mitm import ROOT
from tests.support.mitm import Mitmdump

# The default zone with the HTML features off: the throughput, latency and memory rows
# measure content coding; rewriting HTML has its own row (html_rewrite_cost).
RULES = (ROOT / "rules.yaml").read_text()
for _feature in ("email_obfuscation", "automatic_https_rewrites"):
    assert f"{_feature}: on" in RULES
    RULES = RULES.replace(f"{_feature}: on", f"{_feature}: off")
MiB = 1 << 20
VISITOR = [(b"Accept-Encoding", b"gzip, br")]
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
# mitmdump gets a CPU of its own; the origin and the client share the other, so that the
# proxy, the thing measured, never waits for them.
PROXY_CPUS = {0} if (os.cpu_count() or 1) >= 2 else None
LOAD_CPUS = {1} if PROXY_CPUS else None


def html(size: int) -> bytes:
    """A page that compresses like real HTML (about 5:1), not like repeated text."""
    out, n = [], 0
    while n < size:
        line = (f'<li class="item-{n % 97}"><a href="/p/{n * 7919 % 100003}">Item {n} of the '
                f'list, {n * 31 % 1009} in stock</a></li>\n').encode()
        out.append(line)
        n += len(line)
    return b"".join(out)[:size]


GIG = int(os.environ.get("BENCH_GIG", str(1 << 30)))  # the streamed body's size
EVENTS, EVENT_GAP = 20, 0.1  # server-sent events, one every 0.1 s


def text_stream(size: int, piece: int = 64 * 1024):
    """`size` bytes of HTML-like text, made piece by piece (never held whole)."""
    block = html(16 * piece)
    sent = 0
    while sent < size:
        for start in range(0, len(block), piece):
            part = block[start:start + piece][: size - sent]
            if not part:
                return
            yield part
            sent += len(part)


def paced_events(count: int, gap: float):
    """Chunked event-stream parts, each stamped with the time it leaves the origin."""
    for i in range(count):
        if i:
            time.sleep(gap)  # the origin's own pace, in its own process
        event = b"id: %d\ndata: %.6f\n\n" % (i, time.time())
        yield b"%x\r\n%s\r\n" % (len(event), event)
    yield b"0\r\n\r\n"


def bomb_gzip(decoded: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    return b"".join(c.compress(zeros) for _ in range(decoded // MiB)) + c.flush()


def routes() -> dict[bytes, Route]:
    """The origin's routes (built in the origin process)."""
    css = brotli.compress(html(2048))  # already Brotli: the edge passes it through
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2040)
    page = html(16 * 1024)
    big = html(20 * MiB)
    fifty = html(50 * MiB)

    def ok(ctype: bytes, body: bytes, enc: bytes | None = None) -> Route:
        headers = [(b"Content-Type", ctype), (b"ETag", b'"v1"')]
        if enc:
            headers.append((b"Content-Encoding", enc))
        return Route(response(200, headers, body))

    return {
        b"/gig.txt": lambda target, head: Gated(  # a new one per request: made as it goes
            response(200, [(b"Content-Type", b"text/plain")], b"", length=False)[:-2]
            + b"Content-Length: %d\r\n\r\n" % GIG, text_stream(GIG), gated=False),
        b"/events": lambda target, head: Gated(
            response(200, [(b"Content-Type", b"text/event-stream"),
                           (b"Cache-Control", b"no-cache")], b"", length=False)[:-2]
            + b"Transfer-Encoding: chunked\r\n\r\n", paced_events(EVENTS, EVENT_GAP),
            gated=False),
        # cached by extension (facts 6.1): HITs once the edge cache holds them
        b"/style.css": ok(b"text/css", css, b"br"),
        b"/logo.png": ok(b"image/png", png),
        # the same without an extension: DYNAMIC, so every request goes to the origin
        b"/style": ok(b"text/css", css, b"br"),
        b"/logo": ok(b"image/png", png),
        b"/page.html": ok(b"text/html", gzip.compress(page, 6), b"gzip"),
        b"/big.html": ok(b"text/html", gzip.compress(big, 6), b"gzip"),
        b"/fifty.html": ok(b"text/html", fifty),
        b"/fifty.html.gz": ok(b"text/html", gzip.compress(fifty, 1), b"gzip"),
        b"/bomb.html": ok(b"text/html", bomb_gzip(1024 * MiB), b"gzip"),
    }


class OriginProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "support" / "loopback.py"), "serve",
             "bench.run:routes"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        if LOAD_CPUS:
            os.sched_setaffinity(self.proc.pid, LOAD_CPUS)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---- measurements ---------------------------------------------------------------------------


async def _throughput(port: int, targets: list[bytes], conns: int, seconds: float) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker(k: int) -> None:
        nonlocal done
        c = await Client.connect(port)
        i = k
        while time.monotonic() < stop:
            r = await c.get(targets[i % len(targets)], VISITOR)
            assert r.status == 200, r.status
            done += 1
            i += 1
        await c.close()

    t = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    return done / (time.monotonic() - t)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOOR = ROOT / "bench" / "floor.py"


def throughput(tmp: Path, origin: int, targets: list[bytes], without_log: bool = False,
               floor_cache: bool = False) -> dict:
    """Requests per second through bare mitmdump, the floor (bench/floor.py: the least any
    faithful edge pays inside mitmproxy) and the addon (cf_log on), 4 keep-alive
    connections, in alternating rounds so that drift affects all alike.

    Also the proxy's CPU time per request, from /proc: mitmdump's event loop runs on one
    core, so its capacity is 1 / (CPU per request). That ratio is steadier than wall-clock
    requests per second on a shared machine, where other tenants take cycles at random.
    """
    floor_args = ["-s", str(FLOOR), "--set", f"floor_log={tmp / 'floor' / 'floor.jsonl'}"]
    if floor_cache:
        floor_args += ["--set", "floor_cache=true"]
    procs = {"bare": Mitmdump(tmp / "bare", None, reverse_to=origin, cpus=PROXY_CPUS),
             "floor": Mitmdump(tmp / "floor", None, *floor_args, reverse_to=origin,
                               cpus=PROXY_CPUS),
             "edge": Mitmdump(tmp / "edge", RULES, reverse_to=origin, cpus=PROXY_CPUS)}
    if without_log:  # what the JSON Lines record costs, for the README's explanation
        procs["nolog"] = Mitmdump(tmp / "nolog", RULES, reverse_to=origin, cpus=PROXY_CPUS,
                                  log=False)
    rates: dict[str, list[float]] = {name: [] for name in procs}
    cpu: dict[str, list[float]] = {name: [] for name in procs}
    try:
        for p in procs.values():  # warm-up
            asyncio.run(_throughput(p.port, targets, 4, 1.0))
        for _ in range(ROUNDS):
            for name, p in procs.items():
                before = _cpu_seconds(p.proc.pid)
                rate = asyncio.run(_throughput(p.port, targets, 4, ROUND_SECONDS))
                rates[name].append(rate)
                cpu[name].append((_cpu_seconds(p.proc.pid) - before) / (rate * ROUND_SECONDS))
        assert procs["edge"].records(at_least=1), "the addon logged nothing"
    finally:
        for p in procs.values():
            p.stop()
    med = {name: statistics.median(r) for name, r in rates.items()}
    cpus = {name: statistics.median(c) for name, c in cpu.items()}
    result = {"bare_rps": round(med["bare"]), "floor_rps": round(med["floor"]),
              "edge_rps": round(med["edge"]), "ratio": round(med["edge"] / med["bare"], 3),
              "floor_ratio": round(med["edge"] / med["floor"], 3),
              "floor_vs_bare": round(med["floor"] / med["bare"], 3),
              "bare_cpu_us": round(cpus["bare"] * 1e6), "floor_cpu_us": round(cpus["floor"] * 1e6),
              "edge_cpu_us": round(cpus["edge"] * 1e6),
              "cpu_ratio": round(cpus["bare"] / cpus["edge"], 3),
              "floor_cpu_ratio": round(cpus["floor"] / cpus["edge"], 3)}
    if without_log:
        n, cn = med["nolog"], cpus["nolog"]
        result |= {"nolog_rps": round(n), "nolog_ratio": round(n / med["bare"], 3),
                   "nolog_cpu_us": round(cn * 1e6), "nolog_cpu_ratio": round(cpus["bare"] / cn, 3)}
    return result


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def transcode_cost(size: int) -> dict:
    """The edge's gzip -> br re-code of an HTML page vs the same libraries called directly."""
    page = html(size)
    raw = gzip.compress(page, 6)
    zone = parse_rules(RULES)
    state = request_phases(zone, Request(headers=((b"Accept-Encoding", b"gzip, br"),)))
    facts = Response(200, ((b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip"),
                           (b"ETag", b'"v1"')), raw)

    def edge() -> bytes:  # the content phase's decision and the re-code it asks for
        done = recode(content_phase(zone, state, facts), raw, 1 << 40)
        assert done is not None and done[1].data is not None
        return done[1].data

    def direct() -> bytes:
        return brotli.compress(zlib.decompress(raw, 31), quality=codings.BROTLI_QUALITY)

    assert codings.decode(edge(), "br") == page
    repeat = 20 if size < MiB else 5
    d, e = _best_of(direct, repeat), _best_of(edge, repeat)
    return {"direct_ms": round(d * 1000, 2), "edge_ms": round(e * 1000, 2),
            "ratio": round(e / d, 3)}


def rich_page(size: int) -> bytes:
    """A page with what the HTML features look for: addresses, mailto links, http:// URLs,
    scripts and images, about one of each per 1.5 KB, inside ordinary markup."""
    block = (
        '<section class="card"><h2>Team {n}</h2><p>Contact <b>person{n}@example.com</b> or '
        '<a href="mailto:desk{n}@example.com">the desk</a>; docs at '
        '<a href="http://example.com/docs/{n}">example.com</a>.</p>\n'
        '<img src="http://example.com/img/{n}.png" alt="Team {n}" width="64" height="64">\n'
        "<script>window.cards = (window.cards || 0) + 1;</script>\n"
        '<script src="/js/card-{n}.js"></script>\n'
    )
    parts, n, total = ["<!DOCTYPE html><html><head><title>Teams</title></head><body>\n"], 0, 0
    while total < size:
        part = block.format(n=n) + html(900).decode() + "</section>\n"
        parts.append(part)
        total += len(part)
        n += 1
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def html_rewrite_cost() -> dict:
    """Rewriting a 1 MB page with every HTML feature on, against one gzip decode plus one
    Brotli encode of the same page (what any re-coded response costs)."""
    page = rich_page(MiB)
    raw = gzip.compress(page, 6)
    ctx = EdgeContext(parse_rules("plan: pro\nsettings: {email_obfuscation: on, "
                                  "automatic_https_rewrites: on, rocket_loader: on, "
                                  "mirage: on}\n"), limit=1 << 40)
    request = Request(headers=((b"Accept-Encoding", b"gzip, br"),), host="example.com")
    facts = Response(200, ((b"Content-Type", b"text/html; charset=utf-8"),
                           (b"Content-Encoding", b"gzip"), (b"ETag", b'"v1"')), raw)

    def edge() -> Exchange:
        return run(ctx, request, lambda sent: facts, 0.0).exchange

    def direct() -> bytes:
        return brotli.compress(zlib.decompress(raw, 31), quality=codings.BROTLI_QUALITY)

    ex = edge()
    assert ex.decision.action == "rewrite" and ex.body is not None and all(
        any(c.values()) for c in ex.body.features.values()), ex.body
    d, e = _best_of(direct, 5), _best_of(edge, 5)
    return {"page_kb": len(page) // 1024, "direct_ms": round(d * 1000, 2),
            "edge_ms": round(e * 1000, 2), "added_x": round((e - d) / d, 2),
            "features": ex.body.features}


async def _latency_during_big(port: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    big_done = 0
    stop = time.monotonic() + seconds

    async def big() -> None:
        nonlocal big_done
        c = await Client.connect(port)
        while time.monotonic() < stop:
            r = await c.get(b"/big.html", VISITOR)
            assert r.status == 200
            big_done += 1
        await c.close()

    async def small() -> None:
        c = await Client.connect(port)
        await asyncio.sleep(0.2)
        while time.monotonic() < stop:
            t = time.monotonic()
            r = await c.get(b"/style.css", VISITOR)
            assert r.status == 200
            latencies.append(time.monotonic() - t)
            await asyncio.sleep(0.01)
        await c.close()

    await asyncio.gather(big(), small())
    assert big_done >= 1
    return latencies


def latency(tmp: Path, origin: int) -> dict:
    """Small-request latency while a 20 MB gzip page is fetched over and over: with the addon
    it is re-encoded as Brotli each time; bare mitmdump relays it."""
    out = {}
    for name, rules in (("bare", None), ("edge", RULES)):
        with Mitmdump(tmp / f"lat-{name}", rules, reverse_to=origin, cpus=PROXY_CPUS) as p:
            lat = sorted(asyncio.run(_latency_during_big(p.port, 4 * ROUND_SECONDS)))
        out[name] = {"p50_ms": round(1000 * lat[len(lat) // 2], 1),
                     "p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 1), "n": len(lat)}
    out["p95_ratio"] = round(out["edge"]["p95_ms"] / max(out["bare"]["p95_ms"], 0.1), 2)
    return out


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_memory(tmp: Path, origin: int, target: bytes, accept: bytes | None,
                rules: str | None) -> int:
    """Peak RSS of a fresh mitmdump above its idle RSS while serving one response."""
    with Mitmdump(tmp / f"mem-{time.monotonic_ns()}", rules, reverse_to=origin, log=False) as p:
        asyncio.run(_fetch(p.port, b"/style.css", accept))  # warm: imports, first flow
        pid = p.proc.pid
        idle = _status(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
        asyncio.run(_fetch(p.port, target, accept))
        return _status(pid, "VmHWM") - idle


async def _fetch(port: int, target: bytes, accept: bytes | None) -> None:
    c = await Client.connect(port)
    r = await c.get(target, [(b"Accept-Encoding", accept)] if accept else [])
    assert r.status == 200, r.status
    await c.close()


def memory(tmp: Path, origin: int) -> dict:
    out: dict = {}
    for name, target, accept, body in (
        ("50 MB HTML compressed to br", b"/fifty.html", b"gzip, br", 50 * MiB),
        ("50 MB gzip HTML decoded to identity", b"/fifty.html.gz", None, 50 * MiB),
    ):
        bare = peak_memory(tmp, origin, target, accept, None)
        edge = peak_memory(tmp, origin, target, accept, RULES)
        out[name] = {"bare_mib": round(bare / MiB, 1), "edge_mib": round(edge / MiB, 1),
                     "edge_x_body": round(edge / body, 2)}
    bare = peak_memory(tmp, origin, b"/bomb.html", b"gzip, br", None)
    out["1 MiB gzip bomb (1 GiB decoded), bare"] = {"bare_mib": round(bare / MiB, 1)}
    for accept in (b"gzip, br", b"gzip", b"br", None):
        edge = peak_memory(tmp, origin, b"/bomb.html", accept, RULES)
        label = accept.decode() if accept else "no Accept-Encoding"
        out[f"bomb, visitor {label}"] = {"edge_mib": round(edge / MiB, 1)}
    return out


async def _stream_fetch(port: int, target: bytes, accept: bytes | None) -> tuple[float, float]:
    """Fetch a large body, reading it as it comes: (seconds to the first body byte, seconds
    in all)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if accept:
        head += b"Accept-Encoding: " + accept + b"\r\n"
    start = time.perf_counter()
    writer.write(head + b"\r\n")
    await reader.readuntil(b"\r\n\r\n")
    first = None
    while await reader.read(1 << 20):
        if first is None:
            first = time.perf_counter() - start
    writer.close()
    return first or 0.0, time.perf_counter() - start


def streaming(tmp: Path, origin: int) -> dict:
    """A 1 GiB identity body to a Brotli visitor, streamed through the edge: peak memory
    (bare mitmdump buffers it whole), the first byte, and the time against a direct
    streaming Brotli encode of the same bytes plus bare mitmdump streaming them. Then
    server-sent events: how much later each reaches the visitor than through bare
    mitmdump with streaming on."""
    out: dict = {"gig_mib": GIG // MiB}
    out["bare_buffered_mib"] = round(peak_memory(tmp, origin, b"/gig.txt", b"br", None) / MiB)
    out["edge_mib"] = round(peak_memory(tmp, origin, b"/gig.txt", b"br", RULES) / MiB, 1)
    with Mitmdump(tmp / "st-bare", None, "--set", "stream_large_bodies=1m",
                  reverse_to=origin, cpus=PROXY_CPUS) as p:
        _, bare_s = asyncio.run(_stream_fetch(p.port, b"/gig.txt", b"br"))
    with Mitmdump(tmp / "st-edge", RULES, reverse_to=origin, cpus=PROXY_CPUS) as p:
        first_s, edge_s = asyncio.run(_stream_fetch(p.port, b"/gig.txt", b"br"))
    start = time.perf_counter()
    encoder = codings.StreamEncoder("br")
    for part in text_stream(GIG):
        encoder.feed(part)
    encoder.finish()
    direct_s = time.perf_counter() - start
    out.update(first_byte_s=round(first_s, 3), edge_s=round(edge_s, 2),
               bare_s=round(bare_s, 2), direct_s=round(direct_s, 2),
               ratio=round(edge_s / (bare_s + direct_s), 3))
    lateness = {}
    for name, rules, extra in (("bare", None, ("--set", "stream_large_bodies=1")),
                               ("edge", RULES, ())):
        with Mitmdump(tmp / f"sse-{name}", rules, *extra, reverse_to=origin,
                      cpus=PROXY_CPUS) as p:
            lateness[name] = asyncio.run(_events(p.port))
    out["sse_bare_ms"] = round(1000 * max(lateness["bare"]), 1)
    out["sse_edge_ms"] = round(1000 * max(lateness["edge"]), 1)
    out["sse_added_ms"] = round(1000 * max(e - b for e, b in zip(lateness["edge"],
                                                                  lateness["bare"],
                                                                  strict=True)), 1)
    return out


async def _events(port: int) -> list[float]:
    """Each event's delay from leaving the origin to reaching the visitor (s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip, br\r\n"
                 b"Connection: close\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    delays, buf = [], b""
    while len(delays) < EVENTS:
        buf += await reader.read(65536)
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            sent = float(event.rsplit(b"data: ", 1)[1])
            delays.append(time.time() - sent)
    writer.close()
    return delays


def replay(tmp: Path, flows: int = 10_000) -> dict:
    from mitmproxy import http
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    path = tmp / "recording.mitm"
    page = html(8 * 1024)
    bodies = [
        ({"content-type": "text/css", "content-encoding": "br"}, brotli.compress(page)),
        ({"content-type": "image/png"}, b"\x89PNG" + os.urandom(2000)),
        ({"content-type": "text/html", "content-encoding": "gzip"}, gzip.compress(page)),
    ]
    with open(path, "wb") as f:
        w = mio.FlowWriter(f)
        for i in range(flows):
            flow = tflow.tflow(resp=True)
            flow.request.path = f"/r/{i}"
            flow.request.headers["accept-encoding"] = "gzip, br"
            headers, body = bodies[i % len(bodies)]
            flow.response = http.Response.make(200, b"", {**headers, "etag": f'"{i}"'})
            flow.response.raw_content = body
            w.add(flow)

    def run(*extra: str) -> float:
        t = time.perf_counter()
        subprocess.run([MITMDUMP, "-n", "-q", "--set", f"confdir={tmp}", "-r", str(path),
                        *extra], check=True, capture_output=True, timeout=600)
        return time.perf_counter() - t

    log = tmp / "replay.jsonl"
    bare = min(run() for _ in range(2))
    edge = min(run("-s", str(ROOT / "addon" / "edge.py"), "--set", f"cf_log={log}")
               for _ in range(2))
    assert len(log.read_text().splitlines()) == 2 * flows
    return {"flows": flows, "bare_s": round(bare, 2), "edge_s": round(edge, 2),
            "ratio": round(edge / bare, 3)}


# ---- the Rules language ---------------------------------------------------------------------

REQUEST = Request(
    method="GET", scheme="https", host="www.example.com", target="/static/js/app.min.js?v=3",
    headers=((b"Host", b"www.example.com"), (b"Accept-Encoding", b"gzip, br, zstd"),
             (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/140"),
             (b"Cookie", b"session=abc123; theme=dark")),
    client_ip="192.0.2.10",
)
THREE_CLAUSES = ('http.host eq "www.example.com" and starts_with(http.request.uri.path, '
                 '"/static/") and http.request.uri.path.extension in {"js" "css" "png"}')


def median_ns(fn, repeat: int = 2000, inner: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t) / inner)
    return statistics.median(samples)


def fifty_rules() -> str:
    templates = [
        'http.host eq "site{n}.example.com"',
        'starts_with(http.request.uri.path, "/section{n}/")',
        'http.request.uri.path.extension in {{"ext{n}" "js{n}"}}',
        'any(http.request.headers["accept-encoding"][*] contains "enc{n}")',
        'http.request.uri.path matches "^/api/v{n}/"',
        'lower(http.user_agent) contains "bot{n}" and not ssl',
        'http.cookie contains "flag{n}=1" or http.request.method eq "PUT"',
    ]
    rules = []
    for n in range(50):
        expr = templates[n % len(templates)].format(n=n)
        rules.append(f"  - expression: '{expr}'\n    action_parameters: {{cache: true}}\n")
    return "plan: pro\ncache_rules:\n" + "".join(rules)


def rules_language() -> dict:
    baseline_values = {"http.host": b"www.example.com"}
    baseline = median_ns(lambda: baseline_values["http.host"] == b"www.example.com")
    expr = compile_expression(THREE_CLAUSES, Phase.REQUEST)
    assert expr.matches(FieldValues(REQUEST))
    three = median_ns(lambda: expr.matches(FieldValues(REQUEST)))
    zone = parse_rules(fifty_rules(), "bench.yaml")
    assert len(zone.cache_rules) == 50
    fifty = median_ns(lambda: zone.matching("cache_rules", FieldValues(REQUEST)), repeat=500)
    t = time.perf_counter()
    parse_rules(fifty_rules(), "bench.yaml")
    load_ms = (time.perf_counter() - t) * 1000
    return {"baseline_us": round(baseline / 1000, 3),
            "three_clause_us": round(three / 1000, 2), "three_clause_x": round(three / baseline),
            "fifty_rules_us": round(fifty / 1000, 1), "fifty_rules_x": round(fifty / baseline),
            "compile_fifty_ms": round(load_ms, 1)}


# ---- report ---------------------------------------------------------------------------------


FLOOR_TARGETS = {"passthrough": ">= 0.95", "hit": ">= 0.93"}  # issue 16


def table(r: dict) -> str:
    rows = [("measure", "baseline", "with the addon", "ratio", "target")]
    for key, label in (("passthrough", "pass-through (DYNAMIC), 2 KB br CSS + PNG (req/s)"),
                       ("hit", "cache HIT, the same CSS + PNG (req/s; baseline: bare mitmdump "
                               "fetching them from the origin)"),
                       ("transcode", "transcode, 16 KB gzip HTML -> br (req/s)")):
        t = r["throughput"].get(key)
        if t is None:
            continue
        rows.append((label, f"{t['bare_rps']}", f"{t['edge_rps']}", f"{t['ratio']:.3f}", "-"))
        rows.append(("  the same, proxy CPU per request (us)", f"{t['bare_cpu_us']}",
                     f"{t['edge_cpu_us']}", f"{t['cpu_ratio']:.3f}", ""))
        if "floor_rps" in t:
            rows.append(("  the same against the floor (bench/floor.py; req/s)",
                         f"{t['floor_rps']}", f"{t['edge_rps']}", f"{t['floor_ratio']:.3f}",
                         FLOOR_TARGETS.get(key, "-")))
            rows.append(("  the floor against bare mitmdump (req/s)", f"{t['bare_rps']}",
                         f"{t['floor_rps']}", f"{t['floor_vs_bare']:.3f}", ""))
            rows.append(("  the same, proxy CPU per request against the floor (us)",
                         f"{t['floor_cpu_us']}", f"{t['edge_cpu_us']}",
                         f"{t['floor_cpu_ratio']:.3f}", ""))
        if "nolog_rps" in t:
            rows.append(("  the same, cf_log off (req/s)", f"{t['bare_rps']}",
                         f"{t['nolog_rps']}", f"{t['nolog_ratio']:.3f}", ""))
            rows.append(("  the same, cf_log off, proxy CPU per request (us)",
                         f"{t['bare_cpu_us']}", f"{t['nolog_cpu_us']}",
                         f"{t['nolog_cpu_ratio']:.3f}", ""))
    for size, t in r["transcode_cost"].items():
        rows.append((f"re-code {size} HTML gzip -> br vs direct (ms)", f"{t['direct_ms']}",
                     f"{t['edge_ms']}", f"{t['ratio']:.3f}", "<= 1.1"))
    hr = r["html_rewrite"]
    rows.append((f"rewrite a {hr['page_kb']} KB page, every HTML feature (ms; baseline: "
                 "gzip decode + br encode)", f"{hr['direct_ms']}", f"{hr['edge_ms']}",
                 f"+{hr['added_x']}x", "adds <= 3x"))
    lat = r["latency"]
    rows.append(("small-request p50 during 20 MB transcode (ms)", f"{lat['bare']['p50_ms']}",
                 f"{lat['edge']['p50_ms']}", "", ""))
    rows.append(("small-request p95 during 20 MB transcode (ms)", f"{lat['bare']['p95_ms']}",
                 f"{lat['edge']['p95_ms']}", f"{lat['p95_ratio']}", "< 100 ms"))
    for name, m in r["memory"].items():
        if "edge_x_body" in m:
            rows.append((f"peak memory above idle, {name} (MiB)", f"{m['bare_mib']}",
                         f"{m['edge_mib']}", f"{m['edge_x_body']}x body", "<= 3x body"))
        elif "bare_mib" in m:
            rows.append((f"peak memory above idle, {name} (MiB)", f"{m['bare_mib']}", "", "",
                         ""))
        else:
            rows.append((f"peak memory above idle, {name} (MiB)", "", f"{m['edge_mib']}", "",
                         "<= 512"))
    st = r.get("streaming")
    if st:
        rows.append((f"stream {st['gig_mib']} MiB identity to a br visitor: peak memory above "
                     "idle (MiB; baseline: bare mitmdump buffering)", f"{st['bare_buffered_mib']}",
                     f"{st['edge_mib']}", "", "<= 64"))
        rows.append(("  the same, first byte (s)", "", f"{st['first_byte_s']}", "", "<= 0.5"))
        rows.append(("  the same, total (s; baseline: bare mitmdump streaming + direct "
                     "streaming br encode)", f"{st['bare_s']} + {st['direct_s']}",
                     f"{st['edge_s']}", f"{st['ratio']:.3f}", "<= 1.2"))
        rows.append(("server-sent events: latest event, origin to visitor (ms; baseline: bare "
                     "mitmdump streaming)", f"{st['sse_bare_ms']}", f"{st['sse_edge_ms']}",
                     f"+{st['sse_added_ms']} ms", "<= +50 ms"))
    rp = r["replay"]
    rows.append((f"replay {rp['flows']} flows with -nr (s)", f"{rp['bare_s']}", f"{rp['edge_s']}",
                 f"{rp['ratio']:.3f}", "<= 1.3"))
    rl = r["rules_language"]
    rows.append(("3-clause expression (us; baseline: dict lookup)", f"{rl['baseline_us']}",
                 f"{rl['three_clause_us']}", f"{rl['three_clause_x']}x", "-"))
    rows.append(("50-rule file, one request (us)", f"{rl['baseline_us']}",
                 f"{rl['fifty_rules_us']}", f"{rl['fifty_rules_x']}x", "-"))
    rows.append(("compile the 50-rule file (ms)", "", f"{rl['compile_fifty_ms']}", "", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])  # MemTotal
    return (f"{cpu}, {os.cpu_count()} cores, {round(mem_kib / 1024 / 1024)} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


SECTIONS = ("throughput", "transcode_cost", "html_rewrite", "latency", "memory", "streaming",
            "replay", "rules_language")


def main() -> None:
    if LOAD_CPUS:
        os.sched_setaffinity(0, LOAD_CPUS)
    only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x] or SECTIONS
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    origin = OriginProcess()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            if "throughput" in only:
                results["throughput"] = {
                    "passthrough": throughput(tmp / "pt", origin.port,
                                              [b"/style", b"/logo"], without_log=True),
                    "hit": throughput(tmp / "hit", origin.port, [b"/style.css", b"/logo.png"],
                                      floor_cache=True),
                    "transcode": throughput(tmp / "tc", origin.port, [b"/page.html"]),
                }
            if "transcode_cost" in only:
                results["transcode_cost"] = {"100 KB": transcode_cost(100 * 1024),
                                             "5 MB": transcode_cost(5 * MiB)}
            if "html_rewrite" in only:
                results["html_rewrite"] = html_rewrite_cost()
            if "latency" in only:
                results["latency"] = latency(tmp, origin.port)
            if "memory" in only:
                results["memory"] = memory(tmp, origin.port)
            if "streaming" in only:
                results["streaming"] = streaming(tmp, origin.port)
            if "replay" in only:
                results["replay"] = replay(tmp)
            if "rules_language" in only:
                results["rules_language"] = rules_language()
    finally:
        origin.stop()
    print(f"machine: {results['machine']}")
    if set(SECTIONS) <= results.keys():
        print(table(results))  # `python bench/run.py --table FILE` prints it again
    else:
        print(json.dumps(results, indent=2))
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench-results.json"))
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        saved = json.loads(Path(sys.argv[2]).read_text())
        print(f"machine: {saved['machine']} ({saved['date']})")
        print(table(saved))
    else:
        main()
