"""The gunicorn worker class: uvicorn's, with a shutdown that does not drop requests it could serve.

uvicorn's shutdown (on max_requests recycling and on SIGTERM) stops accepting and then immediately closes
every connection that has no request in progress. A request that is already on the wire - the next one
on a busy keep-alive connection, or the first one on a connection the worker accepted a moment before -
is then answered with a reset: measured ~8 failed requests per recycle under load (BENCHMARKS.md §4), and
1 in 200 even with a client that opens a fresh connection per request (tests/app/test_preload.py).

Here the worker first stops accepting (the other workers, or after a fork the replacement, take the new
connections), then keeps serving its open connections for up to ``DRAIN_S`` while every response carries
``Connection: close``, so each client learns on its next answer to reconnect; only connections still idle
after that are closed as before, and uvicorn's normal shutdown (in-flight requests, lifespan) follows.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

#: How long a stopping worker keeps serving its open connections (with Connection: close) before it
#: closes the idle ones. A client in the middle of a conversation sends within milliseconds.
DRAIN_S = 1.0
_POLL_S = 0.01


class _CloseResponses:
    """Wraps one connection's app once its worker drains: every response it starts carries
    ``Connection: close``. Installed per open connection at drain time, so a running worker pays nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


def _close_after_next_response(conn: Any) -> None:
    # uvicorn's HTTP protocols take `self.app` for each new request on the connection
    app = getattr(conn, "app", None)
    if app is not None and not isinstance(app, _CloseResponses):
        conn.app = _CloseResponses(app)
    cycle = getattr(conn, "cycle", None)
    if cycle is not None and not cycle.response_complete:
        cycle.keep_alive = False  # a response already being built closes the connection too


class DrainingServer(Server):
    def __init__(self, config: Any, drain_s: float = DRAIN_S) -> None:
        super().__init__(config)
        self.drain_s = drain_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting; the shared listen socket stays open in the master
            server.close()
        for sock in sockets or []:
            sock.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while self.server_state.connections and not self.force_exit and loop.time() < deadline:
            # every poll: also catches a connection accepted just before the listener closed
            for conn in list(self.server_state.connections):
                _close_after_next_response(conn)
            await asyncio.sleep(_POLL_S)
        await super().shutdown(sockets=None)


class DrainingUvicornWorker(UvicornWorker):
    """``uvicorn_worker.UvicornWorker`` whose server drains before it closes idle connections."""

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            import sys

            from gunicorn.arbiter import Arbiter

            sys.exit(Arbiter.WORKER_BOOT_ERROR)
