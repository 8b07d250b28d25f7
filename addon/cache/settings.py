"""Request time: is the request eligible for cache, and with which settings (facts 5.1, 6.1,
6.2, 6.13). Cache rules were already applied, last match wins per setting (exchange/request.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from addon.config.parameters import ALL
from addon.config.parameters import ZONE_CACHE_DEFAULTS
from addon.config.parameters import BrowserTTL
from addon.config.parameters import CacheKey
from addon.config.parameters import CacheParameters
from addon.config.parameters import EdgeTTL
from addon.config.parameters import QuerySelection
from addon.config.parameters import ServeStale
from addon.config.parameters import ZoneCacheSettings
from addon.http.fields import extension

# facts 6.1: cached by default, by extension (not by media type); robots.txt too
_EXTENSIONS = (
    "7z avi avif apk bin bmp bz2 class css csv doc docx dmg ejs eot eps exe flac gif gz ico "
    "iso jar jpg jpeg js mid midi mkv mp3 mp4 ogg otf pdf pict pls png ppt pptx ps rar svg "
    "svgz swf tar tif tiff ttf webm webp woff woff2 xls xlsx zip zst"
)
DEFAULT_EXTENSIONS = frozenset(_EXTENSIONS.split())
CACHEABLE_METHODS = ("GET", "HEAD")  # facts 1.7.2


@dataclass(frozen=True)
class CacheSettings:
    eligible: bool
    reason: str  # why eligible or not, for the log
    by_rule: bool = False  # a cache rule said `cache: true` ("Cache Everything")
    edge_ttl: EdgeTTL = EdgeTTL()
    browser_ttl: BrowserTTL = BrowserTTL()
    serve_stale: ServeStale = ServeStale()
    cache_key: CacheKey = CacheKey()
    origin_cache_control: bool = True
    read_timeout: int | None = None  # seconds before a 524 (Enterprise; None: 120 s)


NO_PARAMETERS = CacheParameters()


def cache_settings(method: str, path: str, params: CacheParameters, plan: str,
                   zone: ZoneCacheSettings = ZONE_CACHE_DEFAULTS) -> CacheSettings:
    """Eligibility at request time; `params` are the matching cache rules' merged, `zone`
    the zone's cache settings (which the rules beat, facts 5.1.7)."""
    if (params is NO_PARAMETERS or not params.said) and not (
            zone.cache_level == "basic" and _query(path)):  # reused per method, extension, plan
        path = path.split("?", 1)[0]
        return _default_settings(method.upper(), _extension(path), path == "/robots.txt", plan,
                                 zone)
    return _settings(method, path, params, plan, zone)


@lru_cache(maxsize=1024)
def _default_settings(method: str, ext: str, robots: bool, plan: str,
                      zone: ZoneCacheSettings) -> CacheSettings:
    return _settings(method, "/robots.txt" if robots else f"/x.{ext}" if ext else "/",
                     NO_PARAMETERS, plan, zone)


def _settings(method: str, path: str, params: CacheParameters, plan: str,
              zone: ZoneCacheSettings) -> CacheSettings:
    # Origin Cache Control is always on for Free/Pro/Business, optional on Enterprise where
    # it defaults to off (facts 6.5, 5.1.5)
    occ = True if plan != "enterprise" else bool(params.origin_cache_control)
    common = dict(edge_ttl=params.edge_ttl or EdgeTTL(),
                  browser_ttl=params.browser_ttl or zone.browser_ttl or BrowserTTL(),
                  serve_stale=params.serve_stale or (
                      ALWAYS_ONLINE if zone.always_online else ServeStale()),
                  cache_key=params.cache_key or _zone_key(zone), origin_cache_control=occ,
                  read_timeout=params.read_timeout)
    if zone.development_mode:
        return CacheSettings(False, "Development Mode is on: the edge cache is bypassed "
                             "(facts 6.20)", **common)
    if method.upper() not in CACHEABLE_METHODS:
        return CacheSettings(False, f"{method} requests are not cached (facts 1.7.2, 6.13)",
                             **common)
    if zone.cache_level == "basic" and _query(path) and params.cache is not True:
        return CacheSettings(False, "Caching Level No Query String: a request with a query "
                             "string is not served from the cache (facts 6.19; modelled: "
                             "as DYNAMIC)", **common)
    rule = params.cache
    if rule is False:
        return CacheSettings(False, "a cache rule bypasses the cache (cache: false, facts "
                             "5.1.1)", **common)
    if rule is True:
        return CacheSettings(True, "a cache rule made it eligible for cache (cache: true, "
                             "facts 5.1.1)", by_rule=True, **common)
    ext = _extension(path)
    if ext in DEFAULT_EXTENSIONS:
        return CacheSettings(True, f"the extension .{ext} is cached by default (facts 6.1)",
                             **common)
    if path.split("?", 1)[0] == "/robots.txt":
        return CacheSettings(True, "robots.txt is cached by default (facts 6.1)", **common)
    what = f"the extension .{ext}" if ext else "a path without an extension"
    return CacheSettings(False, f"{what} is not cached by default and no cache rule made it "
                         "eligible (facts 6.1)", **common)


# Always Online: stale-while-revalidate is ignored (facts 6.16)
ALWAYS_ONLINE = ServeStale(disable_stale_while_updating=True)


@lru_cache(maxsize=64)
def _zone_key(zone: ZoneCacheSettings) -> CacheKey:
    """The cache key the zone's settings give: Ignore Query String (simplified) drops the
    query, Sort Query String sorts it (facts 6.19, 5.1.4)."""
    return CacheKey(ignore_query_strings_order=zone.sort_query_string,
                    query=QuerySelection(exclude=ALL) if zone.cache_level == "simplified"
                    else QuerySelection())


def _query(path: str) -> bool:
    return path.partition("?")[2] != ""


def _extension(path: str) -> str:
    return extension(path.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")
