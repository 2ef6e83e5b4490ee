"""Fixed-window rate limiter shared by every worker and replica through Redis, with a local fallback.

An in-process limiter multiplies the limit by the number of processes (4 workers x 5/minute = 20/minute
per replica), so the counter lives in Redis. When Redis is unreachable the limiter degrades to a
per-process window (logged), so login keeps working and is still limited instead of failing open.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("app.ratelimit")

# INCR and PEXPIRE in one atomic step: a crash between two separate calls would leave a key without TTL,
# locking the client out forever. All keys of one attempt in one round trip.
_LUA_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""

# After a Redis failure, skip Redis for this long: each attempt would otherwise add a socket timeout.
REDIS_RETRY_AFTER_S = 5.0
_LOCAL_MAX_KEYS = 10_000


@dataclass(frozen=True)
class Decision:
    """Outcome of one hit: whether it is allowed, and seconds until the window resets."""

    allowed: bool
    count: int
    retry_after: int
    degraded: bool


class _LocalWindows:
    """Per-process fixed windows; bounded so a spray of distinct keys cannot grow memory without limit."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, window_s: int, now: float) -> tuple[int, float]:
        with self._lock:
            reset_at, count = self._windows.get(key, (0.0, 0))
            if now >= reset_at:
                reset_at, count = now + window_s, 0
            count += 1
            if len(self._windows) >= _LOCAL_MAX_KEYS and key not in self._windows:
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            self._windows[key] = (reset_at, count)
            return count, reset_at - now


class RateLimiter:
    """`hit(keys)` counts one attempt against every key; refused if any key is over the limit."""

    def __init__(
        self, redis: Callable[[], Redis] | None, limit: int, window_s: int, prefix: str = "rl"
    ) -> None:
        """``redis`` returns the client; it is called on the first hit, so redis-py is imported only
        when something is actually rate limited. None: per-process limits only."""
        self._redis = redis
        self.limit = limit
        self.window_s = window_s
        self.prefix = prefix
        self._local = _LocalWindows()
        self._redis_down_until = 0.0
        self._script: AsyncScript | None = None

    async def _hit_redis(self, keys: list[str]) -> list[tuple[int, float]]:
        assert self._redis is not None
        if self._script is None:
            self._script = self._redis().register_script(_LUA_HIT)
        flat = await self._script(keys=keys, args=[self.window_s * 1000])
        return [(int(flat[i]), int(flat[i + 1]) / 1000) for i in range(0, len(flat), 2)]

    async def hit(self, *keys: str) -> Decision:
        now = time.monotonic()
        full = [f"{self.prefix}:{k}" for k in keys]
        results: list[tuple[int, float]] = []
        degraded = self._redis is None or now < self._redis_down_until
        if not degraded:
            from redis.exceptions import RedisError  # loaded with the client by now

            try:
                results = await self._hit_redis(full)
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                # ValueError: the client is built on first use, and redis-py refuses some REDIS_URL options
                # only then (the port is checked at start). Degrade like an outage rather than fail logins.
                self._redis_down_until = now + REDIS_RETRY_AFTER_S
                log.warning(
                    "rate limiter degraded: Redis unavailable, using per-process limits",
                    extra={
                        "error": type(exc).__name__,
                        # redis-py's URL errors name the option, never the URL (which may hold a password)
                        **({"detail": str(exc)[:200]} if isinstance(exc, ValueError) else {}),
                        "retry_in_s": REDIS_RETRY_AFTER_S,
                    },
                )
                degraded, results = True, []
        if degraded:
            results = [self._local.hit(k, self.window_s, now) for k in full]
        worst = max(results, key=lambda r: r[0])
        allowed = all(count <= self.limit for count, _ in results)
        retry = max(1, math.ceil(max(ttl for _, ttl in results))) if not allowed else 0
        return Decision(allowed=allowed, count=worst[0], retry_after=retry, degraded=degraded)
