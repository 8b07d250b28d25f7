"""The edge cache as mitmproxy sees it: its options and commands, the lock that makes
concurrent misses for one key wait for the first (request collapsing, facts 6.17), and the
stale-while-revalidate revalidation that runs beside the visitor's response.
"""

from __future__ import annotations

import asyncio
import json
import logging

from mitmproxy import command
from mitmproxy import ctx
from mitmproxy import http
from mitmproxy.utils import human

from addon import cache
from addon.exchange import AskOrigin
from addon.exchange import Exchange
from addon.exchange import FromCache
from addon.http.headers import wire_text
from addon.mitm import flowstate
from addon.mitm import options
from addon.mitm.convert import clock
from addon.mitm.convert import response_facts
from addon.mitm.flowstate import FlowState
from addon.mitm.flowstate import Role
from addon.mitm.replay import send_copy

logger = logging.getLogger("cf_edge")

DEFAULT_SIZE = "256m"
LOCK_TIMEOUT = 30.0  # a request waiting for a concurrent fill goes to the origin after this
MARK = "cf_edge_revalidation"  # flow.metadata of a background revalidation: the key


class EdgeCache:
    def __init__(self) -> None:
        self.store: cache.Store | None = cache.Store(human.parse_size(DEFAULT_SIZE))
        self.filling: dict[str, asyncio.Event] = {}  # cache key -> set when its fill is done

    def load(self, loader) -> None:
        loader.add_option(
            "cf_cache", bool, True,
            "Emulate the edge cache (cf-cache-status, validators stripped on a miss, the first "
            "encoding cached, 304s answered at the edge). Off: every request is DYNAMIC.",
        )  # fmt: skip
        loader.add_option(
            "cf_cache_size", str, DEFAULT_SIZE,
            "Most bytes the edge cache holds (e.g. 64m, 1g); the least recently used objects "
            "are evicted first.",
        )  # fmt: skip

    @options.refusing
    def configure(self, updated: set[str]) -> None:
        if "cf_cache" in updated or "cf_cache_size" in updated:
            size = options.size("cf_cache_size")
            if not ctx.options.cf_cache:
                self.store = None
            elif self.store is None:
                self.store = cache.Store(size)
            else:
                self.store.resize(size)

    # ---- request collapsing ----

    def busy(self, step: AskOrigin | FromCache) -> bool:
        """Another request is filling the key this one would fill."""
        return isinstance(step, AskOrigin) and step.fill is not None and step.fill in self.filling

    async def wait_turn(self, flow: http.HTTPFlow, ex: Exchange, step: AskOrigin | FromCache
                        ) -> AskOrigin | FromCache:
        """Wait while another request fills the key, then look again (then it is usually
        a HIT; a waiter that gives up after LOCK_TIMEOUT goes to the origin)."""
        while isinstance(step, AskOrigin) and step.fill is not None:
            event = self.filling.get(step.fill)
            if event is None:
                break
            logger.debug("cf_edge: %s waits until the request filling %s is done",
                         wire_text(flow.request.pretty_url), step.fill)
            try:
                await asyncio.wait_for(event.wait(), LOCK_TIMEOUT)
            except TimeoutError:
                return step
            step = ex.look_again(clock(flow))
        return step

    def claim(self, key: str) -> None:
        self.filling[key] = asyncio.Event()

    def release(self, key: str | None) -> None:
        """The request filling `key` is done: whoever waits for it looks again."""
        event = self.filling.pop(key, None) if key is not None else None
        if event is not None:
            event.set()

    # ---- stale-while-revalidate ----

    def revalidate(self, flow: http.HTTPFlow, ex: Exchange, step: FromCache) -> None:
        """The visitor is served now; the edge's own conditional request goes out beside."""
        key = ex.lookup.key if ex.lookup is not None else None
        how = step.background
        if not flow.live or key is None or key in self.filling or how is None:
            return
        edits = [*((name, None) for name in how.remove), *how.set]
        send_copy(flow, {MARK: key}, FlowState(ex, Role.BACKGROUND), edits, how.method)
        self.claim(key)  # the copy is queued: it runs after this

    def response(self, flow: http.HTTPFlow) -> None:
        state = flowstate.of(flow)
        if state is None or state.role is not Role.BACKGROUND:
            return
        flowstate.detach(flow)
        key = flow.metadata.get(MARK)
        self.release(key)
        if flow.response is None:
            return
        what = state.exchange.background_answered(response_facts(flow.response), clock(flow))
        flow.comment = f"Cloudflare edge: background revalidation of {key}: {what}"
        logger.info("cf_edge: background revalidation of %s: %s", key, what)

    def error(self, flow: http.HTTPFlow) -> None:
        state = flowstate.of(flow)
        if state is not None and state.role is Role.BACKGROUND:
            flowstate.detach(flow)
            self.release(flow.metadata.get(MARK))

    # ---- commands ----

    @command.command("cf.cache.purge")
    def purge(self) -> int:
        """Purge everything from the edge cache; returns how many objects went."""
        return self._purged(self.store.purge() if self.store else 0, "everything")

    @command.command("cf.cache.purge_url")
    def purge_url(self, url: str) -> int:
        """Purge the objects of one URL (every cache key variant of it)."""
        return self._purged(self.store.purge(url=url) if self.store else 0, url)

    @command.command("cf.cache.purge_prefix")
    def purge_prefix(self, prefix: str) -> int:
        """Purge the objects whose URL starts with this prefix."""
        return self._purged(self.store.purge(prefix=prefix) if self.store else 0,
                            f"{prefix}*")

    @command.command("cf.cache.purge_tag")
    def purge_tag(self, tag: str) -> int:
        """Purge the objects tagged with this cache tag (their Cache-Tag, as the origin sent
        it and Cache Response Rules' set_cache_tags edited it)."""
        return self._purged(self.store.purge(tag=tag) if self.store else 0, f"tag {tag}")

    @command.command("cf.cache.stats")
    def stats(self) -> str:
        """The edge cache's statistics as JSON (objects, bytes, capacity, counts)."""
        return json.dumps(self.store.stats() if self.store else {"enabled": False})

    def _purged(self, n: int, what: str) -> int:
        logger.info("cf_edge: purged %d object(s) from the edge cache: %s", n, what)
        return n
