"""A zone as the rules file describes it: plan, zone settings and three rulesets.

Names follow Cloudflare's API: zone setting ids, phases, actions, action_parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from addon.config.parameters import ZONE_CACHE_DEFAULTS
from addon.config.parameters import CacheControlParameters
from addon.config.parameters import CacheParameters
from addon.config.parameters import CacheResponseParameters
from addon.config.parameters import CacheTagParameters
from addon.config.parameters import CompressParameters
from addon.config.parameters import ConfigParameters
from addon.config.parameters import ZoneCacheSettings
from addon.expressions import Expression
from addon.expressions import FieldValues
from addon.html.feature import DOCUMENTED
from addon.html.features import FEATURES

# section in rules.yaml -> (Cloudflare phase, action)
RULESETS = {
    "configuration_rules": ("http_config_settings", "set_config"),
    "cache_rules": ("http_request_cache_settings", "set_cache_settings"),
    "compression_rules": ("http_response_compression", "compress_response"),
    "cache_response_rules": ("http_response_cache_settings", "set_cache_settings"),
}
RESPONSE_PHASES = ("compression_rules", "cache_response_rules")  # may read http.response.*
# A section whose phase has several actions (facts 5.2.2): each rule says which.
ACTIONS = {"cache_response_rules": ("set_cache_settings", "set_cache_tags", "set_cache_control")}

# Zone settings this version acts on; the rest are accepted and reported as not emulated.
CONTENT_FEATURES = {*FEATURES, "polish"}
CACHE_SETTINGS = {"browser_cache_ttl", "cache_level", "development_mode",
                  "sort_query_string_for_cache", "always_online"}
EMULATED_SETTINGS = {"brotli", *CONTENT_FEATURES, *CACHE_SETTINGS}
EMULATED_CACHE_PARAMETERS = {"respect_strong_etags", "cache", "edge_ttl", "browser_ttl",
                             "serve_stale", "cache_key", "origin_cache_control", "read_timeout"}
EMULATED_CACHE_RESPONSE_PARAMETERS = {"strip_etags", "strip_last_modified", "strip_set_cookie"}
EMULATED_CONFIG_PARAMETERS = {*CONTENT_FEATURES, "response_body_buffering"}

# facts 2.2.3: Respect Strong ETags turns these features off.
DISABLED_BY_RESPECT_STRONG_ETAGS = tuple(
    name for name, f in FEATURES.items() if f.disabled_by_respect_strong_etags)
# HTML-rewriting features remove ETags from HTML (facts 2.2.4, 2.3 step 2); documented
# for some of them.
ETAG_REMOVAL_DOCUMENTED = frozenset(
    name for name, f in FEATURES.items() if f.etag_removal == DOCUMENTED)


Parameters = (CacheParameters | CacheResponseParameters | CompressParameters | ConfigParameters
              | CacheControlParameters | CacheTagParameters)


@dataclass(frozen=True)
class Rule:
    section: str  # a key of RULESETS
    position: int  # 1-based within its section
    description: str
    expression: Expression
    enabled: bool
    action_parameters: Parameters
    line: int

    @property
    def label(self) -> str:
        where = f"{self.section}[{self.position}]"
        return f'{where} "{self.description}"' if self.description else where


@dataclass(frozen=True)
class Zone:
    path: str
    plan: str
    settings: dict[str, Any]  # zone setting id -> bool or str
    configuration_rules: tuple[Rule, ...]
    cache_rules: tuple[Rule, ...]
    compression_rules: tuple[Rule, ...]
    cache_response_rules: tuple[Rule, ...]
    not_emulated: tuple[str, ...]  # keys accepted but not acted on (reported once)
    # hosts known to serve HTTPS, for Automatic HTTPS Rewrites; empty: the request's host
    https_hosts: tuple[str, ...] = ()
    # keys Cloudflare may have that this tool does not know (ignored, reported once)
    unknown: tuple[str, ...] = ()
    read: tuple[str, ...] = ()  # what was read from which file (a directory, API responses)
    cache_defaults: ZoneCacheSettings = ZONE_CACHE_DEFAULTS  # from settings, read once

    @property
    def rule_count(self) -> int:
        """Rules in every ruleset, enabled or not."""
        return sum(len(getattr(self, section)) for section in RULESETS)

    def matching(self, section: str, env: FieldValues) -> list[Rule]:
        """Enabled rules of a section whose expression matches, in file order."""
        return [r for r in getattr(self, section) if r.enabled and r.expression.matches(env)]


DEFAULT_SETTINGS: dict[str, Any] = {
    "brotli": True,
    **{name: f.default for name, f in FEATURES.items()},
    "polish": "off",
    "fonts": False,
}
