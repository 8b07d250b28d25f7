"""What the rules file may say, in Cloudflare's API names: the zone settings, the rule
keys, and the action parameters of each ruleset, with the value each takes (a type name,
a tuple of allowed strings, or a nested shape). config/loader.py checks a file against
these tables; the HTML features add their settings from their registry.
"""

from __future__ import annotations

from typing import Any

from addon.config.zone import RULESETS
from addon.html.features import FEATURES

BOOL, STR, INT, MAP, LIST, ANY = "boolean", "string", "integer", "mapping", "list", "any"

# Zone settings (API setting ids) -> allowed values (a type name or a tuple of strings).
SETTINGS: dict[str, Any] = {
    "brotli": BOOL, **dict.fromkeys(FEATURES, BOOL), "fonts": BOOL,
    "polish": ("off", "lossless", "lossy", "webp"),
    # the cache's (facts 6.10, 6.16, 6.19, 6.20)
    "browser_cache_ttl": INT, "cache_level": ("basic", "simplified", "aggressive"),
    "development_mode": BOOL, "sort_query_string_for_cache": BOOL, "always_online": BOOL,
}  # fmt: skip

# set_cache_settings action_parameters (facts 5.1.1-5.1.5)
CACHE_PARAMETERS: dict[str, Any] = {
    "cache": BOOL, "respect_strong_etags": BOOL, "origin_error_page_passthru": BOOL,
    "origin_cache_control": BOOL, "edge_ttl": MAP, "browser_ttl": MAP, "cache_key": MAP,
    "cache_reserve": MAP, "serve_stale": MAP, "origin_range_requests": MAP, "vary": MAP,
    "additional_cacheable_ports": LIST, "read_timeout": INT,
}  # fmt: skip

# The inside of the cache settings the cache emulates (facts 5.1.2 to 5.1.5). A dict is a
# mapping of these specs, ("list", spec) a list of them, NAMES a query-string selection.
NAMES = "names"
TTL_MODES = ("respect_origin", "bypass_by_default", "override_origin")
STATUS_RANGE = {"from": INT, "to": INT}
CACHE_SHAPES: dict[str, Any] = {
    "edge_ttl": {"mode": TTL_MODES, "default": INT,
                 "status_code_ttl": ("list", {"status_code": INT,
                                              "status_code_range": STATUS_RANGE,
                                              "value": INT})},
    "browser_ttl": {"mode": TTL_MODES, "default": INT},
    "serve_stale": {"disable_stale_while_updating": BOOL},
    "cache_key": {
        "ignore_query_strings_order": BOOL, "cache_deception_armor": BOOL,
        "cache_by_device_type": BOOL,
        "custom_key": {
            "query_string": {"include": NAMES, "exclude": NAMES},
            "header": {"include": ("list", STR), "check_presence": ("list", STR),
                       "contains": ("map", ("list", STR)), "exclude_origin": BOOL},
            "cookie": {"include": ("list", STR), "check_presence": ("list", STR)},
            "host": {"resolved": BOOL},
            "user": {"device_type": BOOL, "geo": BOOL, "lang": BOOL},
        },
    },
}  # fmt: skip
# parts of those the cache accepts but does not act on (reported once at load)
CACHE_NOT_EMULATED = ("cache_key.cache_deception_armor", "cache_key.cache_by_device_type",
                      "cache_key.custom_key.user")  # fmt: skip

# set_cache_settings in http_response_cache_settings (facts 5.2.2)
CACHE_RESPONSE_PARAMETERS: dict[str, Any] = {
    "strip_etags": BOOL, "strip_last_modified": BOOL, "strip_set_cookie": BOOL,
}  # fmt: skip

# set_cache_control and set_cache_tags in http_response_cache_settings (facts 5.2.2)
CACHE_CONTROL_SECONDS = ("max-age", "s-maxage", "stale-if-error", "stale-while-revalidate")
CACHE_CONTROL_QUALIFIED = ("private", "no-cache")
CACHE_CONTROL_FLAGS = ("no-store", "no-transform", "must-revalidate", "proxy-revalidate",
                       "must-understand", "public", "immutable")  # fmt: skip
CACHE_CONTROL_DIRECTIVE = {"operation": ("set", "remove"), "value": INT,
                           "qualifiers": ("list", STR), "cloudflare_only": BOOL}
CACHE_TAGS = {"operation": ("add", "remove", "set"), "values": ("list", STR),
              "expression": STR}

# set_config action_parameters (facts 4.2, 4.3)
CONFIG_PARAMETERS: dict[str, Any] = {
    **dict.fromkeys(FEATURES, BOOL), "bic": BOOL, "disable_rum": BOOL, "disable_zaraz": BOOL,
    "fonts": BOOL, "hotlink_protection": BOOL, "opportunistic_encryption": BOOL,
    "disable_apps": BOOL, "disable_railgun": BOOL, "server_side_excludes": BOOL, "sxg": BOOL,
    "autominify": MAP, "content_converter": BOOL,
    "security_level": ("off", "essentially_off", "low", "medium", "high", "under_attack"),
    "polish": ("off", "lossless", "lossy", "webp"),
    "request_body_buffering": ("standard", "full", "none"),
    "response_body_buffering": ("standard", "none"),
    "ssl": ("off", "flexible", "full", "strict", "origin_pull"),
}  # fmt: skip

# Rule-level keys of Cloudflare's API besides expression and action_parameters.
RULE_KEYS = {
    "description": STR,
    "expression": STR,
    "enabled": BOOL,
    "action_parameters": MAP,
    "action": STR,
    "id": STR,
    "ref": STR,
    "version": STR,
    "last_updated": STR,
    "logging": MAP,
}
TOP_KEYS = ("plan", "settings", "https_hosts", *RULESETS)
