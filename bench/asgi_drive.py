"""One GET request straight into an ASGI app: no server, no socket (the in-process benchmarks' driver).

Imported by the child interpreters of bench_gc and bench_deployed (`python -c` with the repository as the
working directory), so it imports nothing but asyncio.
"""

from __future__ import annotations

import asyncio
from typing import Any


def get_scope(target: str) -> dict[str, Any]:
    """The HTTP scope of ``GET target`` (a path with an optional query string)."""
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def get(app: Any, scope: dict[str, Any]) -> int:
    """Run one request (a copy of ``scope``) through ``app``; its status."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # a client that stays connected
        return {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(dict(scope), receive, send)
    return status[0]
