"""Mirage (deprecated September 2025; a legacy toggle, off unless set), facts 3.4.

Images are hidden behind `data-cfsrc` with a `<noscript>` fallback (3.4.3, community-
observed markup), and a script served by the edge (see cdn_cgi) loads them. Pro plans
and above only (3.4.2).
"""

from __future__ import annotations

import html

from addon.html.engine import HTML
from addon.html.engine import Element
from addon.html.engine import Rewriter
from addon.html.feature import FeatureSpec
from addon.html.feature import Script

NAME = "mirage"
LABEL = "Mirage"
SCRIPT_PATH = "/cdn-cgi/scripts/04b3eb47/cloudflare-static/mirage2.min.js"
HIDDEN = "display:none;visibility:hidden;"


class Mirage:
    name, label = NAME, LABEL

    def __init__(self) -> None:
        self.images = 0

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        rw.on_element("img[src]", self._image)

    def counts(self) -> dict[str, int]:
        return {"images": self.images}

    def _image(self, el: Element) -> None:
        src = el.get_attribute("src") or ""
        if not src or el.get_attribute("data-cfsrc") is not None:
            return
        self.images += 1
        el.set_attribute("data-cfsrc", src)
        el.remove_attribute("src")
        el.set_attribute("style", HIDDEN + (el.get_attribute("style") or ""))
        el.after(f'<noscript><img src="{html.escape(html.unescape(src))}"></noscript>', HTML)

    def end_of_body(self) -> str:
        if not self.images:
            return ""
        return f'<script data-cfasync="false" src="{SCRIPT_PATH}"></script>'


FEATURE = FeatureSpec(
    NAME, LABEL, order=4, build=lambda job, rng: Mirage(),
    plans=("pro", "business", "enterprise"),  # facts 3.4.2
    assets=(Script("mirage2", "mirage.js"),),
)
