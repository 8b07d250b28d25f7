"""Load on loopback: 50 concurrent clients x 200 mixed requests through mitmdump with the addon.

Zero errors, zero body mismatches; a valid rules edit during the load applies without
failing a request, a broken one keeps the previous rules. Bounded: it stops by itself.
"""

from __future__ import annotations

import asyncio
import gzip
import time

from addon import codings
from tests.loopback import Client
from tests.loopback import Origin
from tests.loopback import Route
from tests.loopback import response
from tests.loopback import run
from tests.mitm import Mitmdump

CLIENTS, REQUESTS, DEADLINE = 50, 200, 300.0
PAGE = b"<li>an item in a list of things the origin sells, with a price</li>\n" * 300
CSS = b"body { color: #333; margin: 0 auto; } .item { padding: 4px }\n" * 30
RULES = "plan: pro\nsettings: {brotli: on}\n"
ROUTES = {
    b"/page.html": Route(response(200, [(b"Content-Type", b"text/html"), (b"ETag", b'"p"'),
                                        (b"Content-Encoding", b"gzip")], gzip.compress(PAGE))),
    b"/plain.html": Route(response(200, [(b"Content-Type", b"text/html"), (b"ETag", b'"h"')],
                                   PAGE)),
    b"/style.css": Route(response(200, [(b"Content-Type", b"text/css"), (b"ETag", b'"c"'),
                                        (b"Content-Encoding", b"br")], codings.encode(CSS, "br"))),
    b"/logo.png": Route(response(200, [(b"Content-Type", b"image/png")], b"\x89PNG" + PAGE[:900])),
    b"/chunked.js": Route(response(200, [(b"Content-Type", b"application/javascript")], CSS,
                                   chunked=True)),
}
EXPECTED = {b"/page.html": PAGE, b"/plain.html": PAGE, b"/style.css": CSS,
            b"/logo.png": b"\x89PNG" + PAGE[:900], b"/chunked.js": CSS}
VISITORS = [b"gzip, br", b"gzip", b"br", None, b"gzip, deflate, br, zstd"]


def test_fifty_clients_two_hundred_requests_each_with_rules_edits(tmp_path):
    origin = Origin(ROUTES)
    proxy = Mitmdump(tmp_path, RULES, reverse_to=origin.port)
    errors: list[str] = []
    # (time received, path, visitor, content-encoding) of every reply
    served: list[tuple[float, bytes, bytes | None, bytes | None]] = []
    done = 0

    async def client(k: int) -> None:
        nonlocal done
        c = await Client.connect(proxy.port)
        paths = list(EXPECTED)
        for i in range(REQUESTS):
            path, visitor = paths[(k + i) % len(paths)], VISITORS[(k * 7 + i) % len(VISITORS)]
            headers = [(b"Accept-Encoding", visitor)] if visitor else []
            try:
                r = await c.get(path, headers)
                coding = (r.header(b"content-encoding") or b"identity").decode()
                if r.status != 200:
                    errors.append(f"{path} {visitor}: status {r.status}")
                elif codings.decode(r.body, coding) != EXPECTED[path]:
                    errors.append(f"{path} {visitor}: body mismatch ({coding})")
                served.append((time.monotonic(), path, visitor, r.header(b"content-encoding")))
            except Exception as e:  # a failed request is an error, not a crash of the test
                errors.append(f"{path} {visitor}: {e!r}")
                c = await Client.connect(proxy.port)
            done += 1
        await c.close()

    async def wait_output(pattern: str) -> float:
        while not any(pattern in line for line in proxy.lines):
            await asyncio.sleep(0.05)
        return time.monotonic()

    async def editor() -> tuple[float, float]:
        while done < CLIENTS * REQUESTS // 4:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.1)  # a new mtime
        proxy.rules.write_text(RULES.replace("brotli: on", "brotli: off"))
        reloaded = await wait_output("cf_edge: reloaded")
        while done < CLIENTS * REQUESTS // 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.1)
        proxy.rules.write_text(RULES.replace("plan: pro", "plan: platinum"))
        rejected = await wait_output("rules file not reloaded")
        return reloaded, rejected

    async def load() -> tuple[float, float]:
        edits = asyncio.ensure_future(editor())
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        return await asyncio.wait_for(edits, 30)

    try:
        reloaded, rejected = run(asyncio.wait_for(load(), DEADLINE))
    finally:
        proxy.stop()
        origin.stop()
    assert errors == []
    assert len(served) == CLIENTS * REQUESTS
    assert reloaded < rejected < served[-1][0], "the edits happened during the load"
    # Brotli was served for gzip+br visitors until the valid edit, gzip after it, and the
    # broken edit changed nothing.
    def encodings(start: float, end: float) -> set:
        return {enc for t, path, visitor, enc in served
                if start < t < end and path == b"/plain.html" and visitor == b"gzip, br"}
    assert encodings(0, reloaded - 0.5) == {b"br"}
    assert encodings(reloaded + 0.5, rejected) == {b"gzip"}
    assert encodings(rejected + 0.5, float("inf")) <= {b"gzip"}
    records = proxy.records()
    assert len(records) == CLIENTS * REQUESTS
