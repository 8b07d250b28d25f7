"""A minimal HTTP/2 client for the tests: TLS with ALPN h2 to mitmproxy, one request per
stream on one connection, built on the `h2` package mitmproxy already depends on.

mitmproxy speaks HTTP/2 to visitors over TLS (its own certificates, made from the CA in
the test's confdir, which the client trusts).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events


@dataclass
class H2Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name]
        return b", ".join(values) if values else None


class H2Client:
    def __init__(self, port: int, confdir: Path, server_name: str = "localhost") -> None:
        context = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = context.wrap_socket(raw, server_hostname=server_name)
        if self.sock.selected_alpn_protocol() != "h2":
            raise AssertionError(f"ALPN gave {self.sock.selected_alpn_protocol()!r}, not h2")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.authority = server_name.encode()

    def request(self, path: bytes, headers: list[tuple[bytes, bytes]] = (),
                method: bytes = b"GET") -> H2Reply:
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [(b":method", method), (b":path", path),
                                        (b":scheme", b"https"), (b":authority", self.authority),
                                        *((k.lower(), v) for k, v in headers)],
                               end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status, got, body = 0, [], b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the connection closed before the response ended")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    for k, v in event.headers:
                        if k == b":status":
                            status = int(v)
                        else:
                            got.append((k, v))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    self.sock.sendall(self.conn.data_to_send())
                    return H2Reply(status, got, body)
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise AssertionError(f"stream reset: {event.error_code!r}")
            self.sock.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.conn.close_connection()
        try:
            self.sock.sendall(self.conn.data_to_send())
        finally:
            self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
