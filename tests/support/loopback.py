"""Loopback HTTP/1.1 peers for the end-to-end tests and `make bench`.

`Origin` answers each path with raw bytes written exactly as given, so a test controls
every byte a hostile origin sends (framing, header bytes, truncation). `Client` speaks
raw HTTP/1.1 over keep-alive connections and returns exactly the bytes it received.
Both are plain asyncio: cheap enough to drive mitmdump at full speed from one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    raw: bytes  # the whole response: status line, headers, body, exactly as sent
    close: bool = False  # close the connection after it (HTTP/1.0, truncated bodies)


def response(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
             body: bytes = b"", *, version: bytes = b"HTTP/1.1", chunked: bool = False,
             length: bool = True) -> bytes:
    """Raw response bytes; Content-Length added unless chunked or `length` is False."""
    head = [b"%s %d X" % (version, status)]
    for k, v in headers or []:
        head.append(k + b": " + v)
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
        half = len(body) // 2
        parts = [p for p in (body[:half], body[half:]) if p]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    elif length:
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Gated:
    """A response written in parts: the head and the first part at once, each further part
    when the test calls release() (a stream whose pace the test controls, not a clock)."""

    def __init__(self, head: bytes, parts, close: bool = False, gated: bool = True) -> None:
        self.head, self.parts, self.close = head, parts, close
        self.gated = gated  # False: every part at once (`parts` may be a generator)
        self._released = threading.Semaphore(0)
        self.cut_after: int | None = None  # close the connection after this many parts

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._released.release()

    async def write(self, writer: asyncio.StreamWriter) -> None:
        writer.write(self.head)
        for i, part in enumerate(self.parts):
            if i and self.gated and not await asyncio.to_thread(self._released.acquire, True,
                                                                30):
                raise TimeoutError("the test never released the next part")
            if self.cut_after is not None and i >= self.cut_after:
                writer.transport.abort()  # the origin dies mid-body
                return
            writer.write(part)
            await writer.drain()


Handler = Callable[[bytes, bytes], "Route | Gated"]  # (target, request head) -> answer


class Origin:
    """A loopback origin in its own thread; `routes` maps a path (no query) to a Route
    or to a handler called with the target and the request head."""

    def __init__(self, routes: dict[bytes, Route | Gated | Handler] | None = None):
        self.routes: dict[bytes, Route | Gated | Handler] = routes if routes is not None else {}
        self.seen: list[tuple[bytes, bytes]] = []  # (target, request head) per request
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                self.seen.append((target, head))
                route = self.routes.get(target.split(b"?", 1)[0])
                if route is None:
                    route = Route(response(404, body=b"no route\n"))
                elif not isinstance(route, Route | Gated):
                    route = route(target, head)
                if isinstance(route, Gated):
                    await route.write(writer)
                else:
                    writer.write(route.raw)
                    await writer.drain()
                if route.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        """Close every connection, then the loop; calling it twice is harmless."""
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        if self.thread.is_alive() and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(10)


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes  # the body as received (chunked framing removed)

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return b", ".join(values) if values else None


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def get(self, target: bytes, headers: list[tuple[bytes, bytes]] = (),
                  method: bytes = b"GET") -> Reply:
        lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        lines += [k + b": " + v for k, v in headers]
        self.writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        return await self.read_reply(method == b"HEAD")

    async def read_reply(self, head_only: bool = False) -> Reply:
        r = self.reader
        status_line = await r.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = []
        while (line := await r.readuntil(b"\r\n")) != b"\r\n":
            k, _, v = line[:-2].partition(b":")
            headers.append((k, v.strip()))
        names = {k.lower(): v for k, v in headers}
        if head_only or status in (204, 304) or status < 200:
            body = b""
        elif b"chunked" in names.get(b"transfer-encoding", b"").lower():
            parts = []
            while size := int((await r.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await r.readexactly(size))
                await r.readexactly(2)
            while await r.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            body = b"".join(parts)
        elif b"content-length" in names:
            body = await r.readexactly(int(names[b"content-length"]))
        else:
            body = await r.read()
        return Reply(status, headers, body)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def run(coro):
    """Run a coroutine on a fresh event loop (tests are synchronous)."""
    return asyncio.run(coro)


# `python tests/support/loopback.py serve MODULE:FUNC`: an origin in a process of its own
if __name__ == "__main__":
    import importlib
    import time

    module, func = sys.argv[2].split(":")
    routes = getattr(importlib.import_module(module), func)()
    # the routes hold tests.support.loopback.Route, not this __main__ module's own copy of the class
    origin = importlib.import_module("tests.support.loopback").Origin(routes)
    print(origin.port, flush=True)
    while True:
        time.sleep(3600)
