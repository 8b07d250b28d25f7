"""Email Address Obfuscation (Scrape Shield), facts 3.1.

Addresses in text become Cloudflare's `__cf_email__` markup and `mailto:` links point at
/cdn-cgi/l/email-protection; the decoder script (served by the edge, see cdn_cgi) turns
them back in the browser. Skipped where Cloudflare skips (3.1.3): attributes other than
`a href`, `<script>`, `<noscript>`, `<textarea>`, `<xmp>`, `<head>`, and between
`<!--email_off-->` and `<!--/email_off-->`.
"""

from __future__ import annotations

import html
import random
import re

from addon.html.engine import HTML
from addon.html.engine import Element
from addon.html.engine import Rewriter
from addon.html.feature import DOCUMENTED
from addon.html.feature import HTML_TYPES
from addon.html.feature import FeatureSpec
from addon.html.feature import Page
from addon.html.feature import Script

NAME = "email_obfuscation"
LABEL = "Email Obfuscation"
DECODER_PATH = "/cdn-cgi/scripts/5c5dd728/cloudflare-static/email-decode.min.js"
PROTECTION_PATH = "/cdn-cgi/l/email-protection"
DECODER_TAG = f'<script data-cfasync="false" src="{DECODER_PATH}"></script>'
SHOWN = "[email&#160;protected]"
SKIP = "head, script, noscript, textarea, xmp"  # facts 3.1.3
# Cloudflare's pattern is not published; this one takes what people report it takes,
# `rabbit@node.name.com` included (facts 3.1.10). Modelled.
ADDRESS = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)

CANDIDATE = re.compile(rb"[A-Za-z0-9._%+-]@[A-Za-z0-9-]")


def encode(address: str, key: int) -> str:
    """data-cfemail: the key byte, then each UTF-8 byte XOR the key, all as hex (3.1.6)."""
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in address.encode("utf-8"))


def decode(hex_text: str) -> str:
    data = bytes.fromhex(hex_text)
    return bytes(b ^ data[0] for b in data[1:]).decode("utf-8")


class EmailObfuscation:
    name, label = NAME, LABEL

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.off = False  # inside <!--email_off--> ... <!--/email_off-->
        self.addresses = 0
        self.links = 0
        self.decoder_placed = False

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        # Looking at text costs a Python call per text node: only when an address may be
        # there (the prescan is a superset of what _text matches); a page that is streamed
        # (None) is not known in advance
        rw.on_comment(self._comment)
        if page is None or CANDIDATE.search(page):
            rw.mark_text_inside(SKIP, "eo-skip")
            rw.mark_text_inside("a", "eo-link")
            rw.on_text(self._text, skip="eo-skip")
        for prefix in ("mailto:", "MAILTO:", "Mailto:"):  # selectors are case-sensitive
            rw.on_element(f'a[href^="{prefix}"]', self._link)
        rw.on_element("script", self._script)

    def counts(self) -> dict[str, int]:
        return {"addresses": self.addresses, "mailto_links": self.links}

    def _key(self) -> int:
        return self.rng.randrange(256)

    def _comment(self, text: str) -> None:
        marker = text.strip().lower()
        if marker == "email_off":
            self.off = True
        elif marker == "/email_off":
            self.off = False

    def _text(self, source: str, marks: set[str]) -> str | None:
        if "@" not in source or self.off or "eo-skip" in marks:
            return None
        in_link = "eo-link" in marks

        def obfuscate(m: re.Match) -> str:
            self.addresses += 1
            data = encode(m.group(0), self._key())
            if in_link:  # a link inside a link is not HTML: the text becomes a span (3.1.5)
                return f'<span class="__cf_email__" data-cfemail="{data}">{SHOWN}</span>'
            return (f'<a href="{PROTECTION_PATH}" class="__cf_email__" '
                    f'data-cfemail="{data}">{SHOWN}</a>')

        rewritten = ADDRESS.sub(obfuscate, source)
        return rewritten if rewritten != source else None

    def _link(self, el: Element) -> None:
        if self.off:
            return
        href = (el.get_attribute("href") or "").strip()
        target = html.unescape(href[7:])
        if not target:
            return
        self.links += 1
        el.set_attribute("href", f"{PROTECTION_PATH}#{encode(target, self._key())}")

    def _script(self, el: Element) -> None:
        # the decoder goes before the first script after the first obfuscated address
        # (facts 3.1.7, 3.1.8), else before </body>
        if self.addresses + self.links and not self.decoder_placed:
            el.before(DECODER_TAG, HTML)
            self.decoder_placed = True

    def end_of_body(self) -> str:
        if self.addresses + self.links and not self.decoder_placed:
            self.decoder_placed = True
            return DECODER_TAG
        return ""


FEATURE = FeatureSpec(
    NAME, LABEL, order=1, build=lambda job, rng: EmailObfuscation(rng),
    media_types=HTML_TYPES, default=True, etag_removal=DOCUMENTED,
    assets=(Script("email-decode", "email-decode.js"),
            Page(PROTECTION_PATH, "email-protection.html")),
)
