"""http_response_cache_settings (facts 5.2): Cache Response Rules, whose expressions may
read the response; what they strip before the object is stored."""

from __future__ import annotations

from addon.config.parameters import CacheResponseParameters
from addon.config.zone import Zone
from addon.expressions import FieldValues
from addon.http.messages import Request
from addon.http.messages import Response


def response_cache_rules(zone: Zone, request: Request, response: Response
                         ) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The headers stripped before caching, and the labels of the rules that matched.
    Last match wins per setting."""
    if not zone.cache_response_rules:
        return (), ()
    params, labels = CacheResponseParameters(), []
    for rule in zone.matching("cache_response_rules", FieldValues(request, response)):
        assert isinstance(rule.action_parameters, CacheResponseParameters)
        params = params.then(rule.action_parameters)
        labels.append(rule.label)
    return params.stripped, tuple(labels)
