"""Origin diagnosis: what an origin does that loses its 304s behind Cloudflare, and what to
change. Browsers behind Cloudflare send back the weakened `W/"..."` (facts 2.1, 2.4).

Pure: facts in, findings out. The one check that needs memory across responses (the same
strong ETag on different encodings) keeps a bounded map per URL.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from functools import lru_cache

from addon.http.conditional import if_none_match
from addon.http.conditional import parse_http_date
from addon.http.etag import parse_etag
from addon.http.headers import header_index
from addon.http.headers import header_values
from addon.http.headers import wire_text
from addon.http.messages import Request
from addon.http.messages import Response

REMEMBERED_URLS = 10_000  # the encodings check looks this far back
Index = dict[bytes, list[bytes]]  # facts.header_index: lower-case name -> values


def _joined(index: Index, name: bytes) -> bytes | None:
    values = index.get(name)
    return b", ".join(values) if values else None


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    fix: str

    @cached_property  # shared by the records of a repeated finding, which only serialize it
    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


# Apache's mod_deflate and mod_brotli append -gzip / -br to the ETag of what they compress
# (DeflateAlterETag / BrotliAlterETag AddSuffix, the default)
_APACHE_SUFFIX = re.compile(rb'^(?:W/)?"[^"]*-(gzip|br)"$')


def apache_etag_suffix(response: Index) -> Finding | None:
    """An ETag with Apache's -gzip or -br suffix on a compressed response: Apache then
    answers neither that tag nor its weakened form with 304 (its Bugzilla 45023, 39727)."""
    values = response.get(b"etag")
    codings = response.get(b"content-encoding")
    if not values or not codings or len(values) != 1:
        return None
    return _apache_etag_suffix(values[0])


@lru_cache(maxsize=1024)
def _apache_etag_suffix(value: bytes) -> Finding | None:
    m = _APACHE_SUFFIX.match(value.strip())
    if m is None:
        return None
    module, directive = ((b"mod_deflate", "DeflateAlterETag") if m.group(1) == b"gzip"
                         else (b"mod_brotli", "BrotliAlterETag"))
    return Finding(
        "apache-etag-suffix",
        f"the ETag {wire_text(value)} carries Apache's -{m.group(1).decode()} suffix "
        f"({module.decode()}'s {directive} AddSuffix, the default): Apache compares a "
        "browser's If-None-Match with the ETag before the suffix, so it answers neither "
        f"{wire_text(value)} nor the W/ form a browser behind Cloudflare sends with 304, and "
        "every revalidation costs a full body",
        f"set `{directive} NoChange` (Apache 2.4.58 and later; in the server or virtual host "
        f"configuration, not .htaccess), or `{directive} Remove`; comparing weakly in the "
        "application does not help, because Apache's own check refuses the tag")


def weak_if_none_match_ignored(request: Index, response: Index, status: int
                               ) -> Finding | None:
    """The origin answered a weak If-None-Match that matches its current ETag with 200."""
    inm = _joined(request, b"if-none-match")
    if inm is None or b"W/" not in inm or status != 200 or b"etag" not in response:
        return None
    etag = parse_etag(response[b"etag"])
    if etag is None or etag.kind == "malformed" or not if_none_match(inm, etag.raw):
        return None
    suffix = apache_etag_suffix(response)
    if suffix is not None:  # the real cause, and a fix that works
        return suffix
    return Finding(
        "weak-if-none-match-ignored",
        f"the origin answered If-None-Match {wire_text(inm)} with 200, although its ETag is "
        f"{wire_text(etag.raw)}: it compares entity tags strongly, so every revalidation of a "
        "browser behind Cloudflare (which sends the weakened W/ tag back) costs a full body",
        "compare If-None-Match with the weak comparison (RFC 9110 13.1.2: ignore the W/ "
        "prefix on both sides); most frameworks do once their ETag check is not a plain "
        "string equality")


def weak_if_match(request: Index) -> Finding | None:
    value = _joined(request, b"if-match")
    if value is None or b"W/" not in value:
        return None
    return _weak_if_match(value)


@lru_cache(maxsize=256)  # the checks run on every response: a repeated finding is reused
def _weak_if_match(value: bytes) -> Finding:
    return Finding(
        "weak-if-match",
        f"the request carries If-Match {wire_text(value)}: If-Match uses the strong comparison "
        "(RFC 9110 13.1.1), so a weak tag never matches and the request always fails with 412",
        "send If-Match with the strong ETag, and keep the strong ETag through Cloudflare: "
        "Respect Strong ETags on, or no re-encoding on the way (the ETag tables, facts 2.1)")


def invalid_last_modified(response: Index) -> Finding | None:
    value = _joined(response, b"last-modified")
    return None if value is None else _invalid_last_modified(value)


@lru_cache(maxsize=1024)
def _invalid_last_modified(value: bytes) -> Finding | None:
    if parse_http_date(value) is not None:
        return None
    return Finding(
        "invalid-last-modified",
        f"Last-Modified {wire_text(value)} is not an HTTP date, so Cloudflare cannot "
        "revalidate with it (facts 2.4.7) and browsers' If-Modified-Since never matches",
        'send an IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7)')


def missing_vary(response: Index) -> Finding | None:
    codings = response.get(b"content-encoding")
    if not codings:
        return None
    return _missing_vary(tuple(codings), _joined(response, b"vary"))


@lru_cache(maxsize=256)
def _missing_vary(values: tuple[bytes, ...], vary_value: bytes | None) -> Finding | None:
    codings = [v.strip().lower() for v in values]
    if codings == [b"identity"]:
        return None
    vary = [v.strip().lower() for v in (vary_value or b"").split(b",")]
    if b"accept-encoding" in vary or b"*" in vary:
        return None
    return Finding(
        "missing-vary-accept-encoding",
        f"the response is {wire_text(b', '.join(codings))}-encoded but has no Vary: "
        "Accept-Encoding, so caches may hand it to clients that cannot decode it",
        "add Vary: Accept-Encoding to every response whose encoding depends on the request's "
        "Accept-Encoding")


class OriginDiagnosis:
    """Runs every check on each exchange; remembers per URL which encodings carried which
    strong ETag."""

    def __init__(self, remembered: int = REMEMBERED_URLS) -> None:
        self.remembered = remembered
        self.seen: OrderedDict[str, dict[bytes, str]] = OrderedDict()  # url -> etag -> coding
        # cache key -> revalidations in a row that brought the same ETag back in full
        self.lost: OrderedDict[str, int] = OrderedDict()
        # url -> the ETag visitors got with the last full response (None: none)
        self.delivered: OrderedDict[str, str | None] = OrderedDict()

    def check(self, request: Request, response: Response,
              validators_forwarded: bool = True) -> list[Finding]:
        """`request` as the visitor sent it; `validators_forwarded`: whether its
        conditionals reached the origin (not on a cacheable miss, facts 2.4.1)."""
        req, resp = request.index, response.index
        ignored = (weak_if_none_match_ignored(req, resp, response.status)
                   if validators_forwarded else None)
        checks = (ignored, weak_if_match(req), invalid_last_modified(resp), missing_vary(resp),
                  self._same_etag(request.url, resp, response.status),
                  apache_etag_suffix(resp) if ignored is None else None)
        return [f for f in checks if f is not None]

    def of_origin(self, request: Request, origin: Response, forwarded: bool,
                  stored: tuple[str, bytes | None, str] | None, why: str = ""
                  ) -> list[Finding]:
        """Everything one origin answer shows: `stored` is the cache key, stored ETag and
        cache status when the edge revalidated a stored object with it."""
        findings = self.check(request, origin, forwarded)
        if stored is not None:
            lost = self.revalidation(*stored, origin, why)
            if lost is not None:
                findings.append(lost)
        return findings

    def revalidation(self, key: str, stored_etag: bytes | None, cache_status: str,
                     response: Response, why: str = "") -> Finding | None:
        """The edge revalidated a stored object and got the full body back although its
        ETag did not change; said from the second time in a row for the same object."""
        if cache_status != "EXPIRED" or stored_etag is None or response.status != 200:
            self.lost.pop(key, None)
            return None
        etag = parse_etag(header_values(response.headers, b"etag"))
        if etag is None or etag.kind == "malformed" or not if_none_match(stored_etag, etag.raw):
            self.lost.pop(key, None)
            return None
        times = self.lost.pop(key, 0) + 1
        self.lost[key] = times
        if len(self.lost) > self.remembered:
            self.lost.popitem(last=False)
        if times < 2:
            return None
        index = header_index(response.headers)
        cause = apache_etag_suffix(index)
        if cause is not None:
            fix = cause.fix
        elif "4.3.4" in why:
            fix = ("send the same ETag on a 304 as on the 200 it confirms (nginx, for one, "
                   "answers with its strong tag while its gzip 200 carries the weak one): "
                   "Respect Strong ETags keeps the strong tag through Cloudflare, or a weak "
                   "ETag everywhere lets the 304 match")
        else:
            fix = ("compare If-None-Match with the weak comparison (RFC 9110 13.1.2), so "
                   "the edge's revalidation with the stored tag gets a 304")
        return Finding(
            "revalidation-full-body",
            f"the edge revalidated this object with its stored ETag {wire_text(stored_etag)} "
            f"and got the full body back with the same ETag {times} times in a row "
            f"(cf-cache-status EXPIRED, never REVALIDATED){': ' + why if why else ''}",
            fix)

    def relayed_304(self, url: str, status_out: int, relayed: bool, etag_out: str | None
                    ) -> Finding | None:
        """Remembers the ETag each URL's full responses carried to visitors; a relayed
        origin 304 whose ETag is not that one hands the browser a validator the 200 never
        gave it (nginx: its strong tag on the 304, the weak one on its gzip 200)."""
        if status_out == 200:
            self.delivered.pop(url, None)
            self.delivered[url] = etag_out
            if len(self.delivered) > self.remembered:
                self.delivered.popitem(last=False)
            return None
        if not relayed or etag_out is None or url not in self.delivered:
            return None
        full = self.delivered[url]
        if full is not None and full.removeprefix("W/") == etag_out.removeprefix("W/"):
            return None
        got = f"with the ETag {full}" if full is not None else "without an ETag"
        return Finding(
            "relayed-304-etag-mismatch",
            f"the origin's 304 carries ETag {etag_out}, but visitors got this URL's full "
            f"response {got}: the edge relays the 304 as the origin sent it (Cloudflare's "
            "behaviour here is undocumented; modelled), so the browser now holds a validator "
            "the 200 never gave it, and whether its next revalidation gets a 304 depends on "
            "the origin accepting that tag",
            "send the same ETag on a 304 as on the 200 it confirms (nginx answers with its "
            "strong tag while its gzip 200 carries the weak one); or keep the page's ETag "
            "through Cloudflare: turn the HTML features that remove it off for these paths "
            "(a configuration rule), or set Respect Strong ETags")

    def _same_etag(self, url: str, response: Index, status: int) -> Finding | None:
        if status != 200 or b"etag" not in response:
            return None
        etag = parse_etag(response[b"etag"])
        if etag is None or etag.kind != "strong":
            return None
        coding = wire_text(_joined(response, b"content-encoding") or b"identity")
        coding = coding.strip().lower() or "identity"
        tags = self.seen.get(url)
        if tags is None:
            tags = self.seen[url] = {}
            if len(self.seen) > self.remembered:
                self.seen.popitem(last=False)
        else:
            self.seen.move_to_end(url)
        before = tags.get(etag.raw)
        tags[etag.raw] = coding
        if before is None or before == coding:
            return None
        return Finding(
            "same-strong-etag-different-encodings",
            f"the strong ETag {wire_text(etag.raw)} came with {before} and with {coding} for "
            "the same URL: a strong ETag promises identical bytes, so caches and range "
            "requests can mix the two encodings",
            "make the ETag depend on the encoding (e.g. append -gzip / -br) or send a weak "
            "ETag, and send Vary: Accept-Encoding")


def probe_finding(request: Request, response: Response) -> Finding | None:
    """What the origin's answer to a probe (cf_diagnose_probe) shows, if anything."""
    return weak_if_none_match_ignored(header_index(request.headers),
                                      header_index(response.headers), response.status)


def probe_needed(request: Request, response: Response,
                 visitor_etag: bytes | None = b"") -> bytes | None:
    """The weakened tag to probe the origin with (cf_diagnose_probe): a 200 with a strong
    ETag to a request that did not already ask with a weak one, whose visitors get an ETag
    at all (`visitor_etag` None: the edge removed it, so no browser revalidates with it)."""
    if response.status != 200 or request.method.upper() != "GET" or visitor_etag is None:
        return None
    etag = parse_etag(header_values(response.headers, b"etag"))
    if etag is None or etag.kind != "strong":
        return None
    return etag.weakened
