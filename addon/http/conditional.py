"""Conditional requests at the edge: HTTP dates, validators, If-None-Match and
If-Modified-Since (RFC 9110 sections 5.6.7, 8.8, 13.1; facts 2.4).
"""

from __future__ import annotations

import calendar
import re
import time

from addon.http.etag import parse_etag
from addon.http.headers import Headers
from addon.http.headers import header

# The three forms RFC 9110 5.6.7 lets a recipient accept; anything else (a Unix timestamp,
# an ISO date) is not an HTTP date, and Cloudflare cannot revalidate with it (facts 2.4.7).
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MON = "|".join(_MONTHS)
_IMF = re.compile(rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ({_MON}) (\d{{4}}) "
                  r"(\d\d):(\d\d):(\d\d) GMT")
_RFC850 = re.compile(rf"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
                     rf"(\d\d)-({_MON})-(\d\d) (\d\d):(\d\d):(\d\d) GMT")
_ASCTIME = re.compile(rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ({_MON}) ([ \d]\d) "
                      r"(\d\d):(\d\d):(\d\d) (\d{4})")
_ETAG_ITEM = re.compile(rb'\s*((?:W/)?"[^"]*")\s*(?:,|$)')


def parse_http_date(value: bytes | None) -> float | None:
    """Seconds since the epoch, or None when `value` is not an HTTP date."""
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    try:
        if m := _IMF.fullmatch(text):
            day, mon, year, hh, mm, ss = m.groups()
        elif m := _RFC850.fullmatch(text):
            day, mon, yy, hh, mm, ss = m.groups()
            year = str(2000 + int(yy) if int(yy) < 70 else 1900 + int(yy))  # RFC 9110 5.6.7
        elif m := _ASCTIME.fullmatch(text):
            mon, day, hh, mm, ss, year = m.groups()
        else:
            return None
        parts = (int(year), _MONTHS.index(mon) + 1, int(day), int(hh), int(mm), int(ss))
        if not (1 <= parts[2] <= 31 and parts[3] < 24 and parts[4] < 60 and parts[5] < 61):
            return None
        return float(calendar.timegm((*parts, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def http_date(seconds: float) -> bytes:
    """An IMF-fixdate, the form a sender must use."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds)).encode()


def _opaque(tag: bytes) -> bytes:
    return tag[2:] if tag.startswith(b"W/") else tag


def if_none_match(condition: bytes, etag: bytes | None) -> bool:
    """True when If-None-Match `condition` matches `etag` by the weak comparison
    (RFC 9110 13.1.2: `W/"x"` matches `"x"`), i.e. the answer is 304."""
    if condition.strip() == b"*":
        return etag is not None
    if etag is None:
        return False
    pos, tags = 0, []
    while pos < len(condition):
        m = _ETAG_ITEM.match(condition, pos)
        if not m or m.end() == pos:
            return False  # not a list of entity tags: the condition cannot match
        tags.append(m.group(1))
        pos = m.end()
    return _opaque(etag) in {_opaque(t) for t in tags}


def not_modified(request: Headers, etag: bytes | None, last_modified: bytes | None
                 ) -> str | None:
    """Whether the visitor's conditionals make this a 304, and by which validator.

    If-None-Match decides when present; If-Modified-Since only without it (RFC 9110 13.2.2).
    """
    inm = header(request, b"if-none-match")
    if inm is not None:
        return "If-None-Match" if if_none_match(inm, etag) else None
    ims = parse_http_date(header(request, b"if-modified-since"))
    lm = parse_http_date(last_modified)
    if ims is not None and lm is not None and lm <= ims:
        return "If-Modified-Since"
    return None


def usable_etag(values: list[bytes]) -> bytes | None:
    """The stored ETag if it is a valid entity tag the edge can revalidate with."""
    etag = parse_etag(values)
    return etag.raw if etag is not None and etag.kind != "malformed" else None


CONDITIONAL_HEADERS = (b"if-none-match", b"if-modified-since", b"if-range", b"if-match",
                       b"if-unmodified-since", b"range")  # fmt: skip
