"""A real mitmdump process for the end-to-end tests and `make bench`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from addon.exchange.record import read_log

ROOT = Path(__file__).resolve().parents[2]
MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))
EDGE = str(ROOT / "addon" / "edge.py")


class Mitmdump:
    """mitmdump on 127.0.0.1 with a free port and its own confdir.

    With `rules` (its text, or the path of a zone's file or directory), the addon runs
    with it and a JSON Lines log; without, it is
    bare mitmdump. `reverse_to` puts it in reverse-proxy mode in front of that port;
    `cpus` pins it to those CPUs.
    """

    def __init__(self, tmp: Path, rules: str | Path | None, *extra: str,
                 reverse_to: int | None = None, log: bool = True, cpus: set[int] | None = None):
        tmp.mkdir(parents=True, exist_ok=True)
        self.rules = tmp / "rules.yaml"
        self.log = tmp / "cf.jsonl"
        args = [MITMDUMP, "--listen-host", "127.0.0.1", "-p", "0", "--set", f"confdir={tmp}",
                "--set", "flow_detail=0"]
        if reverse_to is not None:
            args += ["--mode", f"reverse:http://127.0.0.1:{reverse_to}",
                     "--set", "keep_host_header=true"]
        if isinstance(rules, Path):  # a zone as it stands: a file or a directory
            self.rules = rules
        elif rules is not None:
            self.rules.write_text(rules)
        if rules is not None:
            args += ["-s", EDGE, "--set", f"cf_rules={self.rules}"]
            if log:
                args += ["--set", f"cf_log={self.log}"]
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy")}
        self.proc = subprocess.Popen([*args, *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp,
                                     errors="backslashreplace")
        if cpus is not None:
            os.sched_setaffinity(self.proc.pid, cpus)
        self.lines: list[str] = []
        self.port = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait_for(r"listening at 127\.0\.0\.1:(\d+)").group(1))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader thread catch up
                for line in list(self.lines):
                    if m := re.search(pattern, line):
                        return m
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in mitmdump output:\n{''.join(self.lines)}")

    def output(self) -> str:
        return "".join(self.lines)

    def records(self, at_least: int = 0, timeout: float = 10) -> list[dict]:
        """The log's records, once there are at least `at_least` of them (the addon
        flushes its log within half a second of a record)."""
        deadline = time.monotonic() + timeout
        while True:
            found = read_log(self.log)
            if len(found) >= at_least:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} records in {self.log}, not {at_least}")
            time.sleep(0.05)

    def wait_records(self, match, timeout: float = 10, since: float = 0.0) -> dict:
        """The newest log record made at `since` or later for which match(record) is
        true, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if r.get("ts", 0) >= since and match(r)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching record in {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> Mitmdump:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate, and kill what does not stop within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
