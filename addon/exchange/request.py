"""The request phases, before the cache and the origin: configuration rules
(http_config_settings, facts 4.4), cache rules (http_request_cache_settings, 5.1.7) and
what they switch off (Respect Strong ETags 2.2.3, Response Body Buffering none 3.0.3), the
Accept-Encoding the origin is sent (1.3) and the edge's request headers (8.6).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from addon import html
from addon.cache.settings import NO_PARAMETERS
from addon.cache.settings import CacheSettings
from addon.cache.settings import cache_settings
from addon.compression.policy import ORIGIN_ACCEPT_ENCODING
from addon.config.parameters import CacheParameters
from addon.config.zone import DISABLED_BY_RESPECT_STRONG_ETAGS
from addon.config.zone import Zone
from addon.exchange.egress import Visitor
from addon.expressions import FieldValues
from addon.http.headers import header
from addon.http.headers import wire_text
from addon.http.messages import Request

COLO = "LCL"  # cf-ray's data-centre code; no real IATA code, so nobody mistakes it for one


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class RequestState:
    """What the request phases decided; carried to the response."""

    request: Request
    visitor_accept_encoding: str | None
    # What the origin is sent (None: no header). With Respect Strong ETags on, the
    # visitor's own header goes out untouched and this is its text, for the log.
    origin_accept_encoding: str | None
    respect_strong_etags: bool
    features: Mapping[str, Any]  # zone settings after configuration rules (read only)
    rules: tuple[str, ...] = ()  # labels of the rules that matched, in phase order
    turned_off: tuple[str, ...] = ()  # features Respect Strong ETags switched off
    cache: CacheSettings = CacheSettings(False, "no cache settings")
    ray: str = ""  # cf-ray, sent to the origin and to the visitor (facts 8.1)
    uninspected: tuple[str, ...] = ()  # features Response Body Buffering none switched off

    @property
    def visitor(self) -> Visitor:
        """What the last phase needs to know of the visitor."""
        r = self.request
        return Visitor(r.method, r.http_version, self.visitor_accept_encoding)

    @property
    def head(self) -> bool:
        return self.request.method.upper() == "HEAD"


def request_phases(zone: Zone, request: Request) -> RequestState:
    features = zone.settings  # copied before anything changes it (the zone's stays as it is)
    matched: list[str] = []
    params = NO_PARAMETERS
    if zone.configuration_rules or zone.cache_rules:
        features = dict(features)
        env = FieldValues(request)
        # http_config_settings: set_config, last match wins per setting (facts 4.4)
        for rule in zone.matching("configuration_rules", env):
            features.update(rule.action_parameters)
            matched.append(rule.label)
        # http_request_cache_settings: set_cache_settings, last match wins (facts 5.1.7)
        for rule in zone.matching("cache_rules", env):
            assert isinstance(rule.action_parameters, CacheParameters)
            params = params.then(rule.action_parameters)
            matched.append(rule.label)
    rse = bool(params.respect_strong_etags)
    turned_off: tuple[str, ...] = ()
    if rse:
        turned_off = tuple(n for n in DISABLED_BY_RESPECT_STRONG_ETAGS if features.get(n))
        features = dict(features)
        for name in DISABLED_BY_RESPECT_STRONG_ETAGS:  # facts 2.2.3
            features[name] = False
    if zone.cache_defaults.development_mode and features.get("polish", "off") != "off":
        features = dict(features)
        features["polish"] = "off"  # Development Mode suspends Polish (facts 3.5.3, 6.20)
    uninspected: tuple[str, ...] = ()
    if features.get("response_body_buffering") == "none":  # streamed uninspected (3.0.3)
        uninspected = tuple(n for n in html.FEATURES if features.get(n))
        features = dict(features)
        for name in html.FEATURES:
            features[name] = False
    visitor = header(request.headers, b"accept-encoding")
    visitor_ae = wire_text(visitor) if visitor is not None else None
    # facts 1.3.1 / 1.3.3: overwritten unless Respect Strong ETags forwards the visitor's
    origin_ae = visitor_ae if rse else ORIGIN_ACCEPT_ENCODING
    settings = cache_settings(request.method, request.target, params, zone.plan,
                              zone.cache_defaults)
    return RequestState(request, visitor_ae, origin_ae, rse, features, tuple(matched),
                        turned_off, settings, f"{os.urandom(8).hex()}-{COLO}", uninspected)


def origin_headers(state: RequestState) -> tuple[tuple[bytes, bytes], ...]:
    """The request headers the edge sets towards the origin (facts 8.6), and the
    Accept-Encoding it sends unless Respect Strong ETags forwards the visitor's (1.3)."""
    req = state.request
    forwarded = header(req.headers, b"x-forwarded-for")
    ip = req.client_ip.encode()
    scheme = req.scheme.encode()
    edge = (
        (b"cf-ray", state.ray.encode()),
        (b"cf-connecting-ip", ip),
        (b"x-forwarded-for", forwarded + b", " + ip if forwarded else ip),
        (b"x-forwarded-proto", scheme),
        (b"cf-visitor", b'{"scheme":"%s"}' % scheme),
        (b"cdn-loop", b"cloudflare"),
    )
    if state.respect_strong_etags:
        return edge
    return (*edge, (b"accept-encoding", ORIGIN_ACCEPT_ENCODING.encode()))


def hostname(host: str) -> str:
    """The host name of a Host value, without port or brackets."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
