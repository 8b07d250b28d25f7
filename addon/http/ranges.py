"""Byte ranges served from a complete cached object, without Origin Range Requests
(facts 1.8.2 to 1.8.7, 1.8.10): only when the visitor gets the identity representation;
an encoded one is sent whole as 200.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MAX_RANGES = 300  # facts 1.8.5: more are ignored (exactly 300 for a complete cached file)
_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
_MAX_DIGITS = 19  # a number too large is ignored (1.8.5)


@dataclass(frozen=True)
class RangeAnswer:
    status: int  # 200 (ignored), 206 or 416
    reason: str
    ranges: tuple[tuple[int, int], ...] = ()  # inclusive (first, last) byte positions


def evaluate(range_header: bytes | None, if_range: bytes | None, size: int,
             etag: bytes | None, last_modified: bytes | None) -> RangeAnswer | None:
    """What a Range header asks of a complete object of `size` bytes; None without one."""
    if range_header is None:
        return None
    if if_range is not None and if_range.strip() not in {v for v in (etag, last_modified) if v}:
        return RangeAnswer(200, "If-Range does not match the cached ETag or Last-Modified: "
                           "the full response (facts 1.8.7)")
    text = range_header.decode("latin-1").strip()
    unit, eq, specs = text.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return RangeAnswer(200, "the Range unit is not bytes: ignored (facts 1.8.5)")
    parts = specs.split(",")
    if not specs.strip():
        return _unsatisfiable("`bytes=` names no range (facts 1.8.4)")
    if len(parts) > MAX_RANGES:
        return RangeAnswer(200, f"more than {MAX_RANGES} ranges: ignored (facts 1.8.5)")
    if size == 0:
        return _unsatisfiable("a range of an empty file (facts 1.8.4)")
    ranges = []
    for part in parts:
        m = _SPEC.fullmatch(part)
        if not m or not (m.group(1) or m.group(2)):
            return RangeAnswer(200, "the Range header does not parse: ignored (facts 1.8.5)")
        first, last = m.group(1), m.group(2)
        if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
            return RangeAnswer(200, "a number in Range is too large: ignored (facts 1.8.5)")
        if not first:  # a suffix: the last N bytes; more than the file gives all of it
            if int(last) == 0:
                return _unsatisfiable("`bytes=-0` (facts 1.8.4)")
            ranges.append((max(size - int(last), 0), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return _unsatisfiable("inverted bounds (facts 1.8.4)")
        if start >= size:
            if len(parts) == 1:
                return _unsatisfiable("the range starts at or after the end (facts 1.8.4)")
            continue  # not satisfiable: dropped from a multi-range request
        ranges.append((start, min(end, size - 1)))  # the end is clipped (1.8.3)
    if not ranges:
        return _unsatisfiable("no satisfiable range (facts 1.8.4)")
    if any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False)):
        return RangeAnswer(200, "overlapping or out-of-order ranges of a complete cached "
                           "file are ignored (facts 1.8.6)")
    return RangeAnswer(206, f"{len(ranges)} range(s) of the cached object (facts 1.8.3)",
                       tuple(ranges))


def _unsatisfiable(why: str) -> RangeAnswer:
    return RangeAnswer(416, why)


def partial_body(answer: RangeAnswer, body: bytes, content_type: bytes | None
                 ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The 206 body and the headers that describe it (Content-Range or a multipart type)."""
    size = len(body)
    if len(answer.ranges) == 1:
        first, last = answer.ranges[0]
        return body[first:last + 1], [(b"content-range", b"bytes %d-%d/%d" % (first, last, size))]
    boundary = os.urandom(8).hex().encode()
    parts = []
    for first, last in answer.ranges:
        head = b"--" + boundary + b"\r\n"
        if content_type:
            head += b"Content-Type: " + content_type + b"\r\n"
        head += b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (first, last, size)
        parts.append(head + body[first:last + 1] + b"\r\n")
    data = b"".join(parts) + b"--" + boundary + b"--\r\n"
    return data, [(b"content-type", b"multipart/byteranges; boundary=" + boundary)]
