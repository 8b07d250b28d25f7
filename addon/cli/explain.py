"""`python -m addon explain`: what Cloudflare would do to one response, without a proxy.

The origin's response comes as options or as a header dump in the form `curl -sD -` prints
(a file, or `-` for standard input). The body is made up: its size is `--size`, else the
dump's Content-Length, else 10 KiB; only its size and coding matter to the decision.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from addon import cache
from addon.config.loader import RulesFileError
from addon.config.loader import load_rules
from addon.config.zone import Zone
from addon.exchange import EdgeContext
from addon.exchange import Outcome
from addon.exchange import run
from addon.http import codings
from addon.http.headers import Headers
from addon.http.headers import header
from addon.http.headers import wire_text
from addon.http.messages import Request
from addon.http.messages import Response
from addon.mitm.zone_loader import BUNDLED_RULES

DEFAULT_SIZE = 10 * 1024
BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends over HTTPS


class ExplainError(Exception):
    """Bad input: the message says where and what."""


def parse_header_dump(text: str, name: str) -> tuple[int, Headers]:
    """The last response in a `curl -sD -` dump (after 100 Continue or redirects)."""
    blocks: list[tuple[int, list[tuple[bytes, bytes]]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("HTTP/"):
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
                raise ExplainError(f"{name}:{number}: not a status line such as "
                                   f"'HTTP/1.1 200 OK': {line!r}")
            blocks.append((int(parts[1]), []))
            continue
        if not blocks:
            raise ExplainError(f"{name}:{number}: expected a status line such as 'HTTP/1.1 "
                               f"200 OK' first (as `curl -sD -` prints), got {line!r}")
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip():
            raise ExplainError(f"{name}:{number}: not a header line ('Name: value'): {line!r}")
        blocks[-1][1].append((key.encode("latin-1", "replace"),
                              value.strip().encode("latin-1", "replace")))
    if not blocks:
        raise ExplainError(f"{name}: no response in it; give the output of `curl -sD - -o "
                           "/dev/null URL`")
    status, headers = blocks[-1]
    return status, tuple(headers)


def _header_option(value: str, option: str) -> tuple[bytes, bytes]:
    key, colon, rest = value.partition(":")
    if not colon or not key.strip():
        raise ExplainError(f"{option} {value!r}: write it as 'Name: value'")
    return key.strip().encode("latin-1", "replace"), rest.strip().encode("latin-1", "replace")


def _body(size: int, media: bytes, coding: str) -> bytes:
    if media.startswith(b"text/html"):
        filler = b"<p>made-up page body for explain</p>\n"
        body = b"<!DOCTYPE html><html><body>\n" + filler * (size // len(filler) + 1)
        body = body[:max(size - 15, 0)] + b"</body></html>\n"
    else:
        body = (b"made-up body for explain " * (size // 25 + 1))[:size]
    return codings.encode(body, coding) if coding in ("gzip", "br", "zstd", "deflate") else body


def explain(argv: list[str], stdin_text: str | None = None) -> str:
    """The explanation as text. Raises ExplainError on bad input (argparse exits itself on
    unknown options, with its usage message)."""
    args = _parser().parse_args(argv)
    if args.accept_encoding == "":
        args.accept_encoding = None  # the visitor sent none
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ExplainError(f"--url {args.url!r}: give an absolute http:// or https:// URL")
    try:
        zone = load_rules(Path(args.rules) if args.rules else BUNDLED_RULES)
    except RulesFileError as e:
        raise ExplainError(str(e)) from None
    origin, size, assumed = _origin(args, argv, stdin_text)
    request_headers = [(b"Host", url.netloc.encode())]
    if args.accept_encoding is not None:
        request_headers.append((b"Accept-Encoding", args.accept_encoding.encode()))
    request_headers += [_header_option(h, "--request-header") for h in args.request_header]
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    request = Request(method=args.method.upper(), scheme=url.scheme, host=url.netloc,
                      target=target, headers=tuple(request_headers))
    store = cache.Store(1 << 30)
    lines = [f"Request:   {request.method} {request.url}",
             f"           Accept-Encoding: {args.accept_encoding or '(none)'}",
             f"Origin:    {origin.status}, {size} bytes decoded{assumed}, " + ", ".join(
                 f"{wire_text(k)}: {wire_text(v)}" for k, v in origin.headers)]
    out = _run(zone, store, request, origin)
    lines += _what_happened(out)
    etag_out = out.exchange.decision.etag_out if out.exchange.decision else None
    lines.append("Revalidation: " + _revalidation(zone, store, request, origin, etag_out))
    return "\n".join(lines) + "\n"


def _origin(args: argparse.Namespace, argv: list[str], stdin_text: str | None
            ) -> tuple[Response, int, str]:
    """The origin's made-up response: from the dump and the options; its decoded size,
    and what was assumed about it."""
    status, headers = args.status, ()
    if args.file is not None:
        if args.file == "-":
            text, name = stdin_text if stdin_text is not None else sys.stdin.read(), "<stdin>"
        else:
            try:
                text, name = Path(args.file).read_text(encoding="latin-1"), args.file
            except OSError as e:
                raise ExplainError(f"{args.file}: cannot read it: {e.strerror}") from None
        status, headers = parse_header_dump(text, name)
        if any(a == "--status" or a.startswith("--status=") for a in argv):
            status = args.status
    extra = [_header_option(h, "--header") for h in args.header]
    names = {k.lower() for k, _ in extra}
    headers = tuple(h for h in headers if h[0].lower() not in names) + tuple(extra)
    media = header(headers, b"content-type") or b""
    coding = (header(headers, b"content-encoding") or b"identity").decode("latin-1").strip()
    size, assumed = args.size, ""
    if size is None:
        length = header(headers, b"content-length")
        if coding.lower() not in ("identity", ""):
            # the length of the encoded bytes says nothing exact about the decoded size
            size, assumed = DEFAULT_SIZE, (f" (assumed: Content-Length counts the {coding} "
                                           "bytes, not the decoded ones; --size to set it)")
        elif length is not None and length.strip().isdigit():
            size = int(length)
        else:
            size, assumed = DEFAULT_SIZE, " (assumed: no Content-Length; --size to set it)"
    body = _body(size, media.lower(), coding.lower()) if status not in (204, 304) else b""
    headers = tuple((k, str(len(body)).encode()) if k.lower() == b"content-length" else (k, v)
                    for k, v in headers)
    return Response(status, headers, body), size, assumed


def _what_happened(out: Outcome) -> list[str]:
    ex, final = out.exchange, out.final
    assert ex.content is not None
    d, served, etag_in = ex.content.decision, ex.served, ex.content.etag
    etag = (f"{wire_text(etag_in.raw)} -> {wire_text(d.etag_out) if d.etag_out else '(none)'}"
            if etag_in else "(none)")
    lines = [f"Decision:  {d.action}, {d.encoding_in} -> {d.encoding_out}; ETag "
             f"{d.etag_action}: {etag}",
             f"Why:       {d.reason}",
             f"Basis:     {d.basis}" + (f" ({d.table_row})" if d.table_row else "")]
    if out.record.rules:
        lines.append("Rules:     " + "; ".join(out.record.rules))
    lines += [f"Note:      {note}" for note in out.record.notes]
    if served is not None:
        lines.append(f"Cache:     {served.status}: {served.reason}")
    lines += ["Visitor gets:", f"  HTTP/1.1 {final.status}"]
    lines += [f"  {wire_text(k)}: {wire_text(v)}" for k, v in final.headers]
    lines.append(f"  ({len(final.body or b'')} body bytes)")
    lines += [f"  last phase: {repair}" for repair in final.repairs]
    return lines


def _run(zone: Zone, store: cache.Store, request: Request, origin: Response) -> Outcome:
    return run(EdgeContext(zone, store), request, lambda sent: origin, 0.0)


def _revalidation(zone: Zone, store: cache.Store, request: Request, origin: Response,
                  etag: bytes | None) -> str:
    """What a browser that revalidates with the ETag it was given gets back."""
    if etag is None:
        return ("the visitor gets no ETag, so a browser cannot revalidate with If-None-Match "
                "(only If-Modified-Since, if there is a Last-Modified)")
    again = Request(request.method, request.scheme, request.host, request.target,
                    request.http_version, (*request.headers, (b"If-None-Match", etag)))
    ex = _run(zone, store, again, origin).exchange
    served = ex.served
    where = served.status if served else "?"
    tag = wire_text(etag)
    if ex.headers is not None and ex.headers.not_modified == "edge":
        return f"a browser sending If-None-Match: {tag} gets 304 from the edge ({where})"
    if served is not None and served.status == "DYNAMIC":
        return (f"If-None-Match: {tag} goes to the origin (DYNAMIC); the 304 depends on the "
                "origin comparing weakly (RFC 9110 13.1.2)")
    return f"a browser sending If-None-Match: {tag} gets a full 200 ({where})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m addon explain",
        description="What Cloudflare would do to one response: the decision, the headers the "
                    "visitor gets, and the documented rule or table row behind it.",
        epilog="example: curl -sD - -o /dev/null https://example.com/app.css > h.txt; "
               "python -m addon explain --accept-encoding 'gzip, br' h.txt")
    p.add_argument("file", nargs="?", help="the origin's response headers as `curl -sD -` "
                   "prints them; - for standard input")
    p.add_argument("--accept-encoding", default=BROWSER_ACCEPT_ENCODING,
                   help=f"the visitor's Accept-Encoding (default: {BROWSER_ACCEPT_ENCODING!r}, "
                        "a browser over HTTPS); '' for none")
    p.add_argument("--url", default="https://example.com/", help="the URL asked for")
    p.add_argument("--method", default="GET")
    p.add_argument("--rules", help="the rules file (default: the repository's rules.yaml)")
    p.add_argument("--status", type=int, default=200, help="the origin's status")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="an origin response header (repeat; replaces the dump's)")
    p.add_argument("--request-header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a visitor request header (repeat), e.g. 'If-None-Match: W/\"v1\"'")
    p.add_argument("--size", type=int, help="the body's decoded size in bytes")
    return p


def main(argv: list[str], stdin_text: str | None = None) -> int:
    """Prints the explanation; bad input gets one line on stderr and exit status 2."""
    try:
        out = explain(argv, stdin_text)
    except ExplainError as e:
        print(f"explain: {e}", file=sys.stderr)
        return 2
    print(out, end="")
    return 0
