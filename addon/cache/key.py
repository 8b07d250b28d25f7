"""The cache key (facts 6.18, 5.1.4), as readable text so the log can show it.

Not varied by Accept-Encoding unless a cache rule puts it there with `header.contains`
(facts 1.5.1, 1.5.7): by default one object per URL, whatever the visitor accepts.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from addon.config.parameters import ALL
from addon.config.parameters import CacheKey
from addon.config.parameters import QuerySelection
from addon.http.fields import cookies
from addon.http.headers import Headers
from addon.http.headers import header
from addon.http.headers import header_index
from addon.http.headers import wire_text

DEFAULT = CacheKey()
# facts 6.18: request headers that are part of the default key when present
DEFAULT_KEY_HEADERS = (b"origin", b"x-http-method-override", b"x-http-method",
                       b"x-method-override", b"x-forwarded-host", b"x-host",
                       b"x-original-url", b"x-rewrite-url", b"forwarded")  # fmt: skip


def cache_key(scheme: str, host: str, target: str, headers: Headers,
              params: CacheKey = DEFAULT) -> str:
    """The key of the object a request maps to. `params` is the cache rules' `cache_key`."""
    path, _, query = target.partition("?")
    query = _query(query, params.query, params.ignore_query_strings_order)
    # host.resolved: the host after origin rules; there are none here, so it is the same
    # host (kept in the key either way)
    parts = [f"{scheme}://{host.lower()}{path}" + (f"?{query}" if query else "")]
    index = header_index(headers)
    for name in DEFAULT_KEY_HEADERS:
        if name == b"origin" and params.exclude_origin:
            continue
        values = index.get(name)
        if values:
            parts.append(f"{name.decode()}={wire_text(b', '.join(values))}")
    scheme_header = b", ".join(index[b"x-forwarded-scheme"]) \
        if b"x-forwarded-scheme" in index else None
    if scheme_header is not None and scheme_header.lower() not in (b"http", b"https"):
        parts.append(f"x-forwarded-scheme={wire_text(scheme_header)}")
    for name in params.header_include:
        value = header(headers, name.lower().encode())
        parts.append(f"header {name.lower()}={wire_text(value) if value is not None else ''}")
    for name in params.header_check_presence:
        present = header(headers, name.lower().encode()) is not None
        parts.append(f"header {name.lower()} {'present' if present else 'absent'}")
    for name, wanted in params.header_contains:
        value = header(headers, name.lower().encode())
        tokens = {t.split(b";")[0].strip().lower() for t in (value or b"").split(b",")}
        found = [w for w in wanted if w.lower().encode() in tokens]
        parts.append(f"header {name.lower()} contains [{','.join(found)}]")
    if params.cookie_include or params.cookie_check_presence:
        jar = cookies(header(headers, b"cookie"))
        for name in params.cookie_include:
            value = wire_text(jar[name][0]) if name in jar else ""
            parts.append(f"cookie {name}={value}")
        for name in params.cookie_check_presence:
            parts.append(f"cookie {name} {'present' if name in jar else 'absent'}")
    return " | ".join(parts)


def _query(query: str, rules: QuerySelection, sort: bool) -> str:
    include, exclude = rules.include, rules.exclude
    if include is None and exclude is None and not sort:
        return query
    pairs = [p for p in query.split("&") if p]
    if include == ALL or exclude is None and include is None:
        kept = pairs
    elif include is not None:
        kept = [p for p in pairs if _param(p) in include]
    elif exclude == ALL:
        kept = []
    else:
        assert exclude is not None
        kept = [p for p in pairs if _param(p) not in exclude]
    return "&".join(sorted(kept) if sort else kept)


def _param(pair: str) -> str:
    return (parse_qsl(pair, keep_blank_values=True) or [(pair.split("=", 1)[0], "")])[0][0]

