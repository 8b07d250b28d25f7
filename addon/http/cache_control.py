"""Cache-Control directives (RFC 9111 section 5.2): what the edge reads from the origin."""

from __future__ import annotations

import re

# directive = token [ "=" ( token / quoted-string ) ], separated by commas; a quoted
# string may itself contain commas (`private="set-cookie, x"`).
_DIRECTIVE = re.compile(
    rb'\s*([^\s,=";]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^\s,";]*))?[^,]*(?:,|$)', re.DOTALL
)


def parse_cache_control(value: bytes | None) -> dict[str, str]:
    """Directive name (lower case) -> argument ("" when none); the first occurrence wins.

    Never raises: what does not parse as a directive is skipped, as caches do.
    """
    directives: dict[str, str] = {}
    if not value:
        return directives
    for m in _DIRECTIVE.finditer(value):
        name = m.group(1).decode("latin-1").lower()
        arg = m.group(2) or b""
        if arg.startswith(b'"'):
            arg = re.sub(rb"\\(.)", rb"\1", arg[1:-1] if arg.endswith(b'"') and len(arg) > 1
                         else arg[1:])
        directives.setdefault(name, arg.decode("latin-1"))
    return directives
