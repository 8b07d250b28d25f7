"""The cache's two phases in the exchange (facts 10, steps 2 to 4): the lookup before the
origin is asked, and what the origin's answer does to the stored object.

Plain data in, plain data out; the clock is a parameter, so a recording replays with the
times it was made at.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

from addon.cache.freshness import DEFAULT_MAX_SIZE
from addon.cache.freshness import MAX_SIZE
from addon.cache.freshness import freshness
from addon.cache.key import cache_key
from addon.cache.settings import CacheSettings
from addon.cache.store import CachedObject
from addon.cache.store import Store
from addon.http.conditional import CONDITIONAL_HEADERS
from addon.http.conditional import http_date
from addon.http.conditional import parse_http_date
from addon.http.conditional import usable_etag
from addon.http.etag import parse_etag
from addon.http.headers import Headers
from addon.http.headers import edit_headers
from addon.http.headers import header
from addon.http.headers import header_values
from addon.http.headers import wire_text
from addon.http.messages import Request
from addon.http.messages import Response
from addon.vocabulary import CacheStatus

BYPASS = CacheStatus.BYPASS
DYNAMIC = CacheStatus.DYNAMIC
EXPIRED = CacheStatus.EXPIRED
HIT = CacheStatus.HIT
MISS = CacheStatus.MISS
REVALIDATED = CacheStatus.REVALIDATED
STALE = CacheStatus.STALE
UPDATING = CacheStatus.UPDATING

ORIGIN_FAILURES = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527})
# connection-level headers: not part of the stored object; its length is stated instead
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
                        b"upgrade", b"proxy-connection", b"content-length"})


@dataclass(frozen=True)
class OriginRequest:
    """How the edge changes the visitor's request before it goes to the origin."""

    method: str
    remove: tuple[bytes, ...] = ()  # lower-case header names
    set: tuple[tuple[bytes, bytes], ...] = ()

    def applied_to(self, request: Request) -> Request:
        """The request as the edge sends it, its headers edited in one pass."""
        edits = [*((name, None) for name in self.remove), *self.set]
        return replace(request, method=self.method, headers=edit_headers(request.headers, edits))


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class Lookup:
    status: CacheStatus  # DYNAMIC, MISS, HIT, EXPIRED or UPDATING
    key: str | None
    settings: CacheSettings
    reason: str
    obj: CachedObject | None = None
    origin: OriginRequest | None = None  # None: the origin is not asked (HIT, UPDATING)
    background: OriginRequest | None = None  # UPDATING: the revalidation sent meanwhile


@dataclass  # not frozen: built per request, and frozen init is 3x slower
class Served:
    """What the visitor is served from: the origin's response or a stored object."""

    status: CacheStatus
    response: Response
    reason: str
    key: str | None = None
    age: int | None = None  # Age header; None on responses not served from cache
    stored: bool = False  # the edge holds this response, so it answers conditionals itself
    last_modified: bytes | None = None  # Smart Edge Revalidation's, when the origin had none
    from_store: bool = False  # `response` is a stored object, not what the origin just sent
    removed: tuple[bytes, ...] = ()  # origin headers the edge did not keep (rules, 6.7)
    # the origin's answer cannot be used: ask again with this (the full representation)
    refetch: OriginRequest | None = None


def lookup(store: Store | None, settings: CacheSettings, request: Request,
           now: float) -> Lookup:
    if not settings.eligible or store is None:
        return Lookup(DYNAMIC, None, settings, settings.reason,
                      origin=OriginRequest(request.method))
    key = cache_key(request.scheme, request.host, request.target, request.headers,
                    settings.cache_key)
    obj = store.get(key)
    cold = OriginRequest("GET", CONDITIONAL_HEADERS)  # facts 2.4.1, 1.7.1, 1.8.8
    if obj is None:
        return Lookup(MISS, key, settings, f"{settings.reason}; not in cache, fetched from "
                      "the origin without the visitor's validators", origin=cold)
    if obj.fresh(now):
        return Lookup(HIT, key, settings, f"served from cache (age {obj.age(now)} s of "
                      f"{obj.ttl} s)", obj=obj)
    revalidate = replace(cold, set=revalidation_headers(obj))
    if obj.within_stale_while_revalidate(now):
        return Lookup(UPDATING, key, settings, "expired, served stale while it is "
                      "revalidated in the background (stale-while-revalidate, facts 2.4.3, "
                      "6.15)", obj=obj, background=revalidate)
    return Lookup(EXPIRED, key, settings, "expired, revalidated with the origin using the "
                  "stored validators (facts 2.4.2)", obj=obj, origin=revalidate)


def revalidation_headers(obj: CachedObject) -> tuple[tuple[bytes, bytes], ...]:
    """The stored validators, only those that are valid (facts 2.4.7)."""
    out = []
    etag = usable_etag(header_values(obj.headers, b"etag"))
    if etag is not None:
        out.append((b"if-none-match", etag))
    lm = header(obj.headers, b"last-modified")
    if parse_http_date(lm) is not None:
        out.append((b"if-modified-since", lm))
    elif obj.generated_last_modified is not None:
        out.append((b"if-modified-since", obj.generated_last_modified))
    return tuple(out)


def serve_stored(lk: Lookup, now: float) -> Served:
    """HIT and UPDATING: the stored object, without asking the origin."""
    assert lk.obj is not None
    return _from_object(lk.status, lk.obj, lk.reason, now)


def serve_stale(lk: Lookup, now: float, why: str) -> Served:
    """EXPIRED, and the origin cannot be reached: the stored object, served STALE."""
    assert lk.obj is not None
    return _from_object(STALE, lk.obj, f"{why}; the expired object was served stale "
                        "(facts 6.13, 6.21)", now)


def after_origin(store: Store | None, lk: Lookup, request: Request,
                 response: Response, plan: str, strip: tuple[bytes, ...], now: float,
                 recorded: bool = False) -> Served:
    """The origin answered a MISS or an EXPIRED revalidation (or, for DYNAMIC, anything;
    without a store every lookup is DYNAMIC).

    `strip`: headers Cache Response Rules remove before caching (facts 5.2.2).
    """
    if lk.status is DYNAMIC:
        return Served(DYNAMIC, response, lk.reason)
    if store is None:
        return Served(DYNAMIC, response, "the cache was switched off (cf_cache) while the "
                      "origin was asked")
    assert lk.key is not None
    obj = lk.obj
    if lk.status is EXPIRED and obj is not None:
        if response.status == 304:
            answer = tuple((k, v) for k, v in response.headers if k.lower() not in strip)
            why = not_selected(obj.headers, answer)
            if why is None:
                return _revalidated(store, lk, obj, request, response, plan, now)
            if recorded:  # nothing to ask again: the stored object, neither updated nor fresh
                return _from_object(EXPIRED, obj, f"{why}; the recording holds no full "
                                    "response, so the stored object was served as it is", now)
            return Served(EXPIRED, response, f"{why}; the edge asked for the full response",
                          lk.key, refetch=OriginRequest("GET", CONDITIONAL_HEADERS))
        if response.status in ORIGIN_FAILURES and obj.stale_on_error:
            return _from_object(STALE, obj, f"the origin failed ({response.status}); the "
                                "expired object was served stale (facts 6.13, 6.16)", now)
    if response.status == 304:
        why = ("the recording holds only the origin's 304 to the visitor's own validators, "
               "so there is no body to fill the cache with; relayed as recorded" if recorded
               else "the origin answered 304 to a request without validators; relayed")
        return Served(lk.status, response, why, lk.key)
    if response.streamed or response.body is None:
        store.remove(lk.key)
        return Served(BYPASS, response, "the body was streamed, not buffered, so it could "
                      "not be stored", lk.key)
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in strip)
    body = response.body
    fr = freshness(lk.settings, plan, request.headers, response.status, headers, len(body),
                   now)
    status = lk.status if fr.status is MISS else fr.status
    if not fr.store:
        store.remove(lk.key)
        return Served(status, replace(response, headers=headers), f"{lk.reason}: {fr.reason}",
                      lk.key, removed=strip)
    kept = tuple((k, v) for k, v in headers if k.lower() not in fr.strip)
    stored = tuple((k, v) for k, v in kept if k.lower() not in HOP_BY_HOP)
    stored += ((b"Content-Length", str(len(body)).encode()),)
    obj = CachedObject(lk.key, request.url, response.status, stored, body, now, fr.ttl,
                       fr.stale_while_revalidate, fr.stale_on_error,
                       _smart_last_modified(kept, strip, now))
    removed = (*strip, *fr.strip)
    if not store.put(obj):
        return Served(BYPASS, replace(response, headers=kept), "larger than the whole "
                      "cache (cf_cache_size)", lk.key, removed=removed)
    reason = f"{lk.reason}; {fr.reason}"
    return Served(status, replace(response, headers=kept), reason, lk.key, stored=True,
                  last_modified=obj.generated_last_modified, removed=removed)


def before_body(store: Store | None, lk: Lookup, request: Request,
                response: Response, plan: str, strip: tuple[bytes, ...], now: float
                ) -> tuple[Served, int]:
    """The cache's verdict on an origin response whose body is going to stream through
    the edge, from its headers: what the visitor is told, and how many of the body's
    bytes to keep for storing when the stream has ended whole (0: none). after_origin()
    stores them then."""
    if lk.status is DYNAMIC or store is None:
        return after_origin(store, lk, request, response, plan, strip, now), 0
    assert lk.key is not None
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in strip)
    length = header(headers, b"content-length")
    size = int(length) if length is not None and length.strip().isdigit() else 0
    fr = freshness(lk.settings, plan, request.headers, response.status, headers, size, now)
    status = lk.status if fr.status is MISS else fr.status
    if not fr.store:
        store.remove(lk.key)
        return Served(status, replace(response, headers=headers), f"{lk.reason}: {fr.reason}",
                      lk.key, removed=strip), 0
    kept = tuple((k, v) for k, v in headers if k.lower() not in fr.strip)
    keep = min(store.capacity, MAX_SIZE.get(plan, DEFAULT_MAX_SIZE))
    return Served(status, replace(response, headers=kept),
                  f"{lk.reason}; {fr.reason} (kept when the stream ends whole)", lk.key,
                  last_modified=_smart_last_modified(kept, strip, now),
                  removed=(*strip, *fr.strip)), keep


def not_selected(stored: Headers, answer: Headers) -> str | None:
    """Why a 304 does not identify the stored response for update (RFC 9111 4.3.4), or
    None when it does. A strong validator must equal the stored one strongly; a weak one
    must match the stored ETag weakly; a 304 without an ETag is taken as answering the
    validators the edge sent."""
    new = parse_etag(header_values(answer, b"etag"))
    if new is None or new.kind == "malformed":
        return None
    old = parse_etag(header_values(stored, b"etag"))
    shown = f"the origin's 304 carries {wire_text(new.raw)}"
    if old is None or old.kind == "malformed":
        return f"{shown}, but the stored response has no ETag to match it (RFC 9111 4.3.4)"
    if new.kind == "strong" and (old.kind != "strong" or old.raw != new.raw):
        return (f"{shown}, a strong validator that matches no stored response (stored: "
                f"{wire_text(old.raw)}), so it must not update it (RFC 9111 4.3.4)")
    if new.kind == "weak" and new.raw[2:] != old.raw.removeprefix(b"W/"):
        return (f"{shown}, which does not match the stored {wire_text(old.raw)} (RFC 9111 "
                "4.3.4)")
    return None


def after_background(store: Store, lk: Lookup, request: Request,
                     response: Response, plan: str, strip: tuple[bytes, ...],
                     now: float) -> str:
    """The background revalidation of an UPDATING object came back; what it did."""
    assert lk.obj is not None and lk.key is not None
    if response.status == 304:
        why = not_selected(lk.obj.headers, response.headers)
        if why is not None:
            return f"{why}; the stale object stays and is revalidated again next time"
        _revalidated(store, lk, lk.obj, request, response, plan, now)
        return "revalidated: the origin answered 304, the stored object is fresh again"
    if response.status in ORIGIN_FAILURES:
        return f"the origin failed ({response.status}); the stale object stays"
    served = after_origin(store, replace(lk, status=EXPIRED, obj=None), request, response,
                          plan, strip, now)
    return f"replaced by the origin's {response.status}: {served.reason}"


def _revalidated(store: Store, lk: Lookup, obj: CachedObject, request: Request,
                 response: Response, plan: str, now: float) -> Served:
    # the 304's headers update the stored ones (RFC 9111 4.3.4); its TTL applies (2.4.8)
    updated = {k.lower() for k, _ in response.headers}
    skip = {b"content-length", b"transfer-encoding", b"content-encoding", b"connection"}
    headers = tuple((k, v) for k, v in obj.headers if k.lower() not in updated or
                    k.lower() in skip) + tuple(
        (k, v) for k, v in response.headers if k.lower() not in skip)
    fr = freshness(lk.settings, plan, request.headers, obj.status, headers, len(obj.body), now)
    fresh = CachedObject(obj.key, obj.url, obj.status, headers, obj.body, now,
                         fr.ttl if fr.store else 0, fr.stale_while_revalidate,
                         fr.stale_on_error, obj.generated_last_modified)
    reason = ("expired; the origin answered 304 to the edge's revalidation, so the stored "
              "object was served (facts 2.4.2, 2.4.3)")
    if fr.store:
        store.put(fresh)
    else:  # the updated headers forbid keeping it: served this once, then gone
        store.remove(obj.key)
        reason += f", and removed from the cache: {fr.reason}"
    served = _from_object(REVALIDATED, fresh, reason, now)
    # no Age on REVALIDATED (facts 6.14, newer reading)
    return replace(served, age=None, stored=fr.store)


def _from_object(status: CacheStatus, obj: CachedObject, reason: str, now: float) -> Served:
    return Served(status, Response(obj.status, obj.headers, obj.body), reason, obj.key,
                  age=obj.age(now), stored=True, last_modified=obj.generated_last_modified,
                  from_store=True)


def _smart_last_modified(headers: Headers, strip: tuple[bytes, ...], now: float
                         ) -> bytes | None:
    """Smart Edge Revalidation (facts 2.4.4): an object stored without ETag and
    Last-Modified gets the time it was cached; not when a rule stripped them (2.2.11)."""
    if b"etag" in strip or b"last-modified" in strip:
        return None
    names = {k.lower() for k, _ in headers}
    if b"etag" in names or b"last-modified" in names:
        return None
    return http_date(now)
