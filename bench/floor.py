"""The floor: the least any faithful edge pays inside mitmproxy, measured beside the edge by
make bench (not part of the product).

Three synchronous hooks; Cloudflare's nine headers added by assigning headers.fields once
(six towards the origin, three towards the visitor, a fresh cf-ray each time); one JSON
line per response, block-buffered; with floor_cache, a stored response copied in the
`request` hook for a request seen before (its HIT). No decision, no cache semantics, no
diagnosis: what is left of the edge's cost above this is the edge's own.

    mitmdump -s bench/floor.py --set floor_log=floor.jsonl [--set floor_cache=true]
"""

from __future__ import annotations

import json
import os
import time
from typing import IO

from mitmproxy import ctx
from mitmproxy import http

_JSON = json.JSONEncoder(ensure_ascii=False)


class Floor:
    def __init__(self) -> None:
        self.log: IO[bytes] | None = None
        self.store: dict[str, tuple[int, tuple[tuple[bytes, bytes], ...], bytes | None]] = {}

    def load(self, loader) -> None:
        loader.add_option("floor_log", str, "", "JSON Lines log (empty: none)")
        loader.add_option("floor_cache", bool, False, "answer repeated URLs from memory")

    def configure(self, updated: set[str]) -> None:
        if "floor_log" in updated:
            if self.log is not None:
                self.log.close()
            self.log = open(ctx.options.floor_log, "ab") if ctx.options.floor_log else None  # noqa: SIM115

    def done(self) -> None:
        if self.log is not None:
            self.log.close()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata["floor_ray"] = f"{os.urandom(8).hex()}-LCL"

    def request(self, flow: http.HTTPFlow) -> None:
        if ctx.options.floor_cache:
            stored = self.store.get(flow.request.url)
            if stored is not None:
                status, fields, body = stored
                now = time.time()
                data = object.__new__(http.ResponseData)  # as the edge builds its HITs
                data.__dict__.update(http_version=b"HTTP/1.1", status_code=status,
                                     reason=b"OK", headers=http.Headers(fields), content=body,
                                     trailers=None, timestamp_start=now, timestamp_end=now)
                response = object.__new__(http.Response)
                response.data = data
                flow.response = response
                return
        ray = flow.metadata["floor_ray"].encode()
        ip = (flow.client_conn.peername or ("",))[0].encode()
        flow.request.headers.fields = (
            *flow.request.headers.fields, (b"cf-ray", ray), (b"cf-connecting-ip", ip),
            (b"x-forwarded-for", ip), (b"x-forwarded-proto", b"http"),
            (b"cf-visitor", b'{"scheme":"http"}'), (b"cdn-loop", b"cloudflare"))

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        hit = ctx.options.floor_cache and flow.request.url in self.store
        resp.headers.fields = (*resp.headers.fields,
                               (b"cf-cache-status", b"HIT" if hit else b"DYNAMIC"),
                               (b"server", b"cloudflare"),
                               (b"cf-ray", flow.metadata["floor_ray"].encode()))
        if ctx.options.floor_cache and not hit:
            self.store[flow.request.url] = (resp.status_code, tuple(resp.headers.fields),
                                            resp.raw_content)
        if self.log is not None:
            self.log.write(_JSON.encode(_record(flow)).encode() + b"\n")


def _record(flow: http.HTTPFlow) -> dict:
    """About as many fields as the edge's record."""
    req, resp = flow.request, flow.response
    assert resp is not None
    return {"ts": round(time.time(), 3), "method": req.method, "url": req.pretty_url,
            "status": resp.status_code, "accept_encoding": req.headers.get("accept-encoding"),
            "origin_accept_encoding": "br, gzip", "encoding_in": "identity",
            "encoding_out": "identity", "action": "pass", "etag_in": resp.headers.get("etag"),
            "etag_out": resp.headers.get("etag"), "etag_action": "kept", "changed": False,
            "reason": "the floor passes everything through", "basis": "modelled",
            "table_row": None, "respect_strong_etags": False, "rules": [], "notes": [],
            "features": {}, "bytes_in": len(resp.raw_content or b""),
            "bytes_out": len(resp.raw_content or b""), "cache_status": "DYNAMIC",
            "cache_key": None, "cache_reason": "floor", "age": None, "not_modified": None,
            "status_out": resp.status_code}


addons = [Floor()]
