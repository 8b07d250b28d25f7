"""A zone as Cloudflare's API returns it (tests/data/cloudflare/api: the zone, its settings
and four phase entrypoints, plus a rules.yaml) given to mitmdump as a directory: what the
edge then does, through a real mitmdump in front of a real loopback origin."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.http import codings
from tests.support.loopback import Client
from tests.support.loopback import Origin
from tests.support.loopback import Route
from tests.support.loopback import response
from tests.support.loopback import run
from tests.support.mitm import EDGE
from tests.support.mitm import MITMDUMP
from tests.support.mitm import ROOT
from tests.support.mitm import Mitmdump

API = Path(__file__).resolve().parents[1] / "data" / "cloudflare" / "api"
TERRAFORM = API.parent / "terraform"
CSS = b"body { color: #333; margin: 0 auto; padding: 1em; }\n" * 40
JS = b"function hello() { return 'hello, world'; }\n" * 40
PAGE = b"<html><body><p>Write to team@example.com</p>" + b"<p>filler text</p>" * 40 + \
    b"</body></html>"
BOTH = [(b"Accept-Encoding", b"gzip, br")]


def _origin() -> Origin:
    return Origin({
        b"/style.css": Route(response(200, [(b"Content-Type", b"text/css"),
                                            (b"ETag", b'"css1"')], CSS)),
        b"/legacy/style.css": Route(response(200, [(b"Content-Type", b"text/css")], CSS)),
        b"/app.js": Route(response(200, [(b"Content-Type", b"text/javascript"),
                                         (b"ETag", b'"js1"')], JS)),
        b"/static/app.js": Route(response(200, [(b"Content-Type", b"text/javascript"),
                                                (b"Content-Encoding", b"gzip"),
                                                (b"ETag", b'"s1"')], gzip.compress(JS))),
        b"/page": Route(response(200, [(b"Content-Type", b"text/html; charset=utf-8"),
                                       (b"ETag", b'"p1"')], PAGE)),
        b"/search": lambda target, head: Route(response(
            200, [(b"Content-Type", b"text/plain")], b"results for " + target)),
    })


def _get(port: int, target: bytes, headers=BOTH):
    async def go():
        c = await Client.connect(port)
        try:
            return await c.get(target, headers)
        finally:
            await c.close()
    return run(go())


def _imported(tmp_path: Path) -> Path:
    """The same zone through `python -m addon import`, as a rules.yaml."""
    out = tmp_path / "imported.yaml"
    done = subprocess.run([sys.executable, "-m", "addon", "import", str(API), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("form", ["directory", "imported", "terraform-v4", "terraform-v5"])
def test_the_zone_from_the_api_decides_what_the_edge_does(tmp_path, form):
    zone = {"directory": API, "terraform-v4": TERRAFORM / "v4" / "main.tf",
            "terraform-v5": TERRAFORM / "v5"}.get(form) or _imported(tmp_path)
    origin = _origin()
    try:
        with Mitmdump(tmp_path / "proxy", zone, reverse_to=origin.port) as m:
            out = m.output()
            assert ("plan pro" if form == "terraform-v5" else "plan business") in out
            if form == "directory":  # reported at startup (as comments in the imported file)
                assert "phase http_response_compression" in out
                assert "redirects_for_ai_training" in out and "min_tls_version" in out

            # the compression rule of the entrypoint decides the coding: gzip, not Brotli
            css = _get(m.port, b"/style.css")
            assert css.header(b"content-encoding") == b"gzip"
            assert codings.decode(css.body, "gzip") == CSS
            # the settings list turned Brotli off: the plan's order without br
            js = _get(m.port, b"/app.js")
            assert js.header(b"content-encoding") == b"gzip" and js.header(b"etag") == b'W/"js1"'
            # ... and Email Obfuscation and Automatic HTTPS Rewrites: the page keeps its
            # address and a (weakened) ETag
            page = _get(m.port, b"/page")
            assert b"team@example.com" in codings.decode(page.body, "gzip")
            assert page.header(b"etag") == b'W/"p1"'
            # the cache rule with Respect Strong ETags keeps the origin's gzip and strong ETag
            static = _get(m.port, b"/static/app.js")
            assert static.header(b"content-encoding") == b"gzip"
            assert static.header(b"etag") == b'"s1"'
            # exclude: "*" in the cache key: URLs that differ only in their query are one
            first = _get(m.port, b"/search?q=one")
            second = _get(m.port, b"/search?q=two")
            assert first.header(b"cf-cache-status") == b"MISS"
            assert second.header(b"cf-cache-status") == b"HIT"
            assert second.body == first.body == b"results for /search?q=one"
            if form in ("directory", "imported"):  # a Page Rule: */legacy/* bypasses
                legacy = _get(m.port, b"/legacy/style.css")
                assert legacy.header(b"cf-cache-status") == b"DYNAMIC"
            records = m.records(at_least=6)
            css_record = next(r for r in records if r["url"].endswith("/style.css"))
            assert 'compression_rules[1] "Stylesheets: gzip only"' in css_record["rules"]
    finally:
        origin.stop()


def test_a_changed_file_of_the_directory_is_reloaded(tmp_path):
    zone = tmp_path / "zone"
    shutil.copytree(API, zone)
    origin = _origin()
    try:
        with Mitmdump(tmp_path / "proxy", zone, reverse_to=origin.port) as m:
            assert _get(m.port, b"/app.js").header(b"content-encoding") == b"gzip"
            settings = json.loads((zone / "settings.json").read_text())
            for s in settings["result"]:
                if s["id"] == "brotli":
                    s["value"] = "on"
            (zone / "settings.json").write_text(json.dumps(settings))
            os.utime(zone / "settings.json", (time.time() + 5, time.time() + 5))
            m.wait_for(r"reloaded .*zone: plan business")
            assert _get(m.port, b"/app.js").header(b"content-encoding") == b"br"
            # a broken edit is reported and the zone stays as it was
            (zone / "http_response_compression.json").write_text('{"result": {"phase": ')
            m.wait_for(r"http_response_compression.json:1:\d+: invalid JSON")
            assert _get(m.port, b"/style.css").header(b"content-encoding") == b"gzip"
    finally:
        origin.stop()


def test_bad_input_stops_mitmdump_with_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"result": {\n  "phase": "http_request_cache_settings",\n'
                   '  "rules": [{"expression": "true", "action_parameters": '
                   '{"cache": "sometimes"}}]}}')
    out = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={bad}"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr
    assert f"{bad}:3:" in out.stdout and "cache_rules[1].action_parameters.cache: must be " \
        "on/off or true/false, not 'sometimes'" in out.stdout


def test_an_hcl_syntax_error_stops_mitmdump_with_the_file_and_line(tmp_path):
    bad = tmp_path / "main.tf"
    bad.write_text('resource "cloudflare_ruleset" "x" {\n  phase = "http_config_settings"\n'
                   '  rules = [{\n    expression = \n  }]\n}\n')
    out = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={bad}"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr
    assert f"cf_rules: {bad}:4:" in out.stdout and "invalid HCL" in out.stdout


def test_a_json_that_is_not_a_cloudflare_response_stops_mitmdump(tmp_path):
    bad = tmp_path / "package.json"
    bad.write_text('{\n  "name": "my-site",\n  "version": "1.0.0"\n}\n')
    out = subprocess.run([MITMDUMP, "-n", "--set", f"confdir={tmp_path}", "-s", EDGE,
                          "--set", f"cf_rules={tmp_path}"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr
    assert f"cf_rules: {bad}:1:1: not a shape this tool reads" in out.stdout
