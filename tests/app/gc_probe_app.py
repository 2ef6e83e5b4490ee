"""A tiny ASGI app that reports its worker's GC state: served by the service's own gunicorn config in
tests/app/test_preload.py to prove the config applies GC_FREEZE / GC_THRESHOLD in every worker."""

from __future__ import annotations

import gc
import json
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps(
        {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "pid": os.getpid()}
    ).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})
