"""The cache's storage: one object per key, bounded in bytes, least recently used first out.

An object is the origin's response as received (status, headers, raw body), so every
visitor's copy goes through the delivery phases again (facts 1.5.2, 10 step 4).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import field

from addon.http.headers import Headers

OVERHEAD = 256  # bytes counted per object besides its body and headers


@dataclass
class CachedObject:
    key: str
    url: str
    status: int
    headers: Headers
    body: bytes
    stored_at: float  # when it was stored or last revalidated (Age counts from here)
    ttl: int
    stale_while_revalidate: int = 0
    stale_on_error: bool = True
    # Smart Edge Revalidation: the time it was cached, for an object without validators
    generated_last_modified: bytes | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + OVERHEAD

    def tags(self) -> set[str]:
        return {t.lower() for t in cache_tags(self.headers)}  # purged case-insensitively

    def age(self, now: float) -> int:
        return max(int(now - self.stored_at), 0)

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.ttl

    def within_stale_while_revalidate(self, now: float) -> bool:
        return now - self.stored_at < self.ttl + self.stale_while_revalidate


def cache_tags(headers: Headers) -> list[str]:
    """An object's tags: its Cache-Tag, comma-separated (facts 6.22)."""
    values = [v for k, v in headers if k.lower() == b"cache-tag"]
    return [t.strip() for v in values for t in v.decode("latin-1").split(",") if t.strip()]


class Store:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.objects: OrderedDict[str, CachedObject] = OrderedDict()
        self.bytes = 0
        self.counts = {"hits": 0, "stored": 0, "evicted": 0, "purged": 0, "too_large": 0}

    def get(self, key: str) -> CachedObject | None:
        obj = self.objects.get(key)
        if obj is not None:
            self.objects.move_to_end(key)
        return obj

    def hit(self) -> None:
        """A visitor was served a stored object without the origin (HIT, UPDATING)."""
        self.counts["hits"] += 1

    def put(self, obj: CachedObject) -> bool:
        """Store `obj`, evicting the least recently used; False if it cannot fit at all."""
        self.remove(obj.key)
        if obj.size > self.capacity:
            self.counts["too_large"] += 1
            return False
        self._evict(obj.size)
        self.objects[obj.key] = obj
        self.bytes += obj.size
        self.counts["stored"] += 1
        return True

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._evict(0)

    def _evict(self, room: int) -> None:
        while self.bytes + room > self.capacity and self.objects:
            _, old = self.objects.popitem(last=False)
            self.bytes -= old.size
            self.counts["evicted"] += 1

    def remove(self, key: str) -> bool:
        obj = self.objects.pop(key, None)
        if obj is not None:
            self.bytes -= obj.size
        return obj is not None

    def purge(self, prefix: str | None = None, url: str | None = None,
              tag: str | None = None) -> int:
        """Purge everything, the objects of one URL, those whose URL starts with prefix, or
        those tagged `tag` (their Cache-Tag, case-insensitive, facts 6.22)."""
        wanted = tag.strip().lower() if tag is not None else None
        keys = [k for k, o in self.objects.items()
                if (prefix is None and url is None and wanted is None)
                or (url is not None and o.url == url)
                or (prefix is not None and o.url.startswith(prefix))
                or (wanted is not None and wanted in o.tags())]
        for key in keys:
            self.remove(key)
        self.counts["purged"] += len(keys)
        return len(keys)

    def stats(self) -> dict[str, int]:
        return {"objects": len(self.objects), "bytes": self.bytes, "capacity": self.capacity,
                **self.counts}
