"""A zone as the rules file describes it: plan, zone settings and three rulesets.

Names follow Cloudflare's API: zone setting ids, phases, actions, action_parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from addon.expressions import Expression
from addon.expressions import FieldValues

# section in rules.yaml -> (Cloudflare phase, action)
RULESETS = {
    "configuration_rules": ("http_config_settings", "set_config"),
    "cache_rules": ("http_request_cache_settings", "set_cache_settings"),
    "compression_rules": ("http_response_compression", "compress_response"),
    "cache_response_rules": ("http_response_cache_settings", "set_cache_settings"),
}
RESPONSE_PHASES = ("compression_rules", "cache_response_rules")  # may read http.response.*

# Zone settings this version acts on; the rest are accepted and reported as not emulated.
CONTENT_FEATURES = {"email_obfuscation", "automatic_https_rewrites", "rocket_loader",
                    "mirage", "polish"}  # fmt: skip
EMULATED_SETTINGS = {"brotli", *CONTENT_FEATURES}
EMULATED_CACHE_PARAMETERS = {"respect_strong_etags", "cache", "edge_ttl", "browser_ttl",
                             "serve_stale", "cache_key", "origin_cache_control", "read_timeout"}
EMULATED_CACHE_RESPONSE_PARAMETERS = {"strip_etags", "strip_last_modified", "strip_set_cookie"}
EMULATED_CONFIG_PARAMETERS = {*CONTENT_FEATURES, "response_body_buffering"}

# facts 2.2.3: Respect Strong ETags turns these features off.
DISABLED_BY_RESPECT_STRONG_ETAGS = (
    "rocket_loader", "email_obfuscation", "automatic_https_rewrites", "mirage",
)  # fmt: skip

# HTML-rewriting features, which remove ETags from HTML (facts 2.2.4, 2.3 step 2); the
# rewriting itself is addon/html. Documented to remove ETags: the first two.
HTML_FEATURES = {
    "email_obfuscation": "Email Obfuscation",
    "automatic_https_rewrites": "Automatic HTTPS Rewrites",
    "rocket_loader": "Rocket Loader",
    "mirage": "Mirage",
}
ETAG_REMOVAL_DOCUMENTED = frozenset({"email_obfuscation", "automatic_https_rewrites"})


@dataclass(frozen=True)
class Rule:
    section: str  # a key of RULESETS
    position: int  # 1-based within its section
    description: str
    expression: Expression
    enabled: bool
    action_parameters: dict[str, Any]
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

    @property
    def rule_count(self) -> int:
        """Rules in every ruleset, enabled or not."""
        return sum(len(getattr(self, section)) for section in RULESETS)

    def matching(self, section: str, env: FieldValues) -> list[Rule]:
        """Enabled rules of a section whose expression matches, in file order."""
        return [r for r in getattr(self, section) if r.enabled and r.expression.matches(env)]


DEFAULT_SETTINGS: dict[str, Any] = {
    "brotli": True,
    "email_obfuscation": True,
    "automatic_https_rewrites": True,
    "rocket_loader": False,
    "mirage": False,
    "polish": "off",
    "fonts": False,
}
