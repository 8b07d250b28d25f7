"""The edge's hooks timed in-process, per flow and per addon hook (docs/performance.md).

    PYTHONPATH=. .venv/bin/python bench/hooks.py [pass|hit] [N]

All the addons run inside mitmproxy's test context (no sockets, no event-loop round trips),
alternating a 2 KB Brotli stylesheet and a PNG as make bench does: `pass` on
extension-less paths (DYNAMIC), `hit` on .css and .png (served from the edge cache after
the first round). Prints the best of five rounds, then the time of each addon's hook.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import brotli
from mitmproxy import http
from mitmproxy.test import taddons
from mitmproxy.test import tflow

from addon.mitm import addons
from addon.mitm.origins import Origins
from bench.run import RULES
from bench.run import html

HOOKS = ("requestheaders", "request", "responseheaders", "response")


def main(mode: str, n: int) -> None:
    css, png = brotli.compress(html(2048)), b"\x89PNG\r\n\x1a\n" + os.urandom(2040)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES)
    chain = addons()
    origins = next(a for a in chain if isinstance(a, Origins))
    spent: dict[str, float] = defaultdict(float)

    def call(hook: str, f: http.HTTPFlow) -> None:
        for a in chain:
            fn = getattr(a, hook, None)
            if fn is not None:
                t = time.perf_counter()
                assert fn(f) is None, (a, hook)  # pass-throughs and HITs never wait
                spent[f"{hook} {type(a).__name__}"] += time.perf_counter() - t

    def one(i: int) -> None:
        f = tflow.tflow(resp=False)
        stem, ext = (b"/style", b".css") if i % 2 else (b"/logo", b".png")
        f.request.path = stem + (ext if mode == "hit" else b"")
        f.request.headers["accept-encoding"] = "gzip, br"
        f.request.timestamp_start = f.request.timestamp_end = time.time()
        origins.answered(f)  # the origin is known to be up: no connection check
        call("requestheaders", f)
        call("request", f)
        if f.response is None:
            body = css if i % 2 else png
            fields = [(b"Content-Type", b"text/css" if i % 2 else b"image/png"),
                      (b"ETag", b'"v1"'), (b"Content-Length", str(len(body)).encode())]
            if i % 2:
                fields.append((b"Content-Encoding", b"br"))
            now = time.time()
            f.response = http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(fields), body,
                                       None, now, now)
            f.server_conn.timestamp_tcp_setup = now
            call("responseheaders", f)
        call("response", f)

    async def rounds(count: int) -> None:
        for i in range(count):
            one(i)

    with taddons.context(*chain) as tctx:
        tctx.options.update(cf_rules=str(tmp / "rules.yaml"), cf_log=str(tmp / "log.jsonl"))
        asyncio.run(rounds(200))  # warm-up (and, for hit, the cache fill)
        best: dict[str, float] = {}
        for _ in range(5):
            spent.clear()
            asyncio.run(rounds(n))
            if not best or sum(spent.values()) < sum(best.values()):
                best = dict(spent)
    print(f"{mode}: the hooks take {1e6 * sum(best.values()) / n:.1f} us per flow "
          f"(best of 5 rounds of {n})")
    for key, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"{1e6 * seconds / n:8.1f} us  {key}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "pass",
         int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
