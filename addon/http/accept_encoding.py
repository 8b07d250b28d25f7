"""The visitor's Accept-Encoding (RFC 9110 section 12.5.3), as the edge reads it (facts 1.1.12)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# Content-coding tokens the edge can produce or decode, in header spelling.
GZIP, BROTLI, ZSTD, IDENTITY = "gzip", "br", "zstd", "identity"
# Codings the edge decodes. It asks the origin for br and gzip only (facts 1.3.1); zstd and
# deflate arrive when Respect Strong ETags forwards the visitor's Accept-Encoding (1.3.3).
DECODABLE = (GZIP, BROTLI, ZSTD, "deflate", IDENTITY)


@dataclass(frozen=True)
class AcceptEncoding:
    raw: str | None
    qvalues: dict[str, float]  # lowercased coding -> q; "*" included when present

    def accepts(self, coding: str) -> bool:
        """Listed with q > 0, or not listed and covered by `*` with q > 0.

        identity is acceptable unless refused; the edge still sends identity then,
        having no documented 406 path.
        """
        coding = coding.lower()
        if coding in self.qvalues:
            return self.qvalues[coding] > 0
        if "*" in self.qvalues:
            return self.qvalues["*"] > 0
        return coding == IDENTITY


@lru_cache(maxsize=1024)  # visitors send few distinct values; the result is never mutated
def parse_accept_encoding(value: str | None) -> AcceptEncoding:
    """Parse the header; a missing header means identity only, as curl without flags gets."""
    qvalues: dict[str, float] = {}
    for element in (value or "").split(","):
        coding, *params = (p.strip() for p in element.split(";"))
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, v = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0  # an unreadable weight is not an acceptance
                if not 0 <= q <= 1:
                    q = 0.0
        qvalues.setdefault(coding.lower(), q)
    return AcceptEncoding(value, qvalues)
