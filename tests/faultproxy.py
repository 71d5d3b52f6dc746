"""A small HTTP proxy that injects faults between ssmake and a moto server.

Point AWS_ENDPOINT_URL at `FaultProxy.url` and every AWS request goes through it
to the real endpoint. A `Fault` rule picks requests (method, path, query) and
for the first `times` of them, instead of a plain forward:

- `"500"`, `"503"`: answer with that status and an AWS error (InternalError,
  SlowDown), in the request's protocol (XML for S3, JSON for SageMaker);
- `"throttle"`: a throttling error (S3's 503 SlowDown, or 400 ThrottlingException);
- `"reset"`: reset the connection before forwarding (the request never arrives);
- `"reset-after"`: forward, then reset instead of answering (it arrived, and the
  client cannot know: the ambiguous failure);
- `"truncate"`: forward, then send the headers and half the body, and reset
  (a download cut short).

Every request is logged as (method, path and X-Amz-Target, what happened), to
assert on retries.
Only the standard library; one thread per connection.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ACTIONS = ("500", "503", "throttle", "reset", "reset-after", "truncate")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


@dataclass
class Fault:
    """Do `action` to the first `times` requests matching method, path and query
    (regular expressions searched in the URL path and query string)."""

    action: str
    path: str = ""
    method: str = ""
    query: str = ""
    #: The X-Amz-Target of JSON-protocol requests, like "SageMaker.DescribeTrainingJob".
    target: str = ""
    times: int = 1
    hits: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {ACTIONS}")

    def matches(self, method: str, path: str, query: str, target: str) -> bool:
        return (
            self.hits < self.times
            and (not self.method or self.method == method)
            and (not self.target or self.target == target)
            and re.search(self.path, path) is not None
            and re.search(self.query, query) is not None
        )


@dataclass
class FaultProxy:
    """The proxy server; `start()` it, add `faults`, read `log`, `stop()` it."""

    target: str
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def injected(self, action: str | None = None) -> list[tuple[str, str, str]]:
        """The logged requests that got a fault (of `action`, if given)."""
        with self._lock:
            return [e for e in self.log if e[2] != "forwarded" and action in (None, e[2])]

    def requests(self, method: str, path: str) -> list[str]:
        """What happened to each request of `method` whose path matches `path`, in order."""
        with self._lock:
            return [e[2] for e in self.log if e[0] == method and re.search(path, e[1])]

    def _decide(self, method: str, path: str, query: str, target: str) -> str:
        name = f"{path} {target}".rstrip()
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, query, target):
                    fault.hits += 1
                    self.log.append((method, name, fault.action))
                    return fault.action
            self.log.append((method, name, "forwarded"))
            return "forward"


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream_url = urlsplit(proxy.target)
    upstream_host, upstream_port = upstream_url.hostname or "127.0.0.1", upstream_url.port

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the proxy's log is `proxy.log`

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size_line = self.rfile.readline()
                    size = int(size_line.split(b";")[0], 16)
                    chunk = self.rfile.read(size)
                    self.rfile.readline()
                    chunks.append(chunk)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reset(self) -> None:
            # SO_LINGER 0: close with a TCP reset, as a dropped connection looks.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _error(self, status: int, code: str) -> None:
            message = f"injected by the test's fault proxy ({code})"
            if self.headers.get("X-Amz-Target"):
                body = json.dumps({"__type": code, "message": message}).encode()
                kind = "application/x-amz-json-1.1"
            else:
                body = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>{message}</Message></Error>"
                ).encode()
                kind = "application/xml"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            upstream = http.client.HTTPConnection(upstream_host, upstream_port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                return response.status, kept, data
            finally:
                upstream.close()

        def _handle(self) -> None:
            body = self._body()
            path, _, query = self.path.partition("?")
            target = self.headers.get("X-Amz-Target", "")
            action = proxy._decide(self.command, path, query, target)
            if action == "reset":
                self._reset()
                return
            if action in ("500", "503", "throttle"):
                s3 = not self.headers.get("X-Amz-Target")
                status, code = {
                    "500": (500, "InternalError"),
                    "503": (503, "ServiceUnavailable"),
                    "throttle": (503, "SlowDown") if s3 else (400, "ThrottlingException"),
                }[action]
                self._error(status, code)
                return
            status, headers, data = self._forward(body)
            if action == "reset-after":
                self._reset()
                return
            self.send_response(status)
            for key, value in headers:
                # A HEAD answer says the object's length and has no body.
                if key.lower() != "content-length" or self.command == "HEAD":
                    self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if action == "truncate" and self.command != "HEAD" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._reset()
                return
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
