"""Polish (facts 3.5): which images it applies to, and the header it adds.

Pure: facts in, verdict out. The image bytes are not recompressed: what matters for ETags
is that Polish changes them, so the ETag is weakened (modelled, 3.5.6) and `cf-polished`
says so.
"""

from __future__ import annotations

from typing import NamedTuple

# origin WebP is neither converted nor optimized (3.5.2); SVG is not a raster Polish handles
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif")
UNCACHEABLE = ("private", "no-store", "no-cache")


class Verdict(NamedTuple):
    mode: str  # the Polish mode that applies, "" when it does not
    note: str = ""  # why Polish, though on, skipped this image


def applies(mode: str, plan: str, media_type: str, status: int, vary: list[str],
            cache_control: dict[str, str | None]) -> Verdict:
    if not mode or mode == "off" or media_type not in IMAGE_TYPES:
        return Verdict("")
    if plan == "free":
        return Verdict("", "Polish is on but needs a Pro plan or above (facts 3.5)")
    if status != 200:
        return Verdict("", f"Polish skipped: status {status} (only 200 images are cached)")
    other = [v for v in vary if v and v != "accept-encoding"]
    if other:
        return Verdict("", "Polish skipped (cf-polished status vary_header_present): the "
                           f"origin varies on {', '.join(other)} (facts 3.5.3)")
    blocked = [d for d in UNCACHEABLE if d in cache_control]
    if blocked:
        return Verdict("", f"Polish skipped: Cache-Control {', '.join(blocked)} makes the "
                           "image uncacheable, and Polish works on cached images (facts 3.5.3)")
    return Verdict(mode)


def header(original_size: int) -> bytes:
    """cf-polished as Cloudflare sends it for an optimized image (3.5.4)."""
    return f"origSize={original_size}".encode()
