"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`):
no websocket, no extra package. The tests see what the browser's own network stack sent and
got (request headers including the validators it added, the raw status of a revalidation).

Chromium reads NUL-terminated JSON messages on fd 3 and writes them on fd 4.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
         "--remote-debugging-pipe")  # fmt: skip


@dataclass
class Exchange:
    """One request as the browser's network stack saw it."""

    url: str
    request_headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    status: int | None = None  # the status on the wire (304 for a revalidation)
    response_headers: dict[str, str] = field(default_factory=dict)


class Chromium:
    def __init__(self, *extra: str) -> None:
        assert CHROMIUM, "headless Chromium is needed: `make test` installs it (apt-get)"
        self.profile = tempfile.mkdtemp(prefix="cf-edge-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # in the child: the protocol's fds 3 and 4
            # The pipes may themselves be fds 3 and 4 (outside pytest nothing else holds
            # them), where dup2 onto the same number keeps close-on-exec: copy them above
            # first, then dup2 makes inheritable 3 and 4.
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.close(r)
            os.close(w)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", *extra, "about:blank"],
            preexec_fn=fds, close_fds=False,  # the fds 3 and 4 made in fds() must stay
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    # ---- the protocol ----

    def call(self, method: str, session: bool = False, timeout: float = 30,
             **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the protocol pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method: str, since: int, timeout: float = 30) -> dict[str, Any]:
        """The first event `method` at or after index `since` of self.events."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.events):
                if self.events[i].get("method") == method:
                    return self.events[i]
                i += 1
            reply = self._read(deadline)
            if "method" in reply:
                self.events.append(reply)

    # ---- what the tests use ----

    def load(self, url: str | None = None) -> int:
        """Navigate to `url`, or reload without one; wait for the load event and for the
        requests it started to finish. Returns the index of its first event."""
        since = len(self.events)
        if url is None:
            self.call("Page.reload", session=True)
        else:
            self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired", since)
        self._settle(since)
        return since

    def _settle(self, since: int, timeout: float = 30) -> None:
        """Until every request started since `since` has finished or failed, including
        those that scripts start after the load event."""
        deadline = time.monotonic() + timeout
        while True:
            started, done = set(), set()
            for event in self.events[since:]:
                method, rid = event.get("method"), event.get("params", {}).get("requestId")
                if method == "Network.requestWillBeSent":
                    started.add(rid)
                elif method in ("Network.loadingFinished", "Network.loadingFailed"):
                    done.add(rid)
            if started <= done:
                # one round trip more: a script may start a request right after load
                self.call("Runtime.evaluate", session=True, expression="1")
                if len([e for e in self.events[since:]
                        if e.get("method") == "Network.requestWillBeSent"]) == len(started):
                    return
                continue
            reply = self._read(deadline)
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    def exchanges(self, since: int = 0) -> list[Exchange]:
        """The requests of the events from `since` on, in order, as they went on the wire."""
        by_id: dict[str, Exchange] = {}
        for event in self.events[since:]:
            method, params = event.get("method"), event.get("params", {})
            rid = params.get("requestId")
            if method == "Network.requestWillBeSent":
                by_id.setdefault(rid, Exchange("")).url = params["request"]["url"]
            elif method == "Network.requestWillBeSentExtraInfo":
                by_id.setdefault(rid, Exchange("")).request_headers = {
                    k.lower(): v for k, v in params["headers"].items()}
            elif method == "Network.responseReceivedExtraInfo":
                ex = by_id.setdefault(rid, Exchange(""))
                ex.status = params["statusCode"]
                ex.response_headers = {k.lower(): v for k, v in params["headers"].items()}
        return list(by_id.values())

    def har(self, since: int = 0) -> dict[str, Any]:
        """A HAR of the requests since `since`, built as DevTools' "Save all as HAR" builds
        it: the headers as they went on the wire (Content-Encoding included), the body as
        the browser decoded it (Network.getResponseBody)."""
        entries: dict[str, dict[str, Any]] = {}
        for event in self.events[since:]:
            method, params = event.get("method"), event.get("params", {})
            rid = params.get("requestId")
            if method == "Network.requestWillBeSent":
                request = params["request"]
                started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(params["wallTime"]))
                entries[rid] = {
                    "startedDateTime": f"{started}.{int(params['wallTime'] % 1 * 1000):03d}Z",
                    "time": 1, "request": {"method": request["method"], "url": request["url"],
                                           "httpVersion": "HTTP/1.1", "headers": [],
                                           "queryString": [], "cookies": [],
                                           "headersSize": -1, "bodySize": 0},
                    "response": {"status": 0, "statusText": "", "httpVersion": "HTTP/1.1",
                                 "headers": [], "cookies": [], "redirectURL": "",
                                 "headersSize": -1, "bodySize": -1,
                                 "content": {"size": 0, "mimeType": ""}},
                    "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
            elif rid in entries and method == "Network.requestServedFromCache":
                entries[rid]["_fromCache"] = "memory"  # as DevTools marks it
            elif rid in entries and method == "Network.requestWillBeSentExtraInfo":
                entries[rid]["request"]["headers"] = _har_headers(params["headers"])
            elif rid in entries and method == "Network.responseReceivedExtraInfo":
                response = entries[rid]["response"]
                response["status"] = params["statusCode"]
                response["headers"] = _har_headers(params["headers"])
            elif rid in entries and method == "Network.responseReceived":
                entries[rid]["response"]["content"]["mimeType"] = params["response"]["mimeType"]
        for rid, entry in entries.items():
            if entry["response"]["status"] in (0, 204, 304):
                continue
            with contextlib.suppress(RuntimeError, KeyError):  # no body kept for it
                body = self.call("Network.getResponseBody", session=True, requestId=rid)
                content = entry["response"]["content"]
                content["text"] = body["body"]
                if body.get("base64Encoded"):
                    content["encoding"] = "base64"
        return {"log": {"version": "1.2", "creator": {"name": "tests/support/chromium.py",
                                                      "version": "1"},
                        "entries": [e for e in entries.values() if e["response"]["status"]]}}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def _har_headers(headers: dict[str, str]) -> list[dict[str, str]]:
    """DevTools joins repeated headers with newlines; a HAR lists them one by one."""
    return [{"name": k, "value": v} for k, values in headers.items() for v in values.split("\n")]
