"""Automatic HTTPS Rewrites, facts 3.2.

`http://` URLs in the page become `https://` when the host is known to serve HTTPS.
Cloudflare knows that from the HTTPS Everywhere rulesets and Chrome's HSTS preload list
(3.2.2); here the rules file's `https_hosts` says it (default: the zone's own host, the
request's). Active content (scripts, frames, stylesheets, objects) is also upgraded for
`localhost` (3.2.3); passive content (images, media) and links only for known hosts. The
attribute list is not documented: this one is modelled (3.2.5).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from addon.html.engine import Element
from addon.html.engine import Rewriter
from addon.html.feature import DOCUMENTED
from addon.html.feature import FeatureSpec

NAME = "automatic_https_rewrites"
LABEL = "Automatic HTTPS Rewrites"
ACTIVE = {"script": ("src",), "iframe": ("src",), "frame": ("src",), "link": ("href",),
          "object": ("data",), "embed": ("src",)}  # fmt: skip
PASSIVE = {"img": ("src", "srcset"), "source": ("src", "srcset"), "video": ("src", "poster"),
           "audio": ("src",), "track": ("src",), "input": ("src",)}  # fmt: skip
LINKS = {"a": ("href",), "area": ("href",), "form": ("action",)}


def host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    """`example.com` matches itself; `*.example.com` matches its subdomains."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


class HttpsRewrites:
    name, label = NAME, LABEL

    def __init__(self, https_hosts: tuple[str, ...], page_host: str = "") -> None:
        self.https_hosts = tuple(h.lower() for h in https_hosts)
        self.page_host = page_host.lower()
        self.urls = 0
        self.own_host = 0  # of those, links to the page's own host

    def install(self, rw: Rewriter, page: bytes | None) -> None:
        # Attribute selectors are case-sensitive in lol-html: these three spellings cover
        # what pages use; only elements that carry an http:// URL call into Python.
        for kind, table in (("active", ACTIVE), ("passive", PASSIVE), ("link", LINKS)):
            for tag, attributes in table.items():
                for attribute in attributes:
                    handler = self._handler(attribute, kind)
                    op = "*=" if attribute == "srcset" else "^="
                    for scheme in ("http://", "HTTP://", "Http://"):
                        rw.on_element(f'{tag}[{attribute}{op}"{scheme}"]', handler)

    def counts(self) -> dict[str, int]:
        return {"urls": self.urls, "own_host": self.own_host}

    def end_of_body(self) -> str:
        return ""  # it only changes attributes

    def _handler(self, attribute: str, kind: str):
        def handle(el: Element) -> None:
            value = el.get_attribute(attribute)
            if not value or "http://" not in value.lower():
                return
            new = (self._srcset(value, kind) if attribute == "srcset"
                   else self._url(value, kind))
            if new != value:
                el.set_attribute(attribute, new)

        return handle

    def _url(self, value: str, kind: str) -> str:
        stripped = value.strip()
        if stripped[:7].lower() != "http://":
            return value
        try:
            host = (urlsplit(stripped).hostname or "").lower()
        except ValueError:
            return value
        known = host_matches(host, self.https_hosts)
        if not (known or (kind == "active" and is_localhost(host))):
            return value
        self.urls += 1
        self.own_host += host == self.page_host
        start = value.index(stripped[:7])
        return value[:start] + "https://" + value[start + 7:]

    def _srcset(self, value: str, kind: str) -> str:
        parts = value.split(",")
        out = []
        for part in parts:
            lead = part[: len(part) - len(part.lstrip())]
            words = part.lstrip().split(" ", 1)
            words[0] = self._url(words[0], kind)
            out.append(lead + " ".join(words))
        return ",".join(out)


FEATURE = FeatureSpec(
    NAME, LABEL, order=2, build=lambda job, rng: HttpsRewrites(job.https_hosts, job.page_host),
    default=True, etag_removal=DOCUMENTED,
)
