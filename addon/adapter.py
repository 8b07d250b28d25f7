"""The thin mitmproxy adapter: read facts off a flow, ask the pipeline, apply the plan.

Compute first, change the flow last: if anything fails, the response goes out untouched
and the reason is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import IO

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

from addon import pipeline
from addon.facts import RequestFacts
from addon.facts import ResponseFacts
from addon.rulesfile import RulesFileError
from addon.rulesfile import load_rules
from addon.zone import Zone

logger = logging.getLogger("cf_edge")

DEFAULT_RULES = "rules.yaml"
BUNDLED_RULES = Path(__file__).resolve().parent.parent / "rules.yaml"
MARKER = ":cloud:"
META = "cf_edge"
RELOAD_INTERVAL = 1.0


class CloudflareEdge:
    def __init__(self) -> None:
        self.zone: Zone | None = None
        self.rules_path: Path | None = None
        self.rules_mtime: float | None = None
        self.log_file: IO[str] | None = None
        self.states: dict[str, pipeline.RequestState] = {}
        self.watcher: asyncio.Task | None = None

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

    def running(self) -> None:
        typos = sorted(k for k in ctx.options.deferred if k.startswith("cf_"))
        if typos:
            logger.warning("unknown option(s) ignored: %s (known: cf_rules, cf_log)",
                           ", ".join(typos))
        if self.watcher is None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing to watch
                self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    # ---- HTTP hooks ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # The visitor's headers, before anticomp/anticache change them in `request`.
        if self.zone is None:
            return
        try:
            facts = request_facts(flow)
            state = pipeline.on_request(self.zone, facts)
        except Exception:
            logger.exception("cf_edge: request left unchanged after an internal error: %s",
                             flow.request.pretty_url)
            return
        self.states[flow.id] = state
        if flow.live:  # a recorded request was already sent; do not rewrite history
            if state.origin_accept_encoding is None:
                flow.request.headers.pop("accept-encoding", None)
            else:
                flow.request.headers["accept-encoding"] = state.origin_accept_encoding

    async def response(self, flow: http.HTTPFlow) -> None:
        state = self.states.pop(flow.id, None)
        zone = self.zone
        if state is None or zone is None or flow.response is None:
            return
        if flow.metadata.get(META, {}).get("handled"):
            logger.debug("cf_edge: %s already handled in an earlier run", flow.request.pretty_url)
            return
        url = flow.request.pretty_url
        try:
            facts = response_facts(flow.response)
            plan = await asyncio.to_thread(pipeline.on_response, zone, state, facts)
            entry = pipeline.record(state, facts, plan, url)
        except Exception as e:
            logger.warning("cf_edge: %s passed through untouched after an internal error: %r",
                           url, e, exc_info=True)
            return
        apply_plan(flow, plan)  # everything computed: only now touch the flow
        annotate(flow, plan, entry)
        self._log(entry, plan)

    def error(self, flow: http.HTTPFlow) -> None:
        self.states.pop(flow.id, None)

    # ---- helpers ----

    def _install(self, zone: Zone, path: Path) -> None:
        first = self.zone is None
        self.zone, self.rules_path = zone, path
        self.rules_mtime = _mtime(path)
        count = len(zone.configuration_rules) + len(zone.cache_rules) + len(zone.compression_rules)
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
            self.log_file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as e:
            raise exceptions.OptionsError(f"cf_log: cannot open {value}: {e.strerror}") from e

    def _log(self, entry: dict, plan: pipeline.ResponsePlan) -> None:
        if self.log_file is not None:
            try:
                self.log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            except OSError as e:
                logger.warning("cf_edge: cannot write %s: %s", ctx.options.cf_log, e)
        d = plan.decision
        line = (f"cf_edge: {entry['method']} {entry['url']} {entry['status']}: "
                f"{d.encoding_in} -> {d.encoding_out}, ETag {d.etag_action}: {d.reason}")
        (logger.info if d.changed else logger.debug)(line)
        for note in plan.notes:
            logger.debug("cf_edge: %s: %s", entry["url"], note)

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


def request_facts(flow: http.HTTPFlow) -> RequestFacts:
    req = flow.request
    peer = flow.client_conn.peername
    return RequestFacts(
        method=req.method,
        scheme=req.scheme,
        host=req.host_header or req.pretty_host,
        target=req.data.path.decode("utf-8", "surrogateescape"),
        http_version=req.http_version,
        headers=tuple(req.headers.fields),
        client_ip=peer[0] if peer else "",
    )


def response_facts(resp: http.Response) -> ResponseFacts:
    return ResponseFacts(
        status=resp.status_code,
        headers=tuple(resp.headers.fields),
        body=resp.raw_content,
        streamed=bool(resp.stream),
    )


def apply_plan(flow: http.HTTPFlow, plan: pipeline.ResponsePlan) -> None:
    resp = flow.response
    assert resp is not None
    if plan.body is None:
        return
    resp.raw_content = plan.body
    for name, value in plan.headers.items():
        if value is None:
            resp.headers.pop(name, None)
        else:
            resp.headers[name] = value
    if plan.drop_content_length:
        if resp.http_version == "HTTP/1.0":  # no chunked coding in HTTP/1.0
            resp.headers["content-length"] = str(len(plan.body))
        else:
            resp.headers.pop("content-length", None)
            if resp.http_version == "HTTP/1.1" and "chunked" not in resp.headers.get(
                "transfer-encoding", ""
            ):
                resp.headers["transfer-encoding"] = "chunked"


def annotate(flow: http.HTTPFlow, plan: pipeline.ResponsePlan, entry: dict) -> None:
    flow.metadata[META] = {**entry, "handled": True}
    if plan.decision.changed:
        flow.marked = MARKER
        flow.comment = f"Cloudflare edge: {plan.decision.reason}"


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
