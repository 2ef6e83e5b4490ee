"""Four ways to spend 50 ms in a route, to show what blocking the event loop does to one worker.

The service's own routes never block (async drivers: asyncpg, redis.asyncio; argon2 hashing goes
through the thread pool), so this comparison app lives under bench/ rather than in app/.

    /block/async-sleep   async def + time.sleep     -> blocks the event loop: the WRONG way
    /block/sync-def      def + time.sleep           -> FastAPI runs it in the thread pool (40 threads)
    /block/to-thread     async def + run_in_threadpool(time.sleep)  -> the service's way for blocking calls
    /block/asyncio       async def + await asyncio.sleep  -> truly non-blocking I/O wait
    /ping                trivial async route, used to probe the loop's responsiveness meanwhile
    /sleep?ms=N          async def + await asyncio.sleep(N ms): a slow but well-behaved request (drain tests)
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

WORK_S = 0.05

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/block/async-sleep")
async def async_sleep() -> dict[str, str]:
    time.sleep(WORK_S)
    return {"how": "time.sleep in async def"}


@app.get("/block/sync-def")
def sync_def() -> dict[str, str]:
    time.sleep(WORK_S)
    return {"how": "time.sleep in def (thread pool)"}


@app.get("/block/to-thread")
async def to_thread() -> dict[str, str]:
    await run_in_threadpool(time.sleep, WORK_S)
    return {"how": "run_in_threadpool(time.sleep)"}


@app.get("/block/asyncio")
async def asyncio_sleep() -> dict[str, str]:
    await asyncio.sleep(WORK_S)
    return {"how": "await asyncio.sleep"}


@app.get("/sleep")
async def sleep(ms: int = 1000) -> dict[str, int]:
    await asyncio.sleep(min(ms, 30_000) / 1000)
    return {"slept_ms": ms}
