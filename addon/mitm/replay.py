"""The edge's own requests to the origin, through mitmproxy's replay machinery so that
TLS, upstream proxies and modes apply: a copy of a visitor's flow, queued (a background
revalidation, a probe) or awaited (asking again for a response the edge can use).
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy.addons.clientplayback import ReplayHandler

from addon.cache import OriginRequest
from addon.http.headers import edit_headers
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm.flowstate import FlowState

logger = logging.getLogger("cf_edge")

ASK_AGAIN_TIMEOUT = 130.0  # Cloudflare's proxy read timeout (120 s) and a connect
AGAIN = "cf_edge_refetch"  # flow.metadata of a second request for a visitor's flow


def send_copy(flow: http.HTTPFlow, mark: dict[str, str], state: FlowState,
              edits: list[tuple[bytes, bytes | None]], method: str | None = None
              ) -> http.HTTPFlow:
    """A copy of the flow with its headers edited, queued on mitmproxy's client replay;
    `mark` says in its metadata what it is, `state` carries it through the hooks."""
    copy = flow.copy()
    copy.live = False
    copy.response = None
    copy.metadata = dict(mark)
    flowstate.attach(copy, state)
    if method is not None:
        copy.request.method = method
    copy.request.headers.fields = edit_headers(copy.request.headers.fields, edits)
    ctx.master.commands.call("replay.client", [copy])
    return copy


async def ask_again(flow: http.HTTPFlow, how: OriginRequest, state: FlowState
                    ) -> http.Response | None:
    """The origin's answer to the request as the edge sent it, changed as `how` says;
    None when that fails too (then the first answer stands)."""
    again = http.HTTPFlow(flow.client_conn, flow.server_conn)
    again.request = flow.request.copy()  # as the edge sent it to the origin
    again.request.method = how.method
    edits = [*((name, None) for name in how.remove), *how.set]
    again.request.headers.fields = edit_headers(again.request.headers.fields, edits)
    again.metadata[AGAIN] = True
    flowstate.attach(again, state)
    try:
        await asyncio.wait_for(ReplayHandler(again, ctx.options).replay(), ASK_AGAIN_TIMEOUT)
    except TimeoutError:
        logger.warning("cf_edge: %s: asking the origin again timed out",
                       wire_text(flow.request.pretty_url))
        return None
    finally:
        flowstate.detach(again)
    if again.response is None or again.error is not None:
        logger.warning("cf_edge: %s: asking the origin again failed: %s",
                       wire_text(flow.request.pretty_url), again.error)
        return None
    return again.response
