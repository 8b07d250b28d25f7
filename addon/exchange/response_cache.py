"""http_response_cache_settings (facts 5.2): Cache Response Rules, whose expressions may
read the response. What they do becomes headers on the response the cache then reads, so
the cache's own rules (facts 6.5, 6.9) do the rest:

- set_cache_settings: headers stripped before the object is stored;
- set_cache_control: the Cache-Control visitors get (directives without `cloudflare_only`)
  and, for the edge alone, a Cloudflare-CDN-Cache-Control with every directive applied to
  the header the edge would have read (it beats the origin's CDN-Cache-Control, facts
  5.2.3, 6.9; the edge never forwards it, facts 8.5);
- set_cache_tags: the object's Cache-Tag (the origin's, edited), which purge_tag reads and
  the edge never forwards (facts 6.22).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

from addon.cache.store import cache_tags
from addon.config.parameters import CacheControlParameters
from addon.config.parameters import CacheResponseParameters
from addon.config.parameters import CacheTagParameters
from addon.config.parameters import DirectiveEdit
from addon.config.zone import Zone
from addon.expressions import FieldValues
from addon.http.cache_control import parse_cache_control
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.messages import Request
from addon.http.messages import Response

EDGE_ONLY = b"cloudflare-cdn-cache-control"
EDGE_SOURCES = (EDGE_ONLY, b"cdn-cache-control", b"cache-control")  # facts 6.9


@dataclass(frozen=True)
class CacheRules:
    """What Cache Response Rules did to one response."""

    response: Response  # as the cache reads it
    strip: tuple[bytes, ...] = ()  # headers stripped before caching
    labels: tuple[str, ...] = ()  # the rules that matched
    note: str = ""  # for the cache's reason, when they changed Cache-Control


def response_cache_rules(zone: Zone, request: Request, response: Response) -> CacheRules:
    """Last match wins per setting and per directive."""
    if not zone.cache_response_rules:
        return CacheRules(response)
    params, labels = CacheResponseParameters(), []
    directives: dict[str, DirectiveEdit] = {}
    tags: list[str] | None = None
    for rule in zone.matching("cache_response_rules", FieldValues(request, response)):
        p = rule.action_parameters
        if isinstance(p, CacheResponseParameters):
            params = params.then(p)
        elif isinstance(p, CacheControlParameters):
            directives.update((d.name, d) for d in p.directives)
        elif isinstance(p, CacheTagParameters):
            tags = p.apply(tags if tags is not None else cache_tags(response.headers))
        labels.append(rule.label)
    edits = _cache_control(response, tuple(directives.values())) if directives else []
    if tags is not None:
        edits.append((b"cache-tag", ", ".join(tags).encode() if tags else None))
    note = ""
    if edits:
        response = replace(response, headers=edit_headers(response.headers, tuple(edits)))
    if directives:
        note = "Cache-Control as Cache Response Rules set it: " + ", ".join(
            (d.text() + (" (edge only)" if d.cloudflare_only else "")
             if d.operation == "set" else f"{d.name} removed") for d in directives.values())
        note += " (facts 5.2.2)"
    return CacheRules(response, params.stripped, tuple(labels), note)


def _cache_control(response: Response, edits: tuple[DirectiveEdit, ...]
                   ) -> list[tuple[bytes, bytes | None]]:
    out: list[tuple[bytes, bytes | None]] = []
    visible = tuple(d for d in edits if not d.cloudflare_only)
    if visible:
        value = _edited(header(response.headers, b"cache-control"), visible)
        out.append((b"cache-control", value or None))
    source = next((name for name in EDGE_SOURCES if header(response.headers, name)
                   is not None), b"cache-control")
    if source != b"cache-control" or len(visible) < len(edits):
        # present but empty when nothing is left: the edge then has no directive to follow
        out.append((EDGE_ONLY, _edited(header(response.headers, source), edits)))
    return out


def _edited(value: bytes | None, edits: tuple[DirectiveEdit, ...]) -> bytes:
    directives = dict(parse_cache_control(value))
    for d in edits:
        directives.pop(d.name, None)
        if d.operation == "set":
            directives[d.name] = d.text().partition("=")[2]
    return ", ".join(k if not v else f"{k}={_quoted(v)}"
                     for k, v in directives.items()).encode("latin-1")


def _quoted(arg: str) -> str:
    return f'"{arg}"' if not arg.startswith('"') and any(c in arg for c in ", ") else arg
