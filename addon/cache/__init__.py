"""The edge cache (facts 1.5, 1.7, 1.8, 2.4, 5, 6, 8, 10).

- `settings`: eligibility at request time (default extensions, cache rules);
- `key`: the cache key, default and custom;
- `freshness`: whether a response is stored and for how long (Origin Cache Control);
- `store`: the objects, bounded in bytes, least recently used out first;
- `conditional`: HTTP dates, validators, the edge's 304s;
- `phases`: the lookup before the origin and what the origin's answer does.
"""

from addon.cache.phases import ORIGIN_FAILURES
from addon.cache.phases import Lookup
from addon.cache.phases import OriginRequest
from addon.cache.phases import Served
from addon.cache.phases import after_background
from addon.cache.phases import after_origin
from addon.cache.phases import before_body
from addon.cache.phases import lookup
from addon.cache.phases import serve_stale
from addon.cache.phases import serve_stored
from addon.cache.settings import CacheSettings
from addon.cache.settings import cache_settings
from addon.cache.store import Store

__all__ = ["ORIGIN_FAILURES", "CacheSettings", "Lookup", "OriginRequest", "Served", "Store",
           "after_background", "after_origin", "before_body", "cache_settings", "lookup",
           "serve_stale", "serve_stored"]
