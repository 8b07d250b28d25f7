"""Rocket Loader, facts 3.3.

Every classic script gets `type="<token>-<its type>"`, so the browser does not run it
while parsing, and the loader (served by the edge, see cdn_cgi) runs them in order after
the page has rendered. `data-cfasync="false"` before `src` opts a script out (3.3.2).
The markup is Cloudflare's current one (3.3.3, community-observed); the per-browser
switch-off (3.3.1) is not emulated: every visitor gets the rewritten page.
"""

from __future__ import annotations

import random

from addon.html.engine import Element
from addon.html.engine import Rewriter
from addon.html.feature import FeatureSpec
from addon.html.feature import Script

NAME = "rocket_loader"
LABEL = "Rocket Loader"
LOADER_PATH = "/cdn-cgi/scripts/7d0fa10a/cloudflare-static/rocket-loader.min.js"
# the classic-script types a browser runs; modules, JSON and templates are left alone
JAVASCRIPT_TYPES = {
    "", "text/javascript", "application/javascript", "application/x-javascript",
    "text/ecmascript", "application/ecmascript", "text/jscript", "text/livescript",
}  # fmt: skip


def opted_out(attributes: list[tuple[str, str]]) -> bool:
    """data-cfasync="false", and before src when there is one (3.3.2)."""
    names = [name.lower() for name, _ in attributes]
    if "data-cfasync" not in names:
        return False
    at = names.index("data-cfasync")
    if attributes[at][1].strip().lower() != "false":
        return False
    return "src" not in names or at < names.index("src")


class RocketLoader:
    name, label = NAME, LABEL

    def __init__(self, rng: random.Random) -> None:
        self.token = f"{rng.getrandbits(96):024x}"
        self.scripts = 0
        self.opted_out = 0

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        rw.on_element("script", self._script)

    def counts(self) -> dict[str, int]:
        return {"scripts_deferred": self.scripts, "scripts_opted_out": self.opted_out}

    def _script(self, el: Element) -> None:
        kind = (el.get_attribute("type") or "").strip()
        if kind.split(";")[0].strip().lower() not in JAVASCRIPT_TYPES:
            return
        if opted_out(el.attributes):
            self.opted_out += 1
            return
        self.scripts += 1
        el.set_attribute("type", f"{self.token}-{kind or 'text/javascript'}")

    def end_of_body(self) -> str:
        if not self.scripts:
            return ""
        return (f'<script src="{LOADER_PATH}" data-cf-settings="{self.token}-|49" '
                "defer></script>")


FEATURE = FeatureSpec(
    NAME, LABEL, order=3, build=lambda job, rng: RocketLoader(rng),
    assets=(Script("rocket-loader", "rocket-loader.js"),),
)
