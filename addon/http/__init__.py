"""General HTTP, nothing of Cloudflare's: header bytes (headers), the messages the core
works on (messages), entity tags (etag), Accept-Encoding (accept_encoding),
Cache-Control (cache_control), content codings with bounded decoding (codings), dates and
validators (conditional), byte ranges (ranges), and the small field parsers (fields)."""
