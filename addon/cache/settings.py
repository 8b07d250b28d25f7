"""Request time: is the request eligible for cache, and with which settings (facts 5.1, 6.1,
6.2, 6.13). Cache rules were already applied, last match wins per setting (pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache
from typing import Any

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
    edge_ttl: dict[str, Any] = field(default_factory=dict)
    browser_ttl: dict[str, Any] = field(default_factory=dict)
    serve_stale: dict[str, Any] = field(default_factory=dict)
    cache_key: dict[str, Any] = field(default_factory=dict)
    origin_cache_control: bool = True
    read_timeout: int | None = None  # seconds before a 524 (Enterprise; None: 120 s)

    @property
    def explicit_edge_ttl(self) -> bool:
        """An Edge TTL that overrides the origin (facts 6.7: then Set-Cookie is stripped)."""
        return (self.edge_ttl.get("mode") == "override_origin"
                or bool(self.edge_ttl.get("status_code_ttl")))


def cache_settings(method: str, path: str, params: dict[str, Any], plan: str) -> CacheSettings:
    """Eligibility at request time; `params` are the merged set_cache_settings."""
    if not params:  # no cache rule matched: the answer depends on little, so it is reused
        path = path.split("?", 1)[0]
        return _default_settings(method.upper(), _extension(path), path == "/robots.txt", plan)
    return _settings(method, path, params, plan)


@lru_cache(maxsize=1024)
def _default_settings(method: str, ext: str, robots: bool, plan: str) -> CacheSettings:
    return _settings(method, "/robots.txt" if robots else f"/x.{ext}" if ext else "/", {},
                     plan)


def _settings(method: str, path: str, params: dict[str, Any], plan: str) -> CacheSettings:
    # Origin Cache Control is always on for Free/Pro/Business, optional on Enterprise where
    # it defaults to off (facts 6.5, 5.1.5)
    occ = True if plan != "enterprise" else bool(params.get("origin_cache_control", False))
    common = dict(edge_ttl=params.get("edge_ttl") or {},
                  browser_ttl=params.get("browser_ttl") or {},
                  serve_stale=params.get("serve_stale") or {},
                  cache_key=params.get("cache_key") or {}, origin_cache_control=occ,
                  read_timeout=params.get("read_timeout"))
    if method.upper() not in CACHEABLE_METHODS:
        return CacheSettings(False, f"{method} requests are not cached (facts 1.7.2, 6.13)",
                             **common)
    rule = params.get("cache")
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


def _extension(path: str) -> str:
    return extension(path.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")
