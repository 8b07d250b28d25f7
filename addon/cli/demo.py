"""`make demo` / `python -m addon demo`: a bundled origin, the edge in front of it, the
documented Accept-Encoding matrix sent through, a table of what happened, then the proxy
left running for a browser.

Everything runs on 127.0.0.1; nothing is needed besides this repository's venv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import brotli

from addon.exchange.record import read_log
from addon.mitm.zone_loader import BUNDLED_RULES

EDGE = Path(__file__).resolve().parent.parent / "edge.py"
MATRIX = ("gzip, br", "br", "gzip", None)  # the documented tables' visitors, and none

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cloudflare edge demo</title>
<link rel="stylesheet" href="/strong.css">
<script src="http://127.0.0.1/analytics.js"></script>
</head><body>
<h1>Cloudflare edge demo</h1>
<p>Write to <b>team@example.com</b> or <a href="mailto:desk@example.com">the desk</a>.</p>
<p>Docs at <a href="http://example.com/docs">example.com</a>,
image <img src="http://example.com/logo.png" alt="logo" width="1" height="1">.</p>
<ul>
<li><a href="/strong.css">/strong.css</a> strong ETag, identity</li>
<li><a href="/weak.js">/weak.js</a> weak ETag, identity</li>
<li><a href="/malformed.json">/malformed.json</a> malformed ETag</li>
<li><a href="/gzip.css">/gzip.css</a> strong ETag, gzip from the origin</li>
<li><a href="/br.css">/br.css</a> strong ETag, br from the origin</li>
</ul>
<script>document.title += " (scripts ran)";</script>
</body></html>
"""
CSS = b"body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 40em; }\n" * 20
JS = b"window.demo = (window.demo || 0) + 1;\n" * 40
JSON = b'{"items": [' + b",".join(b'{"id": %d, "name": "item %d"}' % (i, i)
                                  for i in range(60)) + b"]}"

# path -> (content type, ETag, origin coding, body)
ROUTES: dict[str, tuple[bytes, bytes, str, bytes]] = {
    "/": (b"text/html; charset=utf-8", b'"page-1"', "identity", PAGE),
    "/strong.css": (b"text/css", b'"s1"', "identity", CSS),
    "/weak.js": (b"text/javascript", b'W/"w1"', "identity", JS),
    "/malformed.json": (b"application/json", b"m1-unquoted", "identity", JSON),
    "/gzip.css": (b"text/css", b'"g1"', "gzip", CSS),
    "/br.css": (b"text/css", b'"b1"', "br", CSS),
}


def _encoded(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, 6)
    if coding == "br":
        return brotli.compress(body, quality=5)
    return body


class DemoOrigin:
    """A tiny HTTP/1.1 origin: the routes above, 304 to a matching If-None-Match (weak
    comparison, as an origin should), 404 otherwise."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                writer.write(self.answer(method, target.split("?")[0],
                                         headers.get("if-none-match")))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    def answer(method: str, path: str, if_none_match: str | None) -> bytes:
        route = ROUTES.get(path)
        if route is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n"
        ctype, etag, coding, body = route
        opaque = etag.decode().removeprefix("W/")
        if if_none_match and opaque in (t.strip().removeprefix("W/")
                                        for t in if_none_match.split(",")):
            return b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n"
        data = _encoded(body, coding)
        head = [b"HTTP/1.1 200 OK", b"Content-Type: " + ctype, b"ETag: " + etag,
                b"Content-Length: %d" % len(data), b"Cache-Control: max-age=60"]
        if coding != "identity":
            head.append(b"Content-Encoding: " + coding.encode())
            head.append(b"Vary: Accept-Encoding")
        return b"\r\n".join(head) + b"\r\n\r\n" + (b"" if method == "HEAD" else data)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


async def _get(port: int, path: str, accept: str | None, extra: dict[str, str] | None = None
               ) -> tuple[int, dict[str, str], int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if accept is not None:
        lines.append(f"Accept-Encoding: {accept}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, len(body)


def matrix(port: int, log: Path) -> list[list[str]]:
    """Every route for every visitor of the matrix, then a revalidation of each."""
    rows = [["path", "visitor accepts", "origin sent", "visitor got", "status", "cache",
             "why (see the log for the full reason)"]]
    seen = 0
    for path, (_, etag, coding, _) in ROUTES.items():
        got_etag = None
        for accept in MATRIX:
            status, h, _ = asyncio.run(_get(port, path, accept))
            got_etag = got_etag or h.get("etag")
            record = _next_record(log, seen)
            seen += 1
            rows.append([path, accept or "(none)", f"{coding} {etag.decode()}",
                         _got(status, h), str(status), h.get("cf-cache-status", ""),
                         _short(record)])
        if not got_etag:
            rows.append([path, "a revalidating browser", f"{coding} {etag.decode()}", "-", "-",
                         "-", "no ETag reached the visitor: nothing to revalidate with"])
        else:
            status, h, _ = asyncio.run(_get(port, path, "gzip, br",
                                            {"If-None-Match": got_etag}))
            record = _next_record(log, seen)
            seen += 1
            rows.append([path, f"gzip, br + If-None-Match: {got_etag}",
                         f"{coding} {etag.decode()}", _got(status, h),
                         str(status), h.get("cf-cache-status", ""),
                         f"304 from the {record.get('not_modified')}" if status == 304
                         else _short(record)])
    return rows


def _got(status: int, headers: dict[str, str]) -> str:
    """What the visitor got: its encoding (or no body, for a 304) and its ETag."""
    what = "no body," if status == 304 else headers.get("content-encoding", "identity")
    return f"{what} {headers.get('etag', '(no ETag)')}"


def _next_record(log: Path, index: int, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_log(log)
        if len(records) > index:
            return records[index]
        time.sleep(0.02)
    return {}


def _short(record: dict) -> str:
    if not record:
        return ""
    why = record.get("table_row") or record.get("basis") or ""
    return f"{record.get('action')}, ETag {record.get('etag_action')} ({why})"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
           for r in rows]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def start_proxy(origin_port: int, port: int, workdir: Path, rules: Path) -> tuple[
        subprocess.Popen, int]:
    mitmdump = str(Path(sys.executable).with_name("mitmdump"))
    args = [mitmdump, "--mode", f"reverse:http://127.0.0.1:{origin_port}",
            "--listen-host", "127.0.0.1", "-p", str(port), "--set", "keep_host_header=true",
            "--set", f"confdir={workdir}", "--set", "flow_detail=0", "-s", str(EDGE),
            "--set", f"cf_rules={rules}", "--set", f"cf_log={workdir / 'edge.jsonl'}",
            "--set", "cf_trace=true"]
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=workdir)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening at 127.0.0.1:" in line:
            bound = int(line.rsplit(":", 1)[1].strip().rstrip("."))
            threading.Thread(target=_drain, args=(proc,), daemon=True).start()
            return proc, bound
        if "rror" in line:
            print(line, end="", file=sys.stderr)
    proc.wait()
    raise SystemExit(f"demo: mitmdump did not start (exit {proc.returncode})")


def _drain(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for _ in proc.stdout:
        pass


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m addon demo", description=__doc__)
    p.add_argument("--port", type=int, default=8080, help="the proxy's port (0: any free one)")
    p.add_argument("--rules", default=str(BUNDLED_RULES), help="the rules file")
    p.add_argument("--no-wait", action="store_true",
                   help="print the table and stop, instead of leaving the proxy running")
    args = p.parse_args(argv)
    # SIGTERM (and SIGHUP) end the demo the way Ctrl-C does, so that its temporary
    # directory, which holds a CA private key, is removed
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    origin = DemoOrigin()
    with tempfile.TemporaryDirectory(prefix="cf-edge-demo-") as d:
        workdir = Path(d)
        proc, port = start_proxy(origin.port, args.port, workdir, Path(args.rules).resolve())
        try:
            print(f"demo origin on 127.0.0.1:{origin.port}, the edge on 127.0.0.1:{port} "
                  f"(rules: {args.rules})\n")
            print(table(matrix(port, workdir / "edge.jsonl")))
            print(f"\nThe log of each decision: {workdir / 'edge.jsonl'} (removed on exit).")
            if args.no_wait:
                return 0
            print(f"\nOpen http://127.0.0.1:{port}/ in a browser: the addresses on the page are "
                  "obfuscated by the edge and decoded by its script; each response carries an "
                  "x-cf-edge-trace header with the decision. Ctrl-C stops the demo.")
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
            return 0
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            origin.stop()
