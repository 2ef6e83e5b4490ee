"""Redis read-through cache for the item reads (list and detail), invalidated by a generation counter.

Importing this module imports neither redis-py nor SQLAlchemy (the Lambda cold start, app.queries): the
Redis client comes from `app.main.LazyRedis` on first use, and the computation is a callback.

Keys: ``{prefix}:gen:{namespace}`` holds the namespace's generation; an entry lives at
``{prefix}:{namespace}:{generation}:{query}``, where ``query`` is built by the route from the *validated*
parameters (so ``?limit=50`` and no ``limit`` share an entry, and unknown parameters cannot fragment the
cache). The reads are public (no auth changes the answer), so no user is part of the key. Values are the
exact response bodies (bytes); TTL ``CACHE_TTL_SECONDS``.

Invalidation: every write, after its DB commit and before its response, INCRs the generation. Every read
first GETs the generation (one round trip: a Lua script returns the generation and the entry under it)
and, on a miss, stores what it computed under *that* generation. A read that queried the database before a
write committed therefore stores its (old) value under the old generation, which no read that starts after
the write's INCR can reach. A missing generation (first use, Redis restarted, key evicted) is created with a
random 40-bit value, never 0, so an entry stored late under a pre-restart generation cannot become
reachable again when the counter climbs back to it.

Stampede: concurrent misses on one key *in one process* share one computation (an asyncio future per key);
across workers and replicas each process computes at most once per key and generation (no Redis lock).

Redis unavailable (an error or the client's socket timeout, REDIS_SOCKET_TIMEOUT): the read is computed from
the database and not stored, and this process skips Redis for `REDIS_RETRY_AFTER_S`. A write still succeeds;
if its INCR failed, the bump is remembered and retried (by a background task every `BUMP_RETRY_S`, and
before any other cache use in this process); until it succeeds this process neither reads nor stores
entries. See docs/service.md ("Read cache") for what this does and does not guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("app.cache")

#: After a Redis failure, skip Redis for this long (each call would otherwise add a socket timeout).
REDIS_RETRY_AFTER_S = 5.0
#: How often a failed generation bump is retried in the background.
BUMP_RETRY_S = 0.5

# KEYS[1] generation key. ARGV: entry prefix, entry suffix. Returns {generation or false, entry or false}.
_LUA_READ = """
local g = redis.call('GET', KEYS[1])
if not g then return {false, false} end
return {g, redis.call('GET', ARGV[1] .. g .. ARGV[2])}
"""
# KEYS[1] generation key; ARGV[1] a random start. INCR, creating the counter at a random value if missing.
_LUA_BUMP = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""

HIT, MISS, COALESCED, BYPASS = "hit", "miss", "coalesced", "bypass"


@functools.cache
def cache_counter() -> Counter:
    """Cache lookups by namespace and result (hit, miss, coalesced, bypass); prometheus-client imported on
    first use, and only when METRICS_ENABLED."""
    from prometheus_client import Counter

    return Counter("cache_requests_total", "Read-cache lookups", ["namespace", "result"])


def _random_generation() -> int:
    return secrets.randbits(40) + 1


class ReadCache:
    """``await cache.get_or_compute(namespace, query, compute)``: the cached bytes, or ``compute()``'s
    (stored when it is not None). ``await cache.invalidate(namespace)`` after every committed write."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        ttl_s: int,
        *,
        metrics: bool = False,
        prefix: str = "cache:v1",
    ) -> None:
        self._redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._metrics = metrics
        self._down_until = 0.0
        self._pending: set[str] = set()  # namespaces whose bump failed and must be retried
        self._retry_task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Future[bytes | None]] = {}
        self._read_script: AsyncScript | None = None
        self._bump_script: AsyncScript | None = None
        self.stats: dict[str, int] = {HIT: 0, MISS: 0, COALESCED: 0, BYPASS: 0}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def _gen_key(self, namespace: str) -> str:
        return f"{self.prefix}:gen:{namespace}"

    def _count(self, namespace: str, result: str) -> None:
        self.stats[result] += 1
        if self._metrics:
            cache_counter().labels(namespace, result).inc()

    def _redis_errors(self) -> tuple[type[BaseException], ...]:
        from redis.exceptions import RedisError

        # ValueError: redis-py refuses some REDIS_URL options only when the client is built (app.ratelimit).
        return (RedisError, OSError, TimeoutError, ValueError)

    def _mark_down(self, exc: BaseException, what: str) -> None:
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S
        log.warning(
            "read cache bypassed: Redis unavailable",
            extra={"error": type(exc).__name__, "during": what, "retry_in_s": REDIS_RETRY_AFTER_S},
        )

    async def _usable(self) -> bool:
        """Redis may be used: not known down, and every failed bump of this process has been retried."""
        if not self.enabled or time.monotonic() < self._down_until:
            return False
        if self._pending:
            await self._retry_pending()
        return not self._pending

    # ------------------------------------------------------------------------------------- invalidation
    async def _bump(self, namespace: str) -> None:
        client = self._redis()
        if self._bump_script is None:
            self._bump_script = client.register_script(_LUA_BUMP)
        await self._bump_script(keys=[self._gen_key(namespace)], args=[_random_generation()])

    async def _retry_pending(self) -> None:
        for namespace in sorted(self._pending):
            try:
                await self._bump(namespace)
            except self._redis_errors() as exc:
                self._mark_down(exc, "retrying invalidation")
                return
            self._pending.discard(namespace)
            log.info("read cache: delayed invalidation done", extra={"namespace": namespace})

    async def _retry_loop(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(BUMP_RETRY_S)
                await self._retry_pending()
        finally:
            self._retry_task = None

    async def invalidate(self, namespace: str) -> None:
        """After a committed write: make every entry of ``namespace`` unreachable. Never raises on a Redis
        failure (the write has happened): the bump is retried until it succeeds, and until then this
        process does not use the cache."""
        if not self.enabled:
            return
        try:
            await self._bump(namespace)
            return
        except self._redis_errors() as exc:
            self._mark_down(exc, "invalidating")
        self._pending.add(namespace)
        if self._retry_task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next cache use retries
                self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    # ------------------------------------------------------------------------------------------- reads
    async def _lookup(self, namespace: str, query: str) -> tuple[str | None, bytes | None]:
        """(generation, entry); generation None: Redis unusable or the counter had to be created."""
        if not await self._usable():
            return None, None
        entry_prefix = f"{self.prefix}:{namespace}:"
        try:
            client = self._redis()
            if self._read_script is None:
                self._read_script = client.register_script(_LUA_READ)
            gen, value = await self._read_script(
                keys=[self._gen_key(namespace)], args=[entry_prefix, f":{query}"]
            )
            if gen is None:
                # Never stored under a guessable generation: start the counter at a random value.
                await client.set(self._gen_key(namespace), _random_generation(), nx=True)
                return None, None
        except self._redis_errors() as exc:
            self._mark_down(exc, "reading")
            return None, None
        return gen.decode() if isinstance(gen, bytes) else str(gen), value

    async def _get(self, key: str) -> bytes | None:
        try:
            value = await self._redis().get(key)
        except self._redis_errors() as exc:
            self._mark_down(exc, "reading")
            return None
        return value if isinstance(value, bytes) else None  # decode_responses is off: bytes or None

    async def _store(self, key: str, value: bytes) -> None:
        if time.monotonic() < self._down_until or self._pending:
            return
        try:
            await self._redis().set(key, value, ex=self.ttl_s)
        except self._redis_errors() as exc:
            self._mark_down(exc, "storing")

    async def get_or_compute(
        self, namespace: str, query: str, compute: Callable[[], Awaitable[bytes | None]]
    ) -> bytes | None:
        """The entry for ``query`` under the namespace's current generation, or ``compute()``'s result
        (stored unless None). Concurrent misses on one key in this process run ``compute`` once."""
        gen, value = await self._lookup(namespace, query)
        if gen is None:
            self._count(namespace, BYPASS)
            return await compute()
        if value is not None:
            self._count(namespace, HIT)
            return bytes(value)
        key = f"{self.prefix}:{namespace}:{gen}:{query}"
        leader = self._inflight.get(key)
        if leader is not None:
            self._count(namespace, COALESCED)
            shared = await asyncio.shield(leader)
            # None: the leader failed (or found nothing); compute for this request on its own.
            return shared if shared is not None else await compute()
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        result: bytes | None = None
        try:
            # A computation that finished (stored, then left _inflight) between our lookup and now: its
            # entry is in Redis. One more GET per miss closes that gap, so overlapping misses in this
            # process query the database once.
            result = await self._get(key)
            if result is not None:
                self._count(namespace, HIT)
                return result
            self._count(namespace, MISS)
            result = await compute()
            if result is not None:
                await self._store(key, result)
            return result
        finally:
            del self._inflight[key]
            fut.set_result(result)

    async def aclose(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._retry_task
