"""Fakes at the process/network boundary for the doctor/verify tests.

- `GrpcFake`: an in-process gRPC server on loopback answering Cloud Run / Secret Manager RPCs with real
  proto messages, so the real google-cloud clients run unmodified over a real channel.
- `HttpFake`: a real HTTP server on loopback with per-path status/body.
- `fake_ssh`: an `ssh` executable placed first on PATH that records argv and plays a scripted answer.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc


class GrpcFake:
    """Register `(service, method) -> handler(request) -> response | (grpc.StatusCode, message)`."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, tuple[Callable[[Any], Any], Any, Any]]] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def add(self, service: str, method: str, fn: Callable[[Any], Any], req_type: Any, resp_type: Any) -> None:
        self.handlers.setdefault(service, {})[method] = (fn, req_type, resp_type)

    @contextmanager
    def serve(self) -> Iterator[grpc.Channel]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        for service, methods in self.handlers.items():
            rpc = {}
            for method, (fn, req_type, resp_type) in methods.items():
                rpc[method] = grpc.unary_unary_rpc_method_handler(
                    self._wrap(service, method, fn),
                    request_deserializer=req_type.deserialize,
                    response_serializer=resp_type.serialize,
                )
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, rpc),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield channel
        finally:
            channel.close()
            server.stop(grace=None)

    def _wrap(self, service: str, method: str, fn: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls.append((service, method, request))
            result = fn(request)
            if isinstance(result, tuple):
                context.abort(result[0], result[1])
            return result

        return handler


@dataclass
class HttpFake:
    """Loopback HTTP server; `routes[path] = (status, body)`; unknown paths answer 404."""

    routes: dict[str, tuple[int, str]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    #: When set, requests without `Authorization: Bearer <token>` get 403 (a private Cloud Run service).
    bearer: str | None = None
    url: str = ""

    @contextmanager
    def serve(self) -> Iterator[HttpFake]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.hits.append(self.path)
                status, body = fake.routes.get(self.path, (404, '{"detail":"Not Found"}'))
                if fake.bearer and self.headers.get("Authorization") != f"Bearer {fake.bearer}":
                    status, body = 403, "<h1>Error: Forbidden</h1>"
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def fake_executable(bindir: Path, name: str, stdout: str = "", stderr: str = "", rc: int = 0) -> Path:
    """A `name` executable that appends its argv (JSON) to `<bindir>/<name>.calls` and answers as told."""
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / f"{name}.stdout").write_text(stdout)
    (bindir / f"{name}.stderr").write_text(stderr)
    script = bindir / name
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys, pathlib\n"
        f"d = pathlib.Path({str(bindir)!r})\n"
        f"with open(d / {name + '.calls'!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write((d / {name + '.stdout'!r}).read_text())\n"
        f"sys.stderr.write((d / {name + '.stderr'!r}).read_text())\n"
        f"sys.exit({rc})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def calls_of(bindir: Path, name: str) -> list[list[str]]:
    path = bindir / f"{name}.calls"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def path_with(bindir: Path) -> str:
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
