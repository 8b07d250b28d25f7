"""A response body as it passes the edge in pieces (mitmproxy's `stream` callable): decoded,
rewritten and encoded piece by piece, or passed on untouched, and counted.

The decision was made on the headers (exchange/streaming.py); this only
carries it out. When the origin pauses, the visitor gets everything produced so far (the
encoders flush), so an event stream's events and a slow body's first bytes arrive as they
leave the origin. Decoding goes in bounded steps, so a decompression bomb costs time,
not memory. A copy of the origin's bytes is kept for the edge cache, up to `keep` bytes.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor

from addon import html
from addon.http import codings

# mitmproxy reads the origin's socket up to 64 KiB at a time: a piece well below that
# means nothing more was waiting (the origin paused, an event ended), and that is when the
# encoder flushes, as it does for the first piece and after every FLUSH_EVERY bytes. While
# full pieces keep coming, the encoder's own blocks go out as they fill: flushing each of
# them cost a third of mitmproxy's time on a large body (py-spy).
PAUSE_BELOW = 32 * 1024
FLUSH_EVERY = 1 << 20


class BodyStream:
    def __init__(self, source: str = "identity", target: str = "identity",
                 rewrite: html.StreamRewrite | None = None, keep: int = 0,
                 transform: bool = True) -> None:
        self.transform = transform and (source != target or rewrite is not None)
        self.decoder = codings.StreamDecoder(source) if self.transform else None
        self.encoder = codings.StreamEncoder(target) if self.transform else None
        self.rewrite = rewrite
        self.keep = keep
        self.copy: bytearray | None = bytearray() if keep > 0 else None
        self.bytes_in = 0  # from the origin
        self.bytes_out = 0  # to the visitor
        self.error = ""  # why the stream was cut short (a body that did not decode)
        self.ended = False  # the origin's body ended (the last call came)
        self.unflushed = 0  # bytes from the origin since the encoder last flushed

    def __call__(self, chunk: bytes) -> list[bytes]:
        """mitmproxy calls this with each piece, and once with b"" at the end. An empty
        list, never b"", when a piece produces nothing: b"" would end an HTTP/1.1 body."""
        if not chunk:
            return self._end()
        self.bytes_in += len(chunk)
        if self.copy is not None:
            if len(self.copy) + len(chunk) <= self.keep:
                self.copy += chunk
            else:
                self.copy = None  # larger than may be stored: not kept at all
        if not self.transform:
            self.bytes_out += len(chunk)
            return [chunk]
        if self.error:
            return []  # the coding broke: nothing more can be made of it
        try:
            out = self._through(self.decoder.feed(chunk))
            self.unflushed += len(chunk)
            if (len(chunk) < PAUSE_BELOW or self.unflushed >= FLUSH_EVERY
                    or self.unflushed == self.bytes_in):
                out.append(self.encoder.flush())
                self.unflushed = 0
        except (codings.DecodeError, html.RewriteError) as e:
            self.error = str(e)
            return []
        return self._count(out)

    def _end(self) -> list[bytes]:
        if self.ended:
            return []
        self.ended = True
        if not self.transform or self.error:
            return []
        try:
            self.decoder.end()
            out = self._through(())
            if self.rewrite is not None:
                out.append(self.encoder.feed(self.rewrite.end()))
            out.append(self.encoder.finish())
        except (codings.DecodeError, html.RewriteError) as e:
            self.error = str(e)
            return []
        return self._count(out)

    def _through(self, pieces) -> list[bytes]:
        out = []
        for piece in pieces:
            if self.rewrite is not None:
                piece = self.rewrite.feed(bytes(piece))
            if piece:
                out.append(self.encoder.feed(piece))
        return out

    def _count(self, out: list[bytes]) -> list[bytes]:
        data = b"".join(out)  # one piece on the wire for each piece from the origin
        self.bytes_out += len(data)
        return [data] if data else []

    @property
    def stored(self) -> bytes | None:
        """The origin's whole body, when it ended whole and small enough to keep."""
        if self.copy is None or not self.ended:
            return None
        return bytes(self.copy)

    def features(self) -> dict[str, dict[str, int]]:
        return self.rewrite.counts() if self.rewrite is not None else {}


# the first bytes of a stream are worked on where they arrive, so that the visitor gets
# them at once (a body that starts and then pauses); past this, a heavy piece goes to the
# stream's thread
THREAD_AFTER = 256 * 1024


class Threaded:
    """A body stream whose heavy pieces are worked on in a thread of their own, so that
    the event loop (every other flow of the proxy) does not wait for a large re-code.

    mitmproxy calls a stream callable on its event loop and sends what it returns at once.
    Past the first THREAD_AFTER bytes, pieces of at least PAUSE_BELOW bytes go to the
    stream's worker thread, and what the worker has finished goes out with the next call; a
    smaller piece (the origin paused, an event ended) and the end first wait for the worker,
    so nothing is held back then. (A full piece right before a pause of the origin reaches
    the visitor with the origin's next piece.)
    At most MAX_AHEAD pieces wait for the worker: memory stays bounded when the origin
    sends faster than the codecs work. The codecs release the GIL, so on a second core
    the work runs beside the event loop.
    """

    MAX_AHEAD = 64  # pieces (4 MiB from the origin) waiting for the worker, no more

    def __init__(self, body: BodyStream) -> None:
        self.body = body
        self.worker: ThreadPoolExecutor | None = None
        self.pending: deque[Future[list[bytes]]] = deque()

    def __getattr__(self, name: str):  # the counters and the copy of the stream it wraps
        return getattr(self.body, name)

    def __call__(self, chunk: bytes) -> list[bytes]:
        if not self.body.transform or self.body.rewrite is not None:
            # a pass-through costs nothing worth a thread; lol-html's objects may not
            # change threads, so a page is rewritten where its rewrite began
            return self.body(chunk)
        if chunk and len(chunk) >= PAUSE_BELOW and self.body.bytes_in >= THREAD_AFTER:
            if self.worker is None:
                self.worker = ThreadPoolExecutor(1, thread_name_prefix="cf-edge-stream")
            self.pending.append(self.worker.submit(self.body, chunk))
            out = []
            while self.pending and (self.pending[0].done()
                                    or len(self.pending) > self.MAX_AHEAD):
                out += self.pending.popleft().result()
            return out
        out = self._drain()
        out += self.body(chunk)
        if not chunk and self.worker is not None:
            self.worker.shutdown(wait=False)
            self.worker = None
        return out

    def _drain(self) -> list[bytes]:
        out = []
        while self.pending:
            out += self.pending.popleft().result()
        return out

    def close(self) -> None:
        """The stream was cut: let the worker go."""
        if self.worker is not None:
            self.worker.shutdown(wait=False, cancel_futures=True)
            self.worker = None
        self.pending.clear()
