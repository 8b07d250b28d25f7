"""The action parameters of the rules, typed: what the rules file says, read once when it is
loaded (config/loader.py checks it and reports file:line:key), so that the request path
reads plain attributes and never normalises a setting again.

Names are Cloudflare's (set_cache_settings, set_config, compress_response).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from typing import Any

ALL = "*"  # every query-string parameter
TTL_MODES = ("respect_origin", "bypass_by_default", "override_origin")


@dataclass(frozen=True)
class StatusCodeTTL:
    """An Edge TTL for a status code or a range of them; -1 means no-store (facts 5.1.2)."""

    first: int
    last: int
    seconds: int

    def covers(self, status: int) -> bool:
        return self.first <= status <= self.last


@dataclass(frozen=True)
class EdgeTTL:
    mode: str = "respect_origin"  # TTL_MODES
    default: int = 0  # seconds, with override_origin
    status_code_ttl: tuple[StatusCodeTTL, ...] = ()

    @property
    def explicit(self) -> bool:
        """An Edge TTL that overrides the origin (facts 6.7: then Set-Cookie is stripped)."""
        return self.mode == "override_origin" or bool(self.status_code_ttl)

    def for_status(self, status: int) -> int | None:
        return next((t.seconds for t in self.status_code_ttl if t.covers(status)), None)


@dataclass(frozen=True)
class BrowserTTL:
    mode: str = "respect_origin"  # TTL_MODES
    default: int | None = None  # seconds, with override_origin


@dataclass(frozen=True)
class ServeStale:
    disable_stale_while_updating: bool = False


@dataclass(frozen=True)
class QuerySelection:
    """Which query-string parameters are in the key: None (no say), ALL, or names."""

    include: frozenset[str] | str | None = None
    exclude: frozenset[str] | str | None = None


@dataclass(frozen=True)
class CacheKey:
    """cache_key (facts 5.1.4, 6.18)."""

    ignore_query_strings_order: bool = False
    query: QuerySelection = QuerySelection()
    header_include: tuple[str, ...] = ()
    header_check_presence: tuple[str, ...] = ()
    header_contains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude_origin: bool = False
    cookie_include: tuple[str, ...] = ()
    cookie_check_presence: tuple[str, ...] = ()


CACHE_LEVELS = ("basic", "simplified", "aggressive")  # facts 6.19


@dataclass(frozen=True)
class ZoneCacheSettings:
    """The zone settings that touch the cache, read once (facts 6.10, 6.16, 6.19, 6.20).
    Cache rules beat them for a request they match (facts 5.1.7)."""

    browser_ttl: BrowserTTL | None = None  # browser_cache_ttl; 0: respect existing headers
    cache_level: str = "aggressive"  # basic: no query string, simplified: ignore it
    development_mode: bool = False  # the cache is bypassed
    sort_query_string: bool = False  # sort_query_string_for_cache
    always_online: bool = False  # stale-while-revalidate ignored

    @classmethod
    def of(cls, settings: dict[str, Any]) -> ZoneCacheSettings:
        ttl = settings.get("browser_cache_ttl") or 0
        return cls(BrowserTTL("override_origin", ttl) if ttl > 0 else None,
                   settings.get("cache_level", "aggressive"),
                   bool(settings.get("development_mode")),
                   bool(settings.get("sort_query_string_for_cache")),
                   bool(settings.get("always_online")))


ZONE_CACHE_DEFAULTS = ZoneCacheSettings()


@dataclass(frozen=True)
class CacheParameters:
    """set_cache_settings in http_request_cache_settings; None: the rule does not say, so
    an earlier match (or the default) stands. Last match wins per setting (facts 5.1.7)."""

    cache: bool | None = None
    respect_strong_etags: bool | None = None
    origin_cache_control: bool | None = None
    edge_ttl: EdgeTTL | None = None
    browser_ttl: BrowserTTL | None = None
    serve_stale: ServeStale | None = None
    cache_key: CacheKey | None = None
    read_timeout: int | None = None  # seconds before a 524 (Enterprise)

    def then(self, later: CacheParameters) -> CacheParameters:
        """These parameters with a later matching rule's on top."""
        changes = {f.name: getattr(later, f.name) for f in fields(later)
                   if getattr(later, f.name) is not None}
        return CacheParameters(**{**self.__dict__, **changes}) if changes else self

    @property
    def said(self) -> bool:
        """Some rule said something."""
        return any(value is not None for value in self.__dict__.values())


@dataclass(frozen=True)
class CacheResponseParameters:
    """set_cache_settings in http_response_cache_settings (facts 5.2.2)."""

    strip_etags: bool | None = None
    strip_last_modified: bool | None = None
    strip_set_cookie: bool | None = None

    def then(self, later: CacheResponseParameters) -> CacheResponseParameters:
        changes = {f.name: getattr(later, f.name) for f in fields(later)
                   if getattr(later, f.name) is not None}
        return CacheResponseParameters(**{**self.__dict__, **changes})

    @property
    def stripped(self) -> tuple[bytes, ...]:
        """The response headers removed before the object is stored."""
        names = ((self.strip_etags, b"etag"), (self.strip_last_modified, b"last-modified"),
                 (self.strip_set_cookie, b"set-cookie"))
        return tuple(name for on, name in names if on)


@dataclass(frozen=True)
class DirectiveEdit:
    """One Cache-Control directive a set_cache_control rule sets or removes (facts 5.2.2)."""

    name: str
    operation: str  # set | remove
    value: int | None = None  # seconds: max-age, s-maxage, stale-if-error, ...
    qualifiers: tuple[str, ...] = ()  # header names: private="x", no-cache="x"
    cloudflare_only: bool = False  # changes the edge's caching only, not what visitors see

    def text(self) -> str:
        if self.value is not None:
            return f"{self.name}={self.value}"
        if self.qualifiers:
            return f'{self.name}="{", ".join(self.qualifiers)}"'
        return self.name


@dataclass(frozen=True)
class CacheControlParameters:
    """set_cache_control in http_response_cache_settings; last match wins per directive."""

    directives: tuple[DirectiveEdit, ...]


@dataclass(frozen=True)
class CacheTagParameters:
    """set_cache_tags in http_response_cache_settings (facts 5.2.2)."""

    operation: str  # add | remove | set
    values: tuple[str, ...]

    def apply(self, tags: list[str]) -> list[str]:
        if self.operation == "set":
            return list(dict.fromkeys(self.values))
        if self.operation == "remove":
            return [t for t in tags if t not in self.values]
        return list(dict.fromkeys((*tags, *self.values)))


@dataclass(frozen=True)
class CompressParameters:
    """compress_response in http_response_compression."""

    algorithms: tuple[str, ...]  # Cloudflare names: gzip, brotli, zstd, none, auto, default


# set_config: zone settings for the matching requests, setting id -> value
ConfigParameters = Mapping[str, Any]


def cache_parameters(raw: dict[str, Any]) -> CacheParameters:
    """The checked YAML of one cache rule's action_parameters, typed."""
    return CacheParameters(
        cache=raw.get("cache"),
        respect_strong_etags=raw.get("respect_strong_etags"),
        origin_cache_control=raw.get("origin_cache_control"),
        edge_ttl=_edge_ttl(raw["edge_ttl"]) if "edge_ttl" in raw else None,
        browser_ttl=BrowserTTL(raw["browser_ttl"].get("mode", "respect_origin"),
                               raw["browser_ttl"].get("default"))
        if "browser_ttl" in raw else None,
        serve_stale=ServeStale(bool(raw["serve_stale"].get("disable_stale_while_updating")))
        if "serve_stale" in raw else None,
        cache_key=_cache_key(raw["cache_key"]) if "cache_key" in raw else None,
        read_timeout=raw.get("read_timeout"),
    )


def _edge_ttl(raw: dict[str, Any]) -> EdgeTTL:
    ttls = []
    for entry in raw.get("status_code_ttl") or ():
        if "status_code" in entry:
            first = last = entry["status_code"]
        else:
            span = entry["status_code_range"]
            first, last = span.get("from", 100), span.get("to", 599)
        ttls.append(StatusCodeTTL(first, last, entry["value"]))
    return EdgeTTL(raw.get("mode", "respect_origin"), raw.get("default", 0), tuple(ttls))


def _cache_key(raw: dict[str, Any]) -> CacheKey:
    custom = raw.get("custom_key") or {}
    query = custom.get("query_string") or {}
    header = custom.get("header") or {}
    cookie = custom.get("cookie") or {}
    return CacheKey(
        ignore_query_strings_order=bool(raw.get("ignore_query_strings_order")),
        query=QuerySelection(_names(query.get("include")), _names(query.get("exclude"))),
        header_include=tuple(header.get("include") or ()),
        header_check_presence=tuple(header.get("check_presence") or ()),
        header_contains=tuple((name, tuple(values))
                              for name, values in (header.get("contains") or {}).items()),
        exclude_origin=bool(header.get("exclude_origin")),
        cookie_include=tuple(cookie.get("include") or ()),
        cookie_check_presence=tuple(cookie.get("check_presence") or ()),
    )


def _names(value: Any) -> frozenset[str] | str | None:
    """The two API forms: `{list: [..]}` / `{all: true}`, and the older `[..]` / `["*"]`."""
    if value is None:
        return None
    if isinstance(value, dict):  # {list: ["*"]}: what tools write for exclude = ["*"]
        names = frozenset(value.get("list") or ())
        return ALL if value.get("all") or ALL in names else names
    names = frozenset(value)
    return ALL if ALL in names else names
