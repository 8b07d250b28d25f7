"""Cloudflare's documented compression limits and defaults (facts 0.3-0.8, 1.1, 1.2)."""

from __future__ import annotations

# facts 0.3 / 1.2.1: the documented list, matched on the media type.
COMPRESSIBLE_MEDIA_TYPES = frozenset(
    [
        "text/html",
        "text/richtext",
        "text/plain",
        "text/css",
        "text/x-script",
        "text/x-component",
        "text/x-java-source",
        "text/x-markdown",
        "application/javascript",
        "application/x-javascript",
        "text/javascript",
        "text/js",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "application/x-perl",
        "application/x-httpd-cgi",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "application/vnd.api+json",
        "application/x-protobuf",
        "application/json",
        "multipart/bag",
        "multipart/mixed",
        "application/xhtml+xml",
        "font/ttf",
        "font/otf",
        "font/x-woff",
        "image/svg+xml",
        "application/vnd.ms-fontobject",
        "application/ttf",
        "application/x-ttf",
        "application/otf",
        "application/x-otf",
        "application/truetype",
        "application/opentype",
        "application/x-opentype",
        "application/font-woff",
        "application/eot",
        "application/font",
        "application/font-sfnt",
        "application/wasm",
        "application/javascript-binast",
        "application/manifest+json",
        "application/ld+json",
        "application/graphql+json",
        "application/geo+json",
    ]
)

COMPRESSIBLE_STATUSES = frozenset({200, 403, 404})  # facts 0.5
MIN_SIZE = {"gzip": 48, "br": 50, "zstd": 50}  # facts 0.4, bytes of the uncompressed body
NO_BODY_STATUSES = frozenset({204, 304})

PLANS = ("free", "pro", "business", "enterprise")
# facts 0.8 (documented default) + 1.1.13 (fallback order, modelled)
PLAN_DEFAULT_ORDER = {
    "free": ("zstd", "br", "gzip"),
    "pro": ("br", "gzip"),
    "business": ("br", "gzip"),
    "enterprise": ("gzip",),
}
# `auto` in a compression rule: "whatever the visitor supports, in an order Cloudflare
# chooses" (facts 1.1.3); modelled as the plan's order followed by the other algorithms.
AUTO_ORDER = {
    plan: order + tuple(c for c in ("br", "gzip", "zstd") if c not in order)
    for plan, order in PLAN_DEFAULT_ORDER.items()
}

# Compression-rule algorithm names (Cloudflare API) -> content-coding tokens.
ALGORITHM_CODINGS = {"gzip": "gzip", "brotli": "br", "zstd": "zstd"}
ALGORITHM_KEYWORDS = ("none", "auto", "default")
ORIGIN_ACCEPT_ENCODING = "br, gzip"  # facts 0.9 / 1.3.1
