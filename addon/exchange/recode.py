"""Carrying out the content phase's job on the body: re-coded whole when it was buffered
(CPU-bound: the caller chooses the thread), or piece by piece as it streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from addon import html
from addon.compression.stream import BodyStream
from addon.exchange.content import Content
from addon.exchange.content import passed_through
from addon.http import codings
from addon.http.accept_encoding import IDENTITY


@dataclass
class Body:
    """The body the visitor gets, once the content phase's job is done."""

    data: bytes | None = None  # the new raw body; None: the origin's (or stored) bytes stand
    features: dict[str, dict[str, int]] = field(default_factory=dict)  # what each changed
    undecodable: str = ""  # why it could not be decoded (tried already): not again


def recode(content: Content, raw: bytes, limit: int, budget: int | None = None
           ) -> tuple[Content, Body] | None:
    """Re-code the body as planned.

    A body that fails to decode, or decodes to more than `limit` bytes, is passed through
    untouched with the reason. With a `budget` smaller than `limit`, returns None once more
    than `budget` bytes were decoded, for the caller to retry off the event loop.
    """
    job = content.recode
    assert job is not None
    cap = limit if budget is None else min(budget, limit)
    features: dict[str, dict[str, int]] = {}
    try:
        if job.html is None:
            data = codings.transcode(raw, job.source, job.target, cap)
        else:
            page = codings.transcode(raw, job.source, IDENTITY, cap)
            result = html.rewrite(page, job.html)
            data = codings.encode(result.body, job.target)
            features = result.counts
    except html.RewriteError as e:
        return _untouched(content, f"the HTML page could not be rewritten byte-faithfully "
                                   f"({e}); passed through untouched rather than corrupt it")
    except codings.TooLarge as e:
        if cap < limit:
            return None
        if e.size is not None:
            reason = (f"the identity body is {e.size} bytes, more than the decode limit "
                      f"(cf_decode_limit, {human_size(limit)}), so it was passed through "
                      "untouched without being read: the proxy's memory stays bounded")
        else:
            reason = (f"the {job.source} body decodes to more than the decode limit "
                      f"(cf_decode_limit, {human_size(limit)}), so decoding stopped there and "
                      "the response was passed through untouched: the proxy's memory stays "
                      "bounded")
        return _untouched(content, reason)
    except codings.DecodeError as e:
        return _untouched(content, f"the origin's body could not be decoded ({e}); passed "
                                   "through untouched rather than guess")
    done = Content(content.decision, content.inputs, content.etag, content.edits,
                   content.drop_content_length, None, content.rules, content.notes)
    return done, Body(data, features)


def _untouched(content: Content, reason: str) -> tuple[Content, Body]:
    return passed_through(content, reason), Body(undecodable=reason)


def stream_body(content: Content, keep: int = 0) -> BodyStream:
    """What carries out the content phase's job on a body that streams, or passes it
    through; `keep` bytes of the origin's are kept for the cache."""
    job = content.recode
    if job is None:
        return BodyStream(keep=keep)
    rewrite = html.StreamRewrite(job.html) if job.html is not None else None
    return BodyStream(job.source, job.target, rewrite, keep)


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"
