"""Load on loopback: 50 concurrent clients x 200 mixed requests through mitmdump with the addon.

Zero errors, zero body mismatches; a valid rules edit during the load applies without
failing a request, a broken one keeps the previous rules. Bounded: it stops by itself.
"""

from __future__ import annotations

import asyncio
import gzip
import os

from addon.http import codings
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import Mitmdump

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


def _edit(path, text: str) -> None:
    """Write with an mtime the watcher has not seen (no waiting for a new second)."""
    before = path.stat().st_mtime
    path.write_text(text)
    os.utime(path, (before + 10, before + 10))


def test_fifty_clients_two_hundred_requests_each_with_rules_edits(tmp_path):
    """The edits happen during the load, ordered by events, not by the clock: every client
    waits at half its requests until the valid edit is in force, and at three quarters
    until the broken one was refused."""
    origin = Origin(ROUTES)
    proxy = Mitmdump(tmp_path, RULES, reverse_to=origin.port)
    errors: list[str] = []
    # phases: 0 before the valid edit, 1 written, 2 in force, 3 broken edit written,
    # 4 refused; each reply: (phase when sent, phase when received, path, visitor, coding)
    phase = 0
    served: list[tuple[int, int, bytes, bytes | None, bytes | None]] = []
    done = 0
    reloaded, refused = asyncio.Event(), asyncio.Event()

    async def client(k: int) -> None:
        nonlocal done
        c = await Client.connect(proxy.port)
        paths = list(EXPECTED)
        for i in range(REQUESTS):
            if i == REQUESTS // 2:
                await reloaded.wait()
            elif i == REQUESTS * 3 // 4:
                await refused.wait()
            path, visitor = paths[(k + i) % len(paths)], VISITORS[(k * 7 + i) % len(VISITORS)]
            headers = [(b"Accept-Encoding", visitor)] if visitor else []
            sent = phase
            try:
                r = await c.get(path, headers)
                coding = (r.header(b"content-encoding") or b"identity").decode()
                if r.status != 200:
                    errors.append(f"{path} {visitor}: status {r.status}")
                elif codings.decode(r.body, coding) != EXPECTED[path]:
                    errors.append(f"{path} {visitor}: body mismatch ({coding})")
                served.append((sent, phase, path, visitor, r.header(b"content-encoding")))
            except Exception as e:  # a failed request is an error, not a crash of the test
                errors.append(f"{path} {visitor}: {e!r}")
                c = await Client.connect(proxy.port)
            done += 1
        await c.close()

    async def wait_output(pattern: str) -> None:
        while not any(pattern in line for line in proxy.lines):
            await asyncio.sleep(0.05)

    async def editor() -> None:
        nonlocal phase
        while done < CLIENTS * REQUESTS // 4:
            await asyncio.sleep(0.05)
        phase = 1
        _edit(proxy.rules, RULES.replace("brotli: on", "brotli: off"))
        await wait_output("cf_edge: reloaded")
        phase = 2
        reloaded.set()
        while done < CLIENTS * REQUESTS // 2:
            await asyncio.sleep(0.05)
        phase = 3
        _edit(proxy.rules, RULES.replace("plan: pro", "plan: platinum"))
        await wait_output("rules file not reloaded")
        phase = 4
        refused.set()

    async def load() -> None:
        edits = asyncio.ensure_future(editor())
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        await asyncio.wait_for(edits, 30)

    try:
        run(asyncio.wait_for(load(), DEADLINE))
    finally:
        proxy.stop()
        origin.stop()
    assert errors == []
    assert len(served) == CLIENTS * REQUESTS
    # Brotli for gzip+br visitors until the valid edit, gzip once it was in force, and the
    # broken edit changed nothing.
    def codings_when(keep) -> set:
        return {enc for sent, got, path, visitor, enc in served
                if keep(sent, got) and path == b"/plain.html" and visitor == b"gzip, br"}
    assert codings_when(lambda sent, got: got == 0) == {b"br"}
    assert codings_when(lambda sent, got: sent == 2 and got == 2) == {b"gzip"}
    assert codings_when(lambda sent, got: sent == 4) == {b"gzip"}
    records = proxy.records(at_least=CLIENTS * REQUESTS)
    assert len(records) == CLIENTS * REQUESTS
