"""Adding an HTML feature touches its own module, its assets and its tests only: a feature
dropped into a copy of the package is a zone setting, a configuration-rule parameter,
switched off by Respect Strong ETags, run over pages, logged, and its script served at
/cdn-cgi/, with no other file changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FEATURE = '''"""Marks every paragraph (a feature made up for the registry test)."""

from addon.html.engine import Element
from addon.html.engine import Rewriter
from addon.html.feature import FeatureSpec
from addon.html.feature import Script


class Marker:
    name, label = "paragraph_marker", "Paragraph Marker"

    def __init__(self) -> None:
        self.paragraphs = 0

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        rw.on_element("p", self._mark)

    def counts(self) -> dict[str, int]:
        return {"paragraphs": self.paragraphs}

    def _mark(self, el: Element) -> None:
        self.paragraphs += 1
        el.set_attribute("data-marked", "1")

    def end_of_body(self) -> str:
        return '<script src="/cdn-cgi/scripts/1/cloudflare-static/marker.min.js"></script>'


FEATURE = FeatureSpec("paragraph_marker", "Paragraph Marker", order=9,
                      build=lambda job, rng: Marker(),
                      assets=(Script("marker", "marker.js"),))
'''

CHECK = '''
import json
from addon.config.loader import parse_rules
from addon.exchange import EdgeContext, run
from addon.html import cdn_cgi
from addon.http.messages import Request, Response

zone = parse_rules("""plan: pro
settings: {paragraph_marker: on, email_obfuscation: off, automatic_https_rewrites: off}
configuration_rules:
  - expression: starts_with(http.request.uri.path, "/off/")
    action_parameters: {paragraph_marker: off}
cache_rules:
  - expression: starts_with(http.request.uri.path, "/strong/")
    action_parameters: {respect_strong_etags: true}
""")
page = Response(200, ((b"Content-Type", b"text/html"), (b"ETag", b'"p1"')),
                b"<html><body><p>one</p><p>two</p></body></html>")
out = {}
for path in ("/page", "/off/page", "/strong/page"):
    request = Request(target=path, headers=((b"Accept-Encoding", b"identity"),))
    done = run(EdgeContext(zone), request, lambda sent: page, 0.0)
    out[path] = {"record": done.record.as_dict(), "body": (done.final.body or b"").decode()}
status, headers, body, what = cdn_cgi.answer("/cdn-cgi/scripts/9f/cloudflare-static/marker.min.js")
out["asset"] = [status, body.decode()]
print(json.dumps(out))
'''


def test_a_feature_is_its_module_and_its_asset(tmp_path):
    shutil.copytree(ROOT / "addon", tmp_path / "addon",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "addon/html/features/paragraph_marker.py").write_text(FEATURE)
    (tmp_path / "addon/html/assets/marker.js").write_text("/* marker */\n")
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    on = out["/page"]
    assert on["body"].count('data-marked="1"') == 2 and "marker.min.js" in on["body"]
    assert on["record"]["action"] == "rewrite" and on["record"]["etag_out"] is None
    assert on["record"]["features"] == {"paragraph_marker": {"paragraphs": 2}}
    assert "modelled" in on["record"]["reason"]  # its ETag removal is not documented
    for path in ("/off/page", "/strong/page"):  # a configuration rule, Respect Strong ETags
        assert "data-marked" not in out[path]["body"], path
        assert out[path]["record"]["etag_out"] == '"p1"', path
    assert out["asset"] == [200, "/* marker */\n"]
