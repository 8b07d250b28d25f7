"""Catch the moment mitmproxy starts streaming a body it had been buffering.

A body of unknown length is buffered by mitmproxy until it is longer than
stream_large_bodies; then mitmproxy sets `response.stream = True` and sends the headers at
once, with no hook in between. The edge would miss that moment: the headers would go out
as the origin sent them and the body untouched. `LateStream.watch()` gives the response a
`stream` attribute that, when mitmproxy sets it to True, first lets the edge decide (set
the headers and its own stream callable), then turns the response back into a plain one.
tests/test_streaming.py pins this against the mitmproxy installed.
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http


class LateStream(http.Response):
    @property
    def stream(self):  # type: ignore[override]
        return self.__dict__.get("stream", False)

    @stream.setter
    def stream(self, value) -> None:
        start = self.__dict__.pop("_cf_edge_start", None)
        self.__class__ = http.Response  # a plain response again, whatever happens next
        self.__dict__["stream"] = value
        if value is True and start is not None:
            start()  # sets its own stream callable and the headers

    @staticmethod
    def watch(response: http.Response, start: Callable[[], None]) -> None:
        response.__dict__["_cf_edge_start"] = start
        response.__class__ = LateStream
