"""Response time: may the origin's response be stored, for how long, and may it be served
stale (facts 6.3 to 6.9, 6.15, 6.16, 5.1.2, 2.4.8). Origin Cache Control (OCC) semantics
as documented for Free/Pro/Business, where it is always on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field

from addon.cache.settings import CacheSettings
from addon.http.cache_control import parse_cache_control
from addon.http.conditional import parse_http_date
from addon.http.headers import Headers
from addon.http.headers import header
from addon.vocabulary import CacheStatus

BYPASS = CacheStatus.BYPASS
MISS = CacheStatus.MISS

# facts 6.4: edge TTLs without Cache-Control or Expires
DEFAULT_TTLS = {200: 7200, 206: 7200, 301: 7200, 302: 1200, 303: 1200, 404: 180, 410: 180}
MAX_SIZE = {"enterprise": 5 << 30}  # facts 6.12; the other plans: 512 MB
DEFAULT_MAX_SIZE = 512 << 20
_INT = re.compile(r"\d+")


@dataclass(frozen=True)
class Freshness:
    store: bool
    status: CacheStatus  # MISS (stored, or Cache Everything with Set-Cookie) or BYPASS
    reason: str
    ttl: int = 0  # seconds fresh; 0: revalidate on every request
    stale_while_revalidate: int = 0  # seconds after expiry when UPDATING may be served
    stale_on_error: bool = True  # may be served STALE when the origin fails
    strip: tuple[bytes, ...] = ()  # response headers not stored (lower case)
    directives_from: str = ""  # which header the TTL came from


@dataclass
class _Ttl:
    """The TTL being worked out, and what goes with it."""

    ttl: int = 0
    why: str = ""
    stale_on_error: bool = True
    swr_allowed: bool = True
    strip: list[bytes] = field(default_factory=list)


def freshness(settings: CacheSettings, plan: str, request: Headers, status: int,
              response: Headers, size: int, now: float) -> Freshness:
    vary = (header(response, b"vary") or b"").lower()
    if b"*" in [v.strip() for v in vary.split(b",")]:
        return _bypass("the origin sent `Vary: *`, which always bypasses cache (facts 6.8)")
    limit = MAX_SIZE.get(plan, DEFAULT_MAX_SIZE)
    if size > limit:
        return _bypass(f"larger than the {limit >> 20} MB a {plan} zone caches (facts 6.12)")
    if status == 206:
        return _bypass("a partial response (206) is not stored without Origin Range Requests "
                       "(facts 1.8.9)")
    source, cc = _directives(response)
    t = _Ttl(swr_allowed=not settings.serve_stale.disable_stale_while_updating)
    edge = settings.edge_ttl
    status_ttl = edge.for_status(status)
    if status_ttl is not None:
        if status_ttl < 0:
            return _bypass(f"the cache rule's status-code TTL for {status} is -1 (no-store, "
                           "facts 5.1.2)")
        t.ttl = status_ttl
        t.why = f"the cache rule's status-code TTL for {status} ({status_ttl} s)"
        cc = {}  # status-code TTLs ignore Cache-Control (facts 5.1.2)
    elif edge.mode == "override_origin":
        t.ttl = edge.default
        t.why = f"the cache rule's Edge TTL overrides the origin ({edge.default} s)"
        cc = {}
    else:
        bypass = _from_origin(t, settings, request, status, response, source, cc, now)
        if bypass is not None:
            return bypass
    bypass = _set_cookie(t, settings, response)
    if bypass is not None:
        return bypass
    swr = _seconds(cc.get("stale-while-revalidate")) if t.swr_allowed else None
    return Freshness(True, MISS, f"stored: {t.why}", max(t.ttl, 0), swr or 0, t.stale_on_error,
                     tuple(t.strip), source if cc else "")


def _from_origin(t: _Ttl, settings: CacheSettings, request: Headers, status: int,
                 response: Headers, source: str, cc: dict[str, str], now: float
                 ) -> Freshness | None:
    """The TTL from the origin's directives (Origin Cache Control, facts 6.5), or the
    bypass they ask for."""
    occ = settings.origin_cache_control
    if "no-store" in cc:
        return _bypass(f"`no-store` in {source} (facts 6.5)")
    if "private" in cc:
        fields = _field_names(cc["private"])
        if not fields or not occ:
            return _bypass(f"`private` in {source} (facts 6.5)")
        t.strip += fields  # private="x": cached without those headers (facts 6.5)
    if "no-cache" in cc:
        fields = _field_names(cc["no-cache"])
        if not occ:
            return _bypass(f"`no-cache` in {source} with Origin Cache Control off (6.5)")
        # no-cache="x": cached unless x is present (a bare no-cache comes below)
        present = [f for f in fields if header(response, f) is not None]
        if present == [b"set-cookie"]:
            t.strip.append(b"set-cookie")  # facts 6.7: dropped, then cached
        elif present:
            return _bypass(f"`no-cache={cc['no-cache']}` in {source} and that header is "
                           "present (facts 6.5)")
    bypass = _ttl(t, settings, status, response, source, cc, now)
    if bypass is not None:
        return bypass
    if t.ttl == 0 and not occ:
        return _bypass(f"a zero TTL in {source} with Origin Cache Control off (facts 6.5)")
    if occ and ({"must-revalidate", "proxy-revalidate"} & cc.keys()):
        t.stale_on_error = t.swr_allowed = False  # facts 6.5, 6.15
    if occ and header(request, b"authorization") is not None and not (
            {"must-revalidate", "public", "s-maxage"} & cc.keys()):
        return _bypass("the request carries Authorization and the response has none of "
                       "must-revalidate, public, s-maxage (facts 6.6)")
    return None


def _ttl(t: _Ttl, settings: CacheSettings, status: int, response: Headers, source: str,
         cc: dict[str, str], now: float) -> Freshness | None:
    """How long the origin's directives keep it fresh, else the defaults (facts 6.4)."""
    ttl_s = _seconds(cc.get("s-maxage"))
    ttl_m = _seconds(cc.get("max-age"))
    if "no-cache" in cc and not _field_names(cc["no-cache"]):
        t.ttl, t.why = 0, f"`no-cache` in {source}: cached, revalidated on every request " \
            "(facts 6.5)"
        t.stale_on_error = t.swr_allowed = False
    elif ttl_s is not None:
        t.ttl, t.why = ttl_s, f"`s-maxage={ttl_s}` in {source}"
        t.stale_on_error = t.swr_allowed = False  # s-maxage implies proxy-revalidate (6.5)
    elif ttl_m is not None:
        t.ttl, t.why = ttl_m, f"`max-age={ttl_m}` in {source}"
    elif (expires := _expires(response, now)) is not None:
        t.ttl, t.why = expires, f"`Expires` {expires} s ahead"
    elif settings.edge_ttl.mode == "bypass_by_default":
        return _bypass("no Cache-Control and the cache rule's Edge TTL is bypass by default "
                       "(facts 5.1.2)")
    elif status in DEFAULT_TTLS:
        t.ttl, t.why = DEFAULT_TTLS[status], (f"no Cache-Control: the default edge TTL for "
                                             f"{status} (facts 6.4)")
    else:
        return _bypass(f"status {status} has no default edge TTL and the origin gave none "
                       "(facts 6.4)")
    return None


def _set_cookie(t: _Ttl, settings: CacheSettings, response: Headers) -> Freshness | None:
    """A response with Set-Cookie: stripped and stored, or not stored (facts 6.7)."""
    if header(response, b"set-cookie") is None or b"set-cookie" in t.strip:
        return None
    if settings.edge_ttl.explicit:
        t.strip.append(b"set-cookie")  # stripped and cached
    elif settings.by_rule:
        return Freshness(False, MISS, "Set-Cookie with a cache rule (Cache Everything): not "
                         "stored, MISS every time (facts 6.7)")
    elif settings.origin_cache_control:
        return _bypass("the origin sent Set-Cookie (facts 6.7)")
    else:
        t.strip.append(b"set-cookie")
    return None


def _bypass(reason: str) -> Freshness:
    return Freshness(False, BYPASS, reason)


def _directives(response: Headers) -> tuple[str, dict[str, str]]:
    """Cloudflare-CDN-Cache-Control > CDN-Cache-Control > Cache-Control (facts 6.9);
    Surrogate-Control makes Cloudflare ignore Cache-Control."""
    for name in (b"cloudflare-cdn-cache-control", b"cdn-cache-control"):
        value = header(response, name)
        if value is not None:
            return name.decode().title().replace("Cdn", "CDN"), parse_cache_control(value)
    if header(response, b"surrogate-control") is not None:
        return "Cache-Control (ignored: Surrogate-Control present)", {}
    return "Cache-Control", parse_cache_control(header(response, b"cache-control"))


def _seconds(value: str | None) -> int | None:
    """A delta-seconds argument; non-integers such as 2.5 are ignored (facts 6.8)."""
    if value is None:
        return None
    return int(value) if _INT.fullmatch(value.strip()) else None


def _field_names(arg: str) -> list[bytes]:
    return [f.strip().lower().encode() for f in arg.split(",") if f.strip()]


def _expires(response: Headers, now: float) -> int | None:
    expires = parse_http_date(header(response, b"expires"))
    if expires is None:
        return None
    date = parse_http_date(header(response, b"date")) or now
    return max(int(expires - date), 0)
