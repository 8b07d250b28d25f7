"""Content codings the edge produces (gzip, Brotli, Zstandard) and decodes (those and
deflate, which some origins send to visitors whose Accept-Encoding the edge forwards).

Bodies are decoded and re-encoded in bounded steps, so memory follows what the visitor
gets rather than what the origin's body expands to, and a limit on the decoded size stops
decompression bombs early.

Levels are Cloudflare-like rather than mitmproxy's fastest ones: Brotli quality 4
(community measurement, facts 1.1.14), gzip level 6 and zstd level 3 (the libraries'
defaults; Cloudflare does not document its levels, so these are modelled).
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Callable
from collections.abc import Iterator

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

GZIP_LEVEL = 6
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3

STEP = 256 * 1024  # bytes of input fed, and at most (about) this much output, per step


class DecodeError(ValueError):
    """The origin's body is not valid data for its Content-Encoding."""


class TooLarge(Exception):
    """The decoded body grew past the limit it was decoded under."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(f"decoded body larger than {limit} bytes")
        self.limit = limit
        self.size = size  # the whole size, when it was known without decoding


def iter_decode(body: bytes, coding: str, step: int = STEP) -> Iterator[bytes]:
    """Yield the decoded body in pieces of about `step` bytes; DecodeError where it breaks.

    An empty body is empty whatever its label. Every gzip member is decoded (mitmproxy's
    decoder stops after the first); trailing garbage and truncation are errors.
    """
    if not body:
        return
    try:
        if coding == "identity":
            view = memoryview(body)
            for pos in range(0, len(view), step):
                yield view[pos:pos + step]
        elif coding == "gzip":
            yield from _gunzip(body, step)
        elif coding == "br":
            yield from _unbrotli(body, step)
        elif coding == "zstd":
            yield from _unzstd(body, step)
        elif coding == "deflate":
            yield from _inflate(body, step)
        else:
            raise DecodeError(f"unknown coding {coding!r}")
    except (zlib.error, brotli.error, zstd.ZstdError, EOFError) as e:
        raise DecodeError(f"{coding} body could not be decoded: {e}") from e


def decode(body: bytes, coding: str) -> bytes:
    """The whole decoded body, without a limit (tests and callers that trust the body)."""
    return transcode(body, coding, "identity", sys.maxsize)


def decoded_size_at_least(body: bytes, coding: str, n: int) -> int:
    """min(decoded size, n), decoding no more than about n bytes of output."""
    got = 0
    for piece in iter_decode(body, coding, step=n):
        got += len(piece)
        if got >= n:
            return n
    return got


def encoder(coding: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    """(feed, finish) of a streaming encoder for `coding`."""
    if coding == "identity":
        return bytes, bytes
    if coding == "gzip":
        g = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip container
        return g.compress, g.flush
    if coding == "br":
        b = brotli.Compressor(quality=BROTLI_QUALITY)
        return b.process, b.finish
    if coding == "zstd":
        z = zstd.ZstdCompressor(level=ZSTD_LEVEL)
        return z.compress, z.flush
    if coding == "deflate":  # never chosen by the edge; tests build origin bodies with it
        d = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 15)
        return d.compress, d.flush
    raise ValueError(f"unknown coding {coding!r}")


def encode(body: bytes, coding: str) -> bytes:
    if coding == "identity":
        return body
    feed, finish = encoder(coding)
    return feed(body) + finish()


def transcode(body: bytes, source: str, target: str, limit: int) -> bytes:
    """Decode from `source` and encode as `target` step by step.

    Raises DecodeError for a broken body and TooLarge once more than `limit` bytes have
    been decoded; nothing is kept then.
    """
    if source == "identity" and len(body) > limit:
        raise TooLarge(limit, len(body))  # its size is known: nothing is fed first
    feed, finish = encoder(target)
    out = io.BytesIO()  # getvalue() hands over its buffer without a copy
    decoded = 0
    for piece in iter_decode(body, source):
        decoded += len(piece)
        if decoded > limit:
            raise TooLarge(limit)
        out.write(feed(piece))
    out.write(finish())
    return out.getvalue()


def _gunzip(body: bytes, step: int) -> Iterator[bytes]:
    view = memoryview(body)
    pos = 0
    while pos < len(view):  # one gzip member per round (RFC 1952 allows several)
        d = zlib.decompressobj(31)
        while not d.eof:
            if pos >= len(view):
                raise DecodeError("gzip body is truncated")
            data = view[pos:pos + step]
            pos += len(data)
            while True:
                out = d.decompress(data, step)
                if out:
                    yield out
                data = d.unconsumed_tail
                if d.eof or (not data and len(out) < step):
                    break
        pos -= len(d.unused_data)  # what follows the member's end starts the next one


def _unzstd(body: bytes, step: int) -> Iterator[bytes]:
    view = memoryview(body)
    pos = 0
    while pos < len(view):  # one frame per round (RFC 8878 allows several)
        d = zstd.ZstdDecompressor()
        data = view[pos:]
        while not d.eof:
            out = d.decompress(data, step)
            data = b""
            if out:
                yield out
            elif d.needs_input:
                raise DecodeError("zstd body is truncated")
        pos = len(view) - len(d.unused_data)


def _inflate(body: bytes, step: int) -> Iterator[bytes]:
    """HTTP's deflate is the zlib format (RFC 9110 8.4.1.2); some servers send raw
    deflate, which clients accept too, so that is tried when the zlib header is absent."""
    wbits = 15 if len(body) >= 2 and (body[0] * 256 + body[1]) % 31 == 0 else -15
    d = zlib.decompressobj(wbits)
    view = memoryview(body)
    for pos in range(0, len(view), step):
        data = view[pos:pos + step]
        while True:
            out = d.decompress(data, step)
            if out:
                yield out
            data = d.unconsumed_tail
            if d.eof or not data:
                break
    tail = d.flush()
    if tail:
        yield tail
    if not d.eof:
        raise DecodeError("deflate body is truncated")
    if d.unused_data:
        raise DecodeError("deflate body has data after its end")


def _unbrotli(body: bytes, step: int) -> Iterator[bytes]:
    view = memoryview(body)
    d = brotli.Decompressor()
    for pos in range(0, len(view), step):
        out = d.process(view[pos:pos + step], output_buffer_limit=step)
        while out:
            yield out
            out = b"" if d.is_finished() else d.process(b"", output_buffer_limit=step)
    if not d.is_finished():
        raise DecodeError("br body is truncated")


# ---- streaming: a body as it arrives ---------------------------------------------------------


class StreamDecoder:
    """Decodes a body fed in pieces as they arrive. Each piece of output is at most `step`
    bytes, so a decompression bomb costs time, not memory. `end()` raises DecodeError for
    a body that stopped in the middle of its coding."""

    def __init__(self, coding: str, step: int = STEP) -> None:
        if coding not in ("identity", "gzip", "br", "zstd", "deflate"):
            raise DecodeError(f"unknown coding {coding!r}")
        self.coding, self.step = coding, step
        self._d: object = None  # the current decoder; None: the next member starts
        self._pending = b""  # deflate's first bytes, until its format is known
        self.started = False  # any byte of the coding seen
        self.done = False  # the last frame ended (more frames may follow)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self.started = True
        try:
            if self.coding == "identity":
                yield data
            elif self.coding == "br":
                yield from self._brotli(data)
            elif self.coding == "deflate":
                yield from self._deflate(data)
            else:
                yield from self._frames(data)
        except (zlib.error, brotli.error, zstd.ZstdError, EOFError) as e:
            raise DecodeError(f"{self.coding} body could not be decoded: {e}") from e

    def end(self) -> None:
        if self.coding == "identity" or not self.started:
            return
        if self.coding == "deflate" and self._d is None:
            raise DecodeError("deflate body is truncated")
        if not self.done:
            raise DecodeError(f"{self.coding} body is truncated")

    def _frames(self, data: bytes) -> Iterator[bytes]:
        """gzip members or zstd frames, one after another (RFC 1952, RFC 8878)."""
        while data:
            if self._d is None:
                self._d = (zlib.decompressobj(31) if self.coding == "gzip"
                           else zstd.ZstdDecompressor())
                self.done = False
            d = self._d
            while True:
                if self.coding == "gzip":
                    out = d.decompress(data, self.step)
                    data = d.unconsumed_tail
                    more = bool(data) and not d.eof
                else:
                    out = d.decompress(data, self.step)
                    data = b""
                    more = not d.needs_input and not d.eof
                if out:
                    yield out
                if d.eof or not more:
                    break
            if d.eof:
                data = d.unused_data
                self._d, self.done = None, True
            else:
                data = b""

    def _brotli(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            self._d = brotli.Decompressor()
        d = self._d
        if d.is_finished():
            raise DecodeError("br body has data after its end")
        out = d.process(data, output_buffer_limit=self.step)
        while out:
            yield out
            out = b"" if d.is_finished() else d.process(b"", output_buffer_limit=self.step)
        self.done = d.is_finished()

    def _deflate(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            self._pending += data
            if len(self._pending) < 2:
                return
            data, self._pending = self._pending, b""
            zlib_header = (data[0] * 256 + data[1]) % 31 == 0
            self._d = zlib.decompressobj(15 if zlib_header else -15)
        d = self._d
        while data:
            out = d.decompress(data, self.step)
            if out:
                yield out
            data = d.unconsumed_tail
            if d.eof:
                if d.unused_data or data:
                    raise DecodeError("deflate body has data after its end")
                break
        self.done = d.eof


class StreamEncoder:
    """Encodes a body as it is produced; `flush()` hands over everything encoded so far,
    so a visitor sees each piece (an event, a chunk) without waiting for the next."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        if coding == "gzip":
            self._c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif coding == "br":
            self._c = brotli.Compressor(quality=BROTLI_QUALITY)
        elif coding == "zstd":
            self._c = zstd.ZstdCompressor(level=ZSTD_LEVEL)
        elif coding != "identity":
            raise ValueError(f"unknown coding {coding!r}")

    def feed(self, data: bytes) -> bytes:
        if self.coding == "identity":
            return bytes(data)
        if self.coding == "br":
            return self._c.process(data)
        return self._c.compress(data)

    def flush(self) -> bytes:
        if self.coding == "identity":
            return b""
        if self.coding == "gzip":
            return self._c.flush(zlib.Z_SYNC_FLUSH)
        if self.coding == "br":
            return self._c.flush()
        return self._c.flush(zstd.ZstdCompressor.FLUSH_BLOCK)

    def finish(self) -> bytes:
        if self.coding == "identity":
            return b""
        if self.coding == "br":
            return self._c.finish()
        return self._c.flush()
