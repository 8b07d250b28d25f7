"""The thin mitmproxy adapter: read facts off a flow, ask the pipeline, apply the plan.

Compute first, change the flow last: if anything fails, the response goes out untouched
and the reason is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import IO

from mitmproxy import command
from mitmproxy import contentviews
from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy.addons.clientplayback import ReplayHandler
from mitmproxy.net.http import status_codes
from mitmproxy.net.http import url
from mitmproxy.proxy import mode_specs
from mitmproxy.utils import human

from addon import cache
from addon import diagnosis
from addon.compression.policy import ORIGIN_ACCEPT_ENCODING
from addon.compression.stream import Threaded
from addon.config.loader import RulesFileError
from addon.config.loader import load_rules
from addon.config.zone import Zone
from addon.exchange import egress
from addon.exchange import errors as origin_errors
from addon.exchange import pipeline
from addon.http.conditional import CONDITIONAL_HEADERS
from addon.http.conditional import usable_etag
from addon.http.fields import media_type
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import header_values
from addon.http.headers import wire_text
from addon.http.messages import Request
from addon.http.messages import Response
from addon.mitm import error_page as error_response
from addon.mitm.contentview import EdgeView
from addon.mitm.origins import Reachability
from addon.mitm.stream_switch import LateStream
from addon.report import Report

logger = logging.getLogger("cf_edge")

DEFAULT_RULES = "rules.yaml"
BUNDLED_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"
MARKER = ":cloud:"
META = "cf_edge"
OPTIONS = ("cf_rules", "cf_log", "cf_decode_limit", "cf_eventlog", "cf_cache", "cf_cache_size",
           "cf_report", "cf_trace", "cf_diagnose_probe", "cf_connect_timeout", "cf_stream")
RELOAD_INTERVAL = 1.0
DEFAULT_DECODE_LIMIT = "256m"
EVENTLOG_CHOICES = ("changes", "all", "off")
DEFAULT_CACHE_SIZE = "256m"
DEFAULT_STREAM = "16m"
BACKGROUND = "cf_edge_revalidation"  # metadata of the edge's own background requests
REFETCH = "cf_edge_refetch"  # metadata of the edge's second request for a full response
REFETCH_TIMEOUT = 130.0  # Cloudflare's proxy read timeout (120 s) and a connect
PROBE = "cf_edge_probe"  # metadata of the origin-diagnosis probes (cf_diagnose_probe)
OWN_REQUESTS = frozenset({BACKGROUND, PROBE, REFETCH})
FORWARD_MODES = (mode_specs.RegularMode, mode_specs.UpstreamMode)  # the visitor asks a proxy
LOCK_TIMEOUT = 30.0  # a request waiting for a concurrent fill goes to the origin after this
# Re-code on the event loop when the origin's body is at most INLINE_RAW bytes and decodes
# to at most INLINE_DECODED; anything larger goes to a worker thread (the codecs release
# the GIL), so small responses never wait behind a big one and never pay for the hop.
INLINE_RAW = 64 * 1024
INLINE_DECODED = 256 * 1024
INLINE_HTML = 64 * 1024  # rewriting costs about 20 ms per MB (lolhtml-notes): keep it short

_JSON = json.JSONEncoder(ensure_ascii=False)


class CloudflareEdge:
    def __init__(self) -> None:
        self.zone: Zone | None = None
        self.rules_path: Path | None = None
        self.rules_mtime: float | None = None
        self.log_file: IO[bytes] | None = None
        self.states: dict[str, pipeline.RequestState] = {}
        self.watcher: asyncio.Task | None = None
        self.decode_limit = human.parse_size(DEFAULT_DECODE_LIMIT)
        self.eventlog = "changes"
        self.store: cache.Store | None = cache.Store(human.parse_size(DEFAULT_CACHE_SIZE))
        self.lookups: dict[str, cache.Lookup] = {}
        self.served: dict[str, cache.Served] = {}  # answered from cache in `request`
        self.filling: dict[str, asyncio.Event] = {}  # cache key -> set when its fill is done
        self.background: dict[str, cache.Lookup] = {}  # revalidation flow id -> lookup
        self.report: Report | None = None
        self.report_path: Path | None = None
        self.trace = False
        self.probe = False
        self.anticomp = False  # mitmproxy's own option, read once per change
        self.probed: dict[str, None] = {}  # URLs probed, oldest first (bounded)
        self.diagnosis = diagnosis.OriginDiagnosis()
        self.origins = Reachability()
        self.stream_at: int | None = None  # bodies longer than this stream (cf_stream)
        self.stream_option = "cf_stream"  # the option that set stream_at
        self.streams: dict[str, Streaming] = {}  # flow id -> a body streaming through

    # ---- lifecycle (all synchronous, see mitmproxy-notes 2.4) ----

    def load(self, loader) -> None:
        loader.add_option(
            "cf_rules", str, DEFAULT_RULES,
            "Rules file describing the Cloudflare zone (plan, settings, cache, compression and "
            "configuration rules). Re-read when it changes on disk.",
        )  # fmt: skip
        loader.add_option(
            "cf_log", str, "",
            "Append one JSON Lines record per handled response to this file (empty: off).",
        )  # fmt: skip
        loader.add_option(
            "cf_decode_limit", str, DEFAULT_DECODE_LIMIT,
            "Largest decoded body the edge re-codes (e.g. 512k, 64m, 1g). A body that decodes "
            "to more is passed through untouched and the reason logged, so a decompression "
            "bomb cannot exhaust memory.",
        )  # fmt: skip
        loader.add_option(
            "cf_eventlog", str, "changes",
            "What goes to mitmproxy's event log: 'changes' (one line per converted response), "
            "'all' (pass-throughs too, costs throughput) or 'off'.",
            choices=EVENTLOG_CHOICES,
        )  # fmt: skip
        loader.add_option(
            "cf_cache", bool, True,
            "Emulate the edge cache (cf-cache-status, validators stripped on a miss, the first "
            "encoding cached, 304s answered at the edge). Off: every request is DYNAMIC.",
        )  # fmt: skip
        loader.add_option(
            "cf_cache_size", str, DEFAULT_CACHE_SIZE,
            "Most bytes the edge cache holds (e.g. 64m, 1g); the least recently used objects "
            "are evicted first.",
        )  # fmt: skip

        loader.add_option(
            "cf_report", str, "",
            "Write a report of the run to this Markdown file, and the same as a self-contained "
            "HTML page next to it, when mitmproxy stops or a recording has been replayed.",
        )  # fmt: skip
        loader.add_option(
            "cf_trace", bool, False,
            f"Add a response header ({pipeline.TRACE_HEADER.decode()}) that explains the "
            "edge's decision in one line, for the browser's developer tools.",
        )  # fmt: skip
        loader.add_option(
            "cf_diagnose_probe", bool, False,
            "Origin diagnosis: once per URL with a strong ETag, ask the origin again with the "
            "weakened W/ tag a browser behind Cloudflare sends, to find origins whose 304s "
            "are lost (one extra origin request per URL).",
        )  # fmt: skip
        loader.add_option(
            "cf_connect_timeout", str, f"{origin_errors.CONNECT_TIMEOUT:g}",
            "Seconds the edge waits for a connection to the origin before it answers 522 "
            "Connection timed out (Cloudflare waits 19 s).",
        )  # fmt: skip
        loader.add_option(
            "cf_stream", str, DEFAULT_STREAM,
            "Bodies longer than this (e.g. 512k, 1m, 64m) pass through the edge as they "
            "arrive instead of being buffered: decided at once from a Content-Length, once "
            "this much has arrived otherwise. Event streams always stream. Empty: only "
            "event streams and what mitmproxy's stream_large_bodies streams.",
        )  # fmt: skip
        contentviews.add(EdgeView())
        error_response.install()

    def configure(self, updated) -> None:
        if "cf_rules" in updated:
            path = Path(ctx.options.cf_rules)
            if ctx.options.cf_rules == DEFAULT_RULES and not path.exists():
                path = BUNDLED_RULES  # started from another directory: use the repo's default
            try:
                zone = load_rules(path)
            except RulesFileError as e:
                raise exceptions.OptionsError(f"cf_rules: {e}") from None
            self._install(zone, path)
        if "cf_log" in updated:
            self._open_log(ctx.options.cf_log)
        if "cf_decode_limit" in updated:
            self.decode_limit = _size_option("cf_decode_limit")
        if "cf_cache" in updated or "cf_cache_size" in updated:
            size = _size_option("cf_cache_size")
            if not ctx.options.cf_cache:
                self.store = None
            elif self.store is None:
                self.store = cache.Store(size)
            else:
                self.store.resize(size)
        if "cf_report" in updated:
            value = ctx.options.cf_report
            path = Path(value) if value else None
            if path is not None and (path.is_dir() or not path.parent.is_dir()):
                raise exceptions.OptionsError(
                    f"cf_report: {value} must be a file in an existing directory")
            self.report_path = path
            self.report = Report() if path is not None else None
        if "anticomp" in updated:
            self.anticomp = bool(ctx.options.anticomp)
        if "cf_trace" in updated:
            self.trace = bool(ctx.options.cf_trace)
        if "cf_diagnose_probe" in updated:
            self.probe = bool(ctx.options.cf_diagnose_probe)
        if {"cf_stream", "stream_large_bodies"} & updated:
            self._stream_threshold()
        if "cf_connect_timeout" in updated:
            self.origins.connect_timeout = _seconds_option("cf_connect_timeout")
        if {"mode", "connection_strategy"} & updated:
            self._connect_lazily()
        if "cf_eventlog" in updated:
            if ctx.options.cf_eventlog not in EVENTLOG_CHOICES:
                raise exceptions.OptionsError(
                    f"cf_eventlog: {ctx.options.cf_eventlog!r} is not one of "
                    f"{', '.join(EVENTLOG_CHOICES)}")
            self.eventlog = ctx.options.cf_eventlog

    def _stream_threshold(self) -> None:
        """The size past which a body streams: cf_stream, or mitmproxy's
        stream_large_bodies when smaller. A body of unknown length can only start
        streaming when mitmproxy's own option says so, so the addon sets it to the
        threshold (which streams large uploads to the origin too)."""
        ours = _size_option("cf_stream") if ctx.options.cf_stream else None
        try:
            theirs = human.parse_size(ctx.options.stream_large_bodies)
        except ValueError:
            theirs = None
        sizes = [n for n in (ours, theirs) if n]
        self.stream_at = min(sizes) if sizes else None
        self.stream_option = "cf_stream" if self.stream_at == ours else "stream_large_bodies"
        if self.stream_at is not None and self.stream_at != theirs:
            ctx.options.update(stream_large_bodies=str(self.stream_at))
            logger.info("cf_edge: stream_large_bodies set to %s (cf_stream): a body of "
                        "unknown length streams through the edge once that much has arrived",
                        pipeline.human_size(self.stream_at))

    def _connect_lazily(self) -> None:
        """Cloudflare connects to the origin for a request; mitmproxy by default connects
        when the visitor does, and in reverse mode drops the visitor's connection without
        an answer when the origin is down. Lazy connections let the edge answer 52x."""
        modes = ctx.options.mode or []
        if ctx.options.connection_strategy == "eager" and not any(
                m.startswith("upstream:") for m in modes):
            ctx.options.update(connection_strategy="lazy")
            logger.info("cf_edge: connection_strategy set to lazy: the origin is connected "
                        "when a request needs it, so a dead origin gets Cloudflare's 52x "
                        "answers")

    def running(self) -> None:
        typos = sorted(k for k in ctx.options.deferred if k.startswith("cf_"))
        if typos:
            logger.warning("unknown option(s) ignored: %s (known: %s)", ", ".join(typos),
                           ", ".join(OPTIONS))
        if self.watcher is None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing to watch
                self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self.report is not None and self.report_path is not None:
            try:
                md, page = self.report.write(self.report_path)
                logger.info("cf_edge: report written to %s and %s", md, page)
            except OSError as e:
                logger.warning("cf_edge: cannot write the report %s: %s", self.report_path, e)
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        error_response.uninstall()

    # ---- HTTP hooks ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # The visitor's headers, before anticomp/anticache change them in `request`.
        if self.zone is None or OWN_REQUESTS.intersection(flow.metadata):
            return
        if flow.metadata.get(META, {}).get("handled"):
            return  # converted in an earlier run over this recording
        try:
            facts = request_facts(flow)
            state = pipeline.on_request(self.zone, facts)
        except Exception:
            logger.exception("cf_edge: request left unchanged after an internal error: %s",
                             flow.request.pretty_url)
            return
        self.states[flow.id] = state

    async def request(self, flow: http.HTTPFlow) -> None:
        state = self.states.get(flow.id)
        if state is None or (flow.live and flow.response is not None):
            return  # not ours, or another addon answered already
        try:
            answer = pipeline.edge_answer(state)
        except Exception:
            logger.exception("cf_edge: /cdn-cgi/ answer failed; sent to the origin: %s",
                             wire_text(flow.request.pretty_url))
            return
        if answer is not None:  # the edge answers its own /cdn-cgi/ paths
            self._answer(flow, *answer)
            return
        try:
            lk = await self._lookup(flow, state)
        except Exception:
            logger.exception("cf_edge: cache lookup failed; sent to the origin uncached: %s",
                             wire_text(flow.request.pretty_url))
            return
        self.lookups[flow.id] = lk
        failure = None
        if lk.origin is not None and flow.live and not self.origins.recent(flow):
            failure = await self.origins.check(flow)
        if failure is not None:
            code, detail = failure
            if lk.status == "EXPIRED" and lk.obj is not None and lk.obj.stale_on_error:
                served = cache.serve_stale(lk, _now(flow), f"the origin cannot be reached "
                                           f"({detail}, {code})")
                self.served[flow.id] = served
                flow.response = stored_response(served.response, flow)
                return
            # mitmproxy would answer a failed connection with its own 502 before any hook
            # runs again, so the edge answers with Cloudflare's error now
            self._release(flow, self.lookups.pop(flow.id, None))
            self._answer(flow, *pipeline.origin_error(state, code, detail))
            return
        if lk.origin is None:  # HIT or UPDATING: the origin is not asked
            try:
                served = cache.serve_stored(lk, _now(flow))
                response = stored_response(served.response, flow)
                if self.store is not None:
                    self.store.hit()
            except Exception:
                logger.exception("cf_edge: serving from cache failed; sent to the origin: %s",
                                 wire_text(flow.request.pretty_url))
                self.lookups.pop(flow.id, None)
                return
            self.served[flow.id] = served
            flow.response = response
            if lk.background is not None:
                try:
                    self._revalidate_in_background(flow, lk)
                except Exception:  # the visitor is served either way
                    logger.warning("cf_edge: background revalidation of %s not started",
                                   lk.key, exc_info=True)
            return
        # Towards the origin (facts 8.6, 8.7), in one pass over the headers. A recorded
        # request was already sent: history is not rewritten.
        if flow.live:
            req = flow.request
            edits = [(name, None) for name in lk.origin.remove]
            edits += [*lk.origin.set, *pipeline.origin_headers(state)]
            # With Respect Strong ETags on, the visitor's own header goes to the origin byte
            # for byte; mitmproxy's anticomp, when on, has the last word.
            if not state.respect_strong_etags and not self.anticomp:
                edits.append((b"accept-encoding", ORIGIN_ACCEPT_ENCODING.encode()))
            if isinstance(flow.client_conn.proxy_mode, FORWARD_MODES) and req.host:
                # a proxy replaces a Host that differs from the target's (RFC 9112 3.2.2)
                authority = state.request.host.encode("utf-8", "surrogateescape")
                current = header(state.request.headers, b"host")
                if current is not None and current != authority:
                    edits.append((b"host", authority))
            req.headers.fields = edit_headers(req.headers.fields, edits)
            if req.method != lk.origin.method:
                req.method = lk.origin.method

    def _answer(self, flow: http.HTTPFlow, status: int, headers: Headers, body: bytes,
                entry: dict) -> None:
        """The edge answers itself (its /cdn-cgi/ paths, a 52x): the response, logged."""
        self.states.pop(flow.id, None)
        flow.response = http.Response.make(status, body, headers)
        self._write(entry)
        self._log_answer(entry)
        annotate(flow, entry)
        if self.report is not None:
            self.report.add(entry)

    def _log_answer(self, entry: dict) -> None:
        if entry.get("origin_error") and self.eventlog != "off":
            logger.warning("cf_edge: %s %s %s: %s", entry["method"], entry["url"],
                           entry["status_out"], entry["reason"])

    async def _lookup(self, flow: http.HTTPFlow, state: pipeline.RequestState) -> cache.Lookup:
        """The cache lookup; a miss waits while another request fills the same key, then
        looks again (the cache lock, facts 6.17)."""
        store = self.store
        lk = cache.lookup(store, state.cache, state.request, _now(flow))
        waited = False
        while lk.origin is not None and lk.key is not None and flow.live:
            event = self.filling.get(lk.key)
            if event is None:
                if lk.status in ("MISS", "EXPIRED"):
                    self.filling[lk.key] = asyncio.Event()
                break
            waited = True
            logger.debug("cf_edge: %s waits until the request filling %s is done",
                         wire_text(flow.request.pretty_url), lk.key)
            try:
                await asyncio.wait_for(event.wait(), LOCK_TIMEOUT)
            except TimeoutError:
                break
            lk = cache.lookup(store, state.cache, state.request, _now(flow))
        if waited:
            return dataclasses.replace(lk, reason=f"{lk.reason}; waited for a concurrent "
                                       "request that was filling this key (facts 6.17)")
        return lk

    def _release(self, flow: http.HTTPFlow, lk: cache.Lookup | None) -> None:
        """A visitor's flow that went to the origin is done: free its key's cache lock."""
        if lk is not None and lk.origin is not None and flow.live:
            self._unlock(lk.key)

    def _unlock(self, key: str | None) -> None:
        """Wake whoever waits for `key` to be filled (facts 6.17)."""
        event = self.filling.pop(key, None) if key is not None else None
        if event is not None:
            event.set()

    def _revalidate_in_background(self, flow: http.HTTPFlow, lk: cache.Lookup) -> None:
        """stale-while-revalidate: the visitor is served now; the edge's own conditional
        request goes out through mitmproxy's client replay, so TLS and modes apply."""
        if not flow.live or lk.key is None or lk.key in self.filling or lk.background is None:
            return
        state = self.states.get(flow.id)
        edits = [(name, None) for name in lk.background.remove]
        edits += [*lk.background.set, *(pipeline.origin_headers(state) if state else ())]
        sent = _send_copy(flow, {BACKGROUND: lk.key}, edits, lk.background.method)
        self.filling[lk.key] = asyncio.Event()  # the copy is queued: it runs after this
        self.background[sent.id] = lk

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """The last moment before mitmproxy sends the headers of a body that streams: the
        edge decides on them and sets the body's transformation (see addon/streaming)."""
        state = self.states.get(flow.id)
        zone, resp = self.zone, flow.response
        if state is None or zone is None or resp is None or flow.id in self.served:
            return  # not ours, or answered from the cache
        if OWN_REQUESTS.intersection(flow.metadata) or not flow.live:
            return
        try:
            why = self._streams_because(flow, state)
            if why is not None:
                self._start_stream(flow, state, zone, why)
            elif self.stream_at is not None and _length(resp) is None and _has_body(flow):
                # unknown length: mitmproxy buffers it until stream_large_bodies, then
                # switches to streaming; the edge decides at that moment
                at = self.stream_at
                why = (f"more than {pipeline.human_size(at)} ({self.stream_option}) arrived "
                       "without a Content-Length")
                LateStream.watch(resp, lambda: self._start_stream(flow, state, zone, why,
                                                                  size_hint=at))
        except Exception:
            logger.exception("cf_edge: %s: the edge could not prepare the stream; it passes "
                             "untouched", wire_text(flow.request.pretty_url))

    def _streams_because(self, flow: http.HTTPFlow, state: pipeline.RequestState
                         ) -> str | None:
        """Why this response's body streams through the edge instead of being buffered,
        or None."""
        resp = flow.response
        assert resp is not None
        if not _has_body(flow):
            return None
        lk = self.lookups.get(flow.id)
        if (lk is not None and lk.status == "EXPIRED" and lk.obj is not None
                and lk.obj.stale_on_error and resp.status_code in cache.ORIGIN_FAILURES):
            return None  # buffered, so that the stored object can be served STALE
        if media_type(header(tuple(resp.headers.fields), b"content-type")) == \
                b"text/event-stream":
            return "an event stream (text/event-stream) is never buffered"
        if state.features.get("response_body_buffering") == "none":
            return "Response Body Buffering is none for this request (facts 3.0.3)"
        length = _length(resp)
        if self.stream_at is not None and length is not None and length > self.stream_at:
            return (f"its Content-Length, {length} bytes, is more than "
                    f"{pipeline.human_size(self.stream_at)} ({self.stream_option})")
        if resp.stream:
            return "mitmproxy's stream_large_bodies streams it"
        return None

    def _start_stream(self, flow: http.HTTPFlow, state: pipeline.RequestState, zone: Zone,
                      why: str, size_hint: int | None = None) -> None:
        """Decide on the headers, set them, and let the body through the transformation."""
        resp = flow.response
        assert resp is not None
        lk = self.lookups.get(flow.id)
        facts = Response(resp.status_code, tuple(resp.headers.fields), None,
                              streaming=True, size_hint=size_hint)
        rules: tuple[str, ...] = ()
        strip: tuple[bytes, ...] = ()
        served, keep = None, 0
        if lk is not None:
            strip, rules = pipeline.cache_response_rules(zone, state, facts)
            served, keep = cache.before_body(self.store, lk, state.request, facts, zone.plan,
                                             strip, _now(flow))
        if served is None:
            plan = pipeline.on_response(zone, state, facts)
        else:
            plan = pipeline.deliver(zone, state, served, rules)
        body = Threaded(pipeline.stream_body(plan, keep))
        plan = pipeline.finish(plan, state)
        if self.trace:
            plan = pipeline.with_trace(plan, state)
        final = pipeline.visitor_response(plan, facts.status, facts.headers, None,
                                          pipeline.visitor_of(state), self.decode_limit,
                                          streaming=True)
        # everything computed: the headers go out after this, then the body through `body`
        fields = final.headers
        if resp.is_http2 or resp.is_http3:
            fields = tuple((k.lower(), v) for k, v in fields)
        resp.headers.fields = fields
        resp.stream = body
        self.streams[flow.id] = Streaming(plan, final, served, facts, body, why, strip)

    def _stream_ended(self, flow: http.HTTPFlow, st: Streaming, cut: str = "") -> None:
        """The streamed body ended (or was cut): the cache keeps it if it ended whole, and
        the record is written, with the bytes that passed."""
        state = self.states.pop(flow.id, None)
        lk = self.lookups.pop(flow.id, None)
        zone = self.zone
        if cut:
            st.body.close()
        try:
            if state is None or zone is None:
                return
            body = st.body
            notes = []
            kept = None if cut else body.stored
            if kept is not None and lk is not None and self.store is not None \
                    and st.served is not None and st.served.key is not None:
                whole = dataclasses.replace(st.facts, body=kept, streaming=False)
                stored = cache.after_origin(self.store, lk, state.request, whole, zone.plan,
                                            st.strip, _now(flow))
                if stored.stored:
                    notes.append(f"stored in the edge cache as it streamed ({len(kept)} bytes)")
            entry = pipeline.record(state, st.facts, st.plan, st.final)
            entry["streamed"] = st.why
            entry["bytes_in"], entry["bytes_out"] = body.bytes_in, body.bytes_out
            if body.features():
                entry["features"] = body.features()
            if body.error:
                notes.append(f"the body broke while it streamed ({body.error}): the visitor "
                             "got it cut short there")
            if cut:
                notes.append(f"the stream was cut after {body.bytes_in} bytes from the origin "
                             f"({cut}); nothing was stored")
            entry["notes"] += notes
        except Exception:
            logger.exception("cf_edge: %s: the end of a stream could not be recorded",
                             wire_text(flow.request.pretty_url))
            return
        finally:
            self._release(flow, lk)
        self._log(entry, st.plan)
        annotate(flow, entry, st.facts.headers)
        if self.report is not None:
            self.report.add(entry)

    async def response(self, flow: http.HTTPFlow) -> None:
        if BACKGROUND in flow.metadata:
            self._background_done(flow)
            return
        if PROBE in flow.metadata:
            self._probe_done(flow)
            return
        if flow.live and flow.server_conn.timestamp_tcp_setup is not None:
            self.origins.answered(flow)
        if REFETCH in flow.metadata:
            return  # its answer is used by the visitor's flow that asked for it
        streamed = self.streams.pop(flow.id, None)
        if streamed is not None:
            self._stream_ended(flow, streamed)
            return
        state = self.states.pop(flow.id, None)
        lk = self.lookups.pop(flow.id, None)
        served = self.served.pop(flow.id, None)
        zone = self.zone
        try:
            if state is None or zone is None or flow.response is None:
                return
            if state.request.method != flow.request.method:
                flow.request.method = state.request.method  # HEAD went out as GET (1.7.1)
            failure = None if served is not None else _unusable(flow, state)
            if failure is not None:  # an answer Cloudflare would not have taken
                code, detail = failure
                if lk is not None and lk.status == "EXPIRED" and lk.obj is not None \
                        and lk.obj.stale_on_error:
                    served = cache.serve_stale(lk, _now(flow), f"{detail} ({code})")
                    flow.response = stored_response(served.response, flow)
                else:
                    self._answer(flow, *pipeline.origin_error(state, code, detail))
                    return
            await self._respond(flow, zone, state, lk, served)
        finally:
            self._release(flow, lk)

    async def _respond(self, flow: http.HTTPFlow, zone: Zone, state: pipeline.RequestState,
                       lk: cache.Lookup | None, served: cache.Served | None) -> None:
        assert flow.response is not None
        answered_in_request = served is not None  # HIT, UPDATING (live or replayed)
        origin = flow.response  # what the origin answered (or a stored object in request)
        asked_again: list[str] = []  # why the edge asked the origin a second time
        try:
            facts = response_facts(origin)
            rules: tuple[str, ...] = ()
            if lk is not None and served is None:
                strip, rules = pipeline.cache_response_rules(zone, state, facts)
                served = cache.after_origin(self.store, lk, state.request, facts, zone.plan,
                                            strip, _now(flow), recorded=not flow.live)
                if served.refetch is not None and flow.live:
                    again = await self._refetch(flow, served.refetch)
                    if again is not None:  # else the 304 goes out as it came
                        asked_again.append(served.reason)
                        origin, facts = again, response_facts(again)
                        strip, rules = pipeline.cache_response_rules(zone, state, facts)
                        served = cache.after_origin(self.store, lk, state.request, facts,
                                                    zone.plan, strip, _now(flow))
                        served = dataclasses.replace(
                            served, reason=f"{asked_again[-1]}; then {served.reason}")
            elif served is not None and not flow.live and lk is not None and lk.background:
                self._background_result(flow, zone, state, lk, facts)
            plan, final = await self._deliver(zone, state, served, facts, rules)
            if final.need_full and flow.live and not answered_in_request:
                again = await self._refetch(flow, pipeline.FULL_REPRESENTATION)
                if again is not None:
                    asked_again.append(f"{final.unresolved}: the edge asked the origin for the "
                                       "full response and sent it whole instead of the range "
                                       "(facts 1.8.1)")
                    origin, facts = again, response_facts(again)
                    if lk is not None:
                        strip, rules = pipeline.cache_response_rules(zone, state, facts)
                        served = cache.after_origin(self.store, lk, state.request, facts,
                                                    zone.plan, strip, _now(flow))
                    plan, final = await self._deliver(zone, state, served, facts, rules)
            source = served.response if served else facts  # what the visitor's copy is of
            entry = pipeline.record(state, source, plan, final)
            if asked_again:
                entry["asked_again"] = asked_again
            if not answered_in_request:  # the origin was asked: what it did
                forwarded = not flow.live or lk is None or lk.status == "DYNAMIC"
                findings = self.diagnosis.check(state.request, facts, forwarded)
                if lk is not None and lk.key is not None and lk.obj is not None \
                        and served is not None:
                    lost = self.diagnosis.revalidation(
                        lk.key, usable_etag(header_values(lk.obj.headers, b"etag")),
                        served.status, facts, " ".join(asked_again))
                    if lost is not None:
                        findings.append(lost)
                if findings:
                    entry["diagnoses"] = [f.as_dict for f in findings]
        except Exception as e:
            logger.warning("cf_edge: %s passed through untouched after an internal error: %r",
                           wire_text(flow.request.pretty_url), e, exc_info=True)
            return
        if origin is not flow.response:
            flow.response = origin  # the second answer replaces the unusable first
        if served is not None and served.from_store and not answered_in_request:
            flow.response = stored_response(served.response, flow)  # REVALIDATED, STALE
        apply_final(flow, final)  # everything computed: only now touch the flow
        self._log(entry, plan)
        annotate(flow, entry, source.headers)
        if self.report is not None:
            self.report.add(entry)
        if self.probe and flow.live and not answered_in_request:
            try:
                self._probe(flow, facts, final.etag)
            except Exception:  # a diagnosis aid: never at the expense of the response
                logger.warning("cf_edge: origin probe of %s not started",
                               wire_text(flow.request.pretty_url), exc_info=True)

    async def _deliver(self, zone: Zone, state: pipeline.RequestState,
                       served: cache.Served | None, facts: Response,
                       rules: tuple[str, ...]) -> tuple[pipeline.ResponsePlan, egress.Final]:
        """The delivery phases for what the visitor is served, up to the last one."""
        if served is None:
            plan = pipeline.on_response(zone, state, facts)  # decides; decodes nothing big
        else:
            plan = pipeline.deliver(zone, state, served, rules)
        if plan.recode is not None:
            raw = plan.served.response.body if plan.served else facts.body
            assert raw is not None
            plan = await self._recode(plan, raw)
        plan = pipeline.finish(plan, state)
        if self.trace:
            plan = pipeline.with_trace(plan, state)
        source = served.response if served else facts
        if source.streamed:  # its headers and body already left: only say what they were
            return plan, egress.observe(pipeline.visitor_of(state), source.status,
                                        source.headers)
        final = pipeline.visitor_response(plan, source.status, source.headers, source.body,
                                          pipeline.visitor_of(state), self.decode_limit)
        return plan, final

    async def _refetch(self, flow: http.HTTPFlow, how: cache.OriginRequest
                       ) -> http.Response | None:
        """Ask the origin again when its answer cannot be used (a 304 that may not update
        the stored object, a range of an encoding the visitor cannot read), through
        mitmproxy's own replay machinery so that TLS, upstream proxies and modes apply.
        None when that fails too; the first answer then stands."""
        again = http.HTTPFlow(flow.client_conn, flow.server_conn)
        again.request = flow.request.copy()  # as the edge sent it to the origin
        again.request.method = how.method
        edits = [*((name, None) for name in how.remove), *how.set]
        again.request.headers.fields = edit_headers(again.request.headers.fields, edits)
        again.metadata[REFETCH] = True
        try:
            await asyncio.wait_for(ReplayHandler(again, ctx.options).replay(), REFETCH_TIMEOUT)
        except TimeoutError:
            logger.warning("cf_edge: %s: asking the origin again timed out",
                           wire_text(flow.request.pretty_url))
            return None
        if again.response is None or again.error is not None:
            logger.warning("cf_edge: %s: asking the origin again failed: %s",
                           wire_text(flow.request.pretty_url), again.error)
            return None
        return again.response

    def _probe(self, flow: http.HTTPFlow, facts: Response,
               visitor_etag: bytes | None) -> None:
        """cf_diagnose_probe: once per URL, ask the origin again with the weakened tag a
        browser behind Cloudflare would send; a 200 means its 304s are lost."""
        url = flow.request.pretty_url
        tag = diagnosis.probe_needed(request_facts(flow), facts, visitor_etag)
        if tag is None or url in self.probed:
            return
        self.probed[url] = None
        if len(self.probed) > diagnosis.REMEMBERED_URLS:
            self.probed.pop(next(iter(self.probed)))
        edits = [(name, None) for name in CONDITIONAL_HEADERS] + [(b"if-none-match", tag)]
        _send_copy(flow, {PROBE: url}, edits)

    def _probe_done(self, flow: http.HTTPFlow) -> None:
        if flow.response is None:
            return
        finding = diagnosis.probe_finding(request_facts(flow), response_facts(flow.response))
        url = flow.metadata[PROBE]
        if finding is not None:
            flow.comment = f"Cloudflare edge: probe of {url}: {finding.message}"
            logger.warning("cf_edge: origin diagnosis for %s: %s. Fix: %s", url,
                           finding.message, finding.fix)
            if self.report is not None:
                self.report.add_finding(url, finding.as_dict)
            self._write({"ts": round(time.time(), 3), "url": url, "probe": True,
                         "status": flow.response.status_code, "diagnoses": [finding.as_dict]})
        else:
            flow.comment = (f"Cloudflare edge: probe of {url}: the origin answered "
                            f"{flow.response.status_code} to the weakened tag")

    def _background_done(self, flow: http.HTTPFlow) -> None:
        lk = self.background.pop(flow.id, None)
        zone = self.zone
        if lk is None or lk.key is None:
            return
        self._unlock(lk.key)
        if zone is None or self.store is None or flow.response is None:
            return
        state = pipeline.on_request(zone, request_facts(flow))
        what = self._background_result(flow, zone, state, lk, response_facts(flow.response))
        flow.comment = f"Cloudflare edge: background revalidation of {lk.key}: {what}"
        logger.info("cf_edge: background revalidation of %s: %s", lk.key, what)

    def _background_result(self, flow: http.HTTPFlow, zone: Zone,
                           state: pipeline.RequestState, lk: cache.Lookup,
                           facts: Response) -> str:
        """What a background revalidation's answer does to the stored object. Replaying a
        recording, the recorded answer stands for it."""
        if self.store is None:
            return "the cache is off"
        strip, _ = pipeline.cache_response_rules(zone, state, facts)
        return cache.after_background(self.store, lk, state.request, facts, zone.plan, strip,
                                      _now(flow))

    async def _recode(self, plan: pipeline.ResponsePlan, raw: bytes) -> pipeline.ResponsePlan:
        if len(raw) <= INLINE_RAW:
            assert plan.recode is not None
            budget = INLINE_DECODED if plan.recode.html is None else INLINE_HTML
            done = pipeline.recode(plan, raw, self.decode_limit, budget=budget)
            if done is not None:
                return done
        return await asyncio.to_thread(pipeline.recode, plan, raw, self.decode_limit)

    async def error(self, flow: http.HTTPFlow) -> None:
        if BACKGROUND in flow.metadata:
            lk = self.background.pop(flow.id, None)
            self._unlock(lk.key if lk is not None else None)
            return
        if OWN_REQUESTS.intersection(flow.metadata):
            return
        streamed = self.streams.pop(flow.id, None)
        if streamed is not None:
            self._stream_ended(flow, streamed, cut=flow.error.msg if flow.error else "cut")
            return
        state = self.states.pop(flow.id, None)
        self.served.pop(flow.id, None)
        lk = self.lookups.pop(flow.id, None)
        self._release(flow, lk)
        zone = self.zone
        if state is None or zone is None or flow.error is None or flow.response is not None:
            return
        failure = origin_errors.origin_failure(
            flow.error.msg, connected=flow.server_conn.timestamp_tcp_setup is not None,
            tls=flow.request.scheme == "https")
        if failure is None:
            return  # the visitor went away, or mitmproxy's own limits: not the origin
        self.origins.failed(flow)
        try:
            if lk is not None and lk.status == "EXPIRED" and lk.obj is not None \
                    and lk.obj.stale_on_error:  # STALE wins over the error (facts 6.21)
                served = cache.serve_stale(lk, _now(flow), f"the origin cannot be reached "
                                           f"({flow.error.msg}, {failure})")
                plan, final = await self._deliver(zone, state, served, served.response, ())
                entry = pipeline.record(state, served.response, plan, final)
                status = final.status
                answer = http.Response.make(final.status, final.body or b"", final.headers)
            else:
                status, headers, body, entry = pipeline.origin_error(state, failure,
                                                                     flow.error.msg)
                answer = http.Response.make(status, body, headers)
            sent = error_response.answer(flow, answer)
        except Exception:
            logger.exception("cf_edge: the origin's failure was not answered: %s",
                             wire_text(flow.request.pretty_url))
            return
        if not sent and flow.live:
            entry["status_out"] = 502
            entry["notes"].append(
                f"Cloudflare answers {status}; mitmproxy sent its own 502 instead, because "
                "it does not let an addon answer a failed exchange on "
                f"{flow.request.http_version} (mitmproxy PR #7999)")
        self._write(entry)
        self._log_answer(entry)
        annotate(flow, entry)
        if self.report is not None:
            self.report.add(entry)

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

    @command.command("cf.cache.stats")
    def stats(self) -> str:
        """The edge cache's statistics as JSON (objects, bytes, capacity, counts)."""
        stats = self.store.stats() if self.store else {"enabled": False}
        return json.dumps(stats)

    def _purged(self, n: int, what: str) -> int:
        logger.info("cf_edge: purged %d object(s) from the edge cache: %s", n, what)
        return n

    # ---- helpers ----

    def _install(self, zone: Zone, path: Path) -> None:
        first = self.zone is None
        self.zone, self.rules_path = zone, path
        self.rules_mtime = _mtime(path)
        count = zone.rule_count
        logger.info("cf_edge: %s %s: plan %s, %d rule(s)", "loaded" if first else "reloaded",
                    path, zone.plan, count)
        if zone.not_emulated:
            logger.info("cf_edge: accepted but not emulated yet: %s", ", ".join(zone.not_emulated))

    def _open_log(self, value: str) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        if not value:
            return
        path = Path(value)
        if path.is_dir():
            raise exceptions.OptionsError(f"cf_log: {value} is a directory; give a file path")
        if not path.parent.is_dir():
            raise exceptions.OptionsError(f"cf_log: directory {path.parent} does not exist")
        try:
            # unbuffered: each record is one write, on disk as it happens
            self.log_file = open(path, "ab", buffering=0)  # noqa: SIM115
        except OSError as e:
            raise exceptions.OptionsError(f"cf_log: cannot open {value}: {e.strerror}") from e

    def _write(self, entry: dict) -> None:
        if self.log_file is not None:
            try:
                line = _JSON.encode(entry) + "\n"
                self.log_file.write(line.encode("utf-8", "backslashreplace"))
            except (OSError, ValueError) as e:
                logger.warning("cf_edge: cannot write %s: %s", ctx.options.cf_log, e)

    def _log(self, entry: dict, plan: pipeline.ResponsePlan) -> None:
        self._write(entry)
        d = plan.decision
        notable = d.changed or plan.not_modified == "edge"
        if self.eventlog == "off" or (not notable and self.eventlog != "all"):
            return  # a log record costs an event-loop round trip in mitmproxy
        cache_status = f" [cf-cache-status {entry['cache_status']}]" if entry["cache_status"] \
            else ""
        logger.info(f"cf_edge: {entry['method']} {entry['url']} {entry['status_out']}: "
                    f"{d.encoding_in} -> {d.encoding_out}, ETag {d.etag_action}: {d.reason}"
                    f"{cache_status}")
        for note in plan.notes:
            logger.info("cf_edge: %s: %s", entry["url"], note)

    async def _watch(self) -> None:
        """Reload the rules file when it changes; a broken edit keeps the previous rules."""
        reported: float | None = None
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            path = self.rules_path
            if path is None:
                continue
            mtime = _mtime(path)
            if mtime is None or mtime == self.rules_mtime or mtime == reported:
                continue
            try:
                zone = load_rules(path)
            except RulesFileError as e:
                reported = mtime
                logger.warning("cf_edge: rules file not reloaded, previous rules stay in "
                               "force:\n%s", e)
                continue
            self._install(zone, path)


def request_facts(flow: http.HTTPFlow) -> Request:
    req = flow.request
    peer = flow.client_conn.peername
    fields = tuple(req.headers.fields)
    return Request(
        method=req.method,
        scheme=req.scheme,
        host=asked_host(flow, fields),
        target=req.data.path.decode("utf-8", "surrogateescape"),
        http_version=req.http_version,
        headers=fields,
        client_ip=peer[0] if peer else "",
    )


def asked_host(flow: http.HTTPFlow, fields: Headers) -> str:
    """The host the visitor asked for. Through a forward proxy (regular or upstream mode)
    that is the request target's authority, which wins over a Host header that says
    otherwise (RFC 9112 3.2.2), and is where mitmproxy sends the request; in the other
    modes it is the Host header (reverse mode keeps it with keep_host_header)."""
    req = flow.request
    if isinstance(flow.client_conn.proxy_mode, FORWARD_MODES) and req.host:
        return url.hostport(req.scheme, req.host, req.port)
    # mitmproxy's host_header, without its lookups
    host = next((v for k, v in fields if k.lower() == b"host"), None) or req.data.authority
    return host.decode("utf-8", "surrogateescape") if host else req.pretty_host


def stored_response(facts: Response, flow: http.HTTPFlow) -> http.Response:
    """A stored object as the mitmproxy response the visitor gets.

    Built without ResponseData's run-time type checks, which cost about as much as the rest
    of a HIT (the values are the right types by construction; mitmproxy is pinned to 12).
    """
    now = time.time()
    version = flow.request.http_version if flow.request.http_version.startswith("HTTP/") \
        else "HTTP/1.1"
    headers = facts.headers
    if version.startswith(("HTTP/2", "HTTP/3")):
        headers = tuple((k.lower(), v) for k, v in headers)  # h2/h3 require lower case
    reason = status_codes.RESPONSES.get(facts.status, "") if version.startswith("HTTP/1") \
        else ""
    data = object.__new__(http.ResponseData)
    data.__dict__.update(http_version=version.encode(), status_code=facts.status,
                         reason=reason.encode(), headers=http.Headers(headers),
                         content=facts.body, trailers=None, timestamp_start=now,
                         timestamp_end=now)
    response = object.__new__(http.Response)
    response.data = data
    return response


def _reason(status: int, resp: http.Response) -> bytes:
    """The reason phrase (HTTP/1 only; HTTP/2 and 3 have none)."""
    if not resp.http_version.startswith("HTTP/1"):
        return b""
    return status_codes.RESPONSES.get(status, "").encode()


def _send_copy(flow: http.HTTPFlow, metadata: dict, edits: list[tuple[bytes, bytes | None]],
               method: str | None = None) -> http.HTTPFlow:
    """The edge's own request to the origin (a background revalidation, a diagnosis probe):
    a copy of the flow with its headers edited, queued on mitmproxy's client replay so that
    TLS and proxy modes apply. `metadata` marks it for the hooks."""
    copy = flow.copy()
    copy.live = False
    copy.response = None
    copy.metadata = metadata
    if method is not None:
        copy.request.method = method
    copy.request.headers.fields = edit_headers(copy.request.headers.fields, edits)
    ctx.master.commands.call("replay.client", [copy])
    return copy


def _size_option(name: str) -> int:
    """A size option in mitmproxy's syntax (512k, 64m, 1g), or a clear OptionsError."""
    value = getattr(ctx.options, name)
    try:
        size = human.parse_size(value)
    except ValueError:
        size = None
    if not size or size <= 0:
        raise exceptions.OptionsError(f"{name}: {value!r} is not a size such as 512k, 64m or 1g")
    return size


@dataclasses.dataclass
class Streaming:
    """A response whose body streams through the edge, from its headers to its end."""

    plan: pipeline.ResponsePlan
    final: egress.Final  # the headers that went out
    served: cache.Served | None
    facts: Response  # the origin's status and headers
    body: Threaded
    why: str  # why it streams
    strip: tuple[bytes, ...]  # headers Cache Response Rules strip before storing


def _length(resp: http.Response) -> int | None:
    value = header(tuple(resp.headers.fields), b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _has_body(flow: http.HTTPFlow) -> bool:
    resp = flow.response
    return (resp is not None and flow.request.method != "HEAD" and resp.status_code >= 200
            and resp.status_code not in (204, 304))


def _unusable(flow: http.HTTPFlow, state: pipeline.RequestState) -> tuple[int, str] | None:
    """A live origin response Cloudflare would have turned into a 52x (facts 14.4): headers
    over its limit (520), or one that came after its read timeout (524). mitmproxy cannot
    answer before the origin does, so a 524 reaches the visitor when the late response
    arrives."""
    resp = flow.response
    assert resp is not None
    if not flow.live:
        return None  # a recording: it holds what happened, whatever its timing says
    if origin_errors.headers_too_large(tuple(resp.headers.fields)):
        return 520, (f"the response headers are larger than the "
                     f"{origin_errors.MAX_RESPONSE_HEADERS // 1024} KB Cloudflare accepts")
    timeout = state.cache.read_timeout or origin_errors.READ_TIMEOUT
    sent = flow.request.timestamp_end or flow.request.timestamp_start
    if resp.timestamp_start and sent and resp.timestamp_start - sent > timeout:
        return 524, (f"the origin took {resp.timestamp_start - sent:.0f} s to answer, more "
                     f"than the {timeout} s read timeout")
    return None


def _seconds_option(name: str) -> float:
    value = getattr(ctx.options, name)
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise exceptions.OptionsError(f"{name}: {value!r} is not a number of seconds "
                                      "between 0 and 3600")
    return seconds


def _now(flow: http.HTTPFlow) -> float:
    """The cache's clock: now, or the time a recorded request was made."""
    return time.time() if flow.live else flow.request.timestamp_start


def response_facts(resp: http.Response) -> Response:
    return Response(
        status=resp.status_code,
        headers=tuple(resp.headers.fields),
        body=resp.raw_content,
        streamed=bool(resp.stream),
    )


def apply_final(flow: http.HTTPFlow, final: egress.Final) -> None:
    """Put what the visitor gets on the flow: the headers in one pass, the body and status
    only where they changed."""
    resp = flow.response
    assert resp is not None
    if resp.stream:
        return  # already sent as it was
    fields = final.headers
    if fields is not resp.headers.fields:
        if resp.is_http2 or resp.is_http3:  # h2/h3 require lower-case names
            fields = tuple((k.lower(), v) for k, v in fields)
        resp.headers.fields = fields
    if final.body is not None and final.body is not resp.raw_content:
        resp.raw_content = final.body
    if final.status != resp.status_code:
        resp.status_code = final.status
        resp.reason = _reason(final.status, resp)


def annotate(flow: http.HTTPFlow, entry: dict, headers_in=()) -> None:
    """The record in flow.metadata (with the headers before the edge, for the content view),
    the flow's comment, and the cloud marker on converted flows."""
    # the record itself, once logged (the header tuple as it is: tnetstring saves tuples)
    entry["handled"] = True
    entry["headers_in"] = headers_in
    flow.metadata[META] = entry
    lines = []
    if entry["changed"]:
        flow.marked = MARKER
        lines.append(f"Cloudflare edge: {entry['reason']}")
    if entry.get("cache_status"):
        by = entry.get("not_modified")
        lines.append(f"cf-cache-status {entry['cache_status']}"
                     + (f", 304 from the {by}" if by else "")
                     + (f", key {entry['cache_key']}" if entry["cache_key"] else "")
                     + f": {entry['cache_reason']}")
    for d in entry.get("diagnoses") or ():
        lines.append(f"origin diagnosis ({d['code']}): {d['message']}. Fix: {d['fix']}")
    if lines:
        flow.comment = "\n".join(lines)


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
