"""Login rate limits shared by every worker and replica through Redis, with a local fallback.

Three fixed-window counters, so that an attacker can slow guessing down but cannot lock an account's owner
out (docs/service.md, "Login rate limits"):

- per (client address, username), every attempt: `LOGIN_RATE_LIMIT` (5/minute). Refuses the guesser and
  whoever shares its address, nobody else.
- per client address, every attempt across usernames: `LOGIN_ADDRESS_RATE_LIMIT` (30/minute). Caps one
  address's credential stuffing (and the argon2 work it can cause).
- per username, FAILED password checks from all addresses: `LOGIN_USER_FAILURE_LIMIT` (100/hour). Caps a
  botnet's guessing rate on one account. When it is reached, only addresses that have logged in to that
  account successfully in the last 30 days may still try (at the per-address rates above); everyone else
  gets 429 until the window ends. So a stranger hitting the ceiling does not lock the owner out of the
  places they already log in from.

An attempt reserves one failure on the per-user counter before the password is checked (so concurrent
attempts cannot overshoot the ceiling); `settle()` gives it back unless the check actually failed.

An in-process limiter multiplies the limits by the number of processes (4 workers x 5/minute = 20/minute
per replica), so the counters live in Redis and each attempt is one Lua script (atomic across workers and
replicas). When Redis is unreachable the limiter degrades to per-process counters with the same rules
(logged), so login keeps working and is still limited instead of failing open.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from app.breaker import CircuitBreaker, CircuitOpenError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("app.ratelimit")

T = TypeVar("T")

# Scope names, as logged and as returned in LoginDecision.refused_by.
ADDRESS_USER = "address+username"
ADDRESS = "address"
USER = "username"

# An address stays "known" for an account this long after its last successful login there.
KNOWN_ADDRESS_TTL_S = 30 * 86400

# One round trip per attempt. INCR and PEXPIRE in the same script: a crash between two separate calls would
# leave a key without TTL, locking the client out forever (a key found without one gets its TTL here).
# KEYS: address+username counter, address counter, username failure counter, known-address marker.
# ARGV: limit and window (ms) of each counter, in that order.
# Returns: {refused bitmask (1 address+username, 2 address, 4 username), retry after ms}.
_LUA_CHECK = """
local function hit(key, ms)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ms) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, ms); ttl = tonumber(ms) end
  return n, ttl
end
local refused, retry = 0, 0
local n, ttl = hit(KEYS[1], ARGV[2])
if n > tonumber(ARGV[1]) then refused = refused + 1; retry = math.max(retry, ttl) end
n, ttl = hit(KEYS[2], ARGV[4])
if n > tonumber(ARGV[3]) then refused = refused + 2; retry = math.max(retry, ttl) end
local failures = tonumber(redis.call('GET', KEYS[3]) or '0')
if failures >= tonumber(ARGV[5]) and redis.call('EXISTS', KEYS[4]) == 0 then
  ttl = redis.call('PTTL', KEYS[3])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[6]); ttl = tonumber(ARGV[6]) end
  refused = refused + 4; retry = math.max(retry, ttl)
end
if refused == 0 then hit(KEYS[3], ARGV[6]) end
return {refused, retry}
"""

# The attempt did not fail a password check: give back its reservation (never below zero, never creating a
# key). If the window ended meanwhile this takes one failure off the next window - at most one per attempt.
# On success, remember the address for this account. KEYS: failure counter, known marker. ARGV: succeeded
# (1/0), known TTL (ms).
_LUA_SETTLE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
if ARGV[1] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

# Without a breaker passed in: after one Redis failure, skip Redis for this long (each attempt would
# otherwise add a socket timeout). The service passes its Redis breaker (BREAKER_* settings).
REDIS_RETRY_AFTER_S = 5.0
_LOCAL_MAX_KEYS = 10_000


@dataclass(frozen=True)
class Rate:
    """`limit` events per `window_s` seconds."""

    limit: int
    window_s: int


@dataclass(frozen=True)
class LoginDecision:
    """Outcome of `LoginLimiter.check`: pass it to `settle` unless the password check failed."""

    allowed: bool
    retry_after: int  # seconds until every refusing window has ended; 0 when allowed
    degraded: bool  # decided by per-process counters (Redis unavailable)
    refused_by: tuple[str, ...]
    keys: tuple[str, str, str, str]


def address_key(host: str) -> str:
    """The part of a client address that identifies one client for rate limiting.

    IPv6 is reduced to its /64: one subscriber usually gets a whole /64 (and privacy extensions rotate the
    low bits), so per-address limits on full IPv6 addresses would give an attacker 2**64 fresh buckets.
    IPv4-mapped IPv6 is the IPv4 address. Anything else (no client, a unix socket) is kept, truncated."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _LocalCounters:
    """Per-process mirror of the Redis scripts, used while Redis is unavailable.

    Bounded: when full, expired entries are dropped, then the oldest quarter, so a spray of distinct keys
    cannot grow memory without limit (it can make this process forget some counters - degraded mode only).
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (reset_at, count)
        self._known: dict[str, float] = {}  # key -> expires_at
        self._lock = threading.Lock()

    @staticmethod
    def _make_room(table: dict[str, Any], key: str, now: float, expiry: Callable[[Any], float]) -> None:
        if len(table) < _LOCAL_MAX_KEYS or key in table:
            return
        for k in [k for k, v in table.items() if expiry(v) <= now]:
            del table[k]
        if len(table) >= _LOCAL_MAX_KEYS:
            for k in list(table)[: _LOCAL_MAX_KEYS // 4]:
                del table[k]

    def _get(self, key: str, now: float) -> tuple[int, float]:
        reset_at, count = self._windows.get(key, (0.0, 0))
        return (count, reset_at - now) if now < reset_at else (0, 0.0)

    def _hit(self, key: str, window_s: int, now: float) -> tuple[int, float]:
        count, ttl = self._get(key, now)
        if count == 0:
            ttl = float(window_s)
        self._make_room(self._windows, key, now, lambda v: v[0])
        self._windows[key] = (now + ttl, count + 1)
        return count + 1, ttl

    def check(
        self, keys: tuple[str, str, str, str], rates: tuple[Rate, Rate, Rate], now: float
    ) -> tuple[int, float]:
        """The refused bitmask and the retry-after seconds, like _LUA_CHECK."""
        pair_key, addr_key, user_key, known_key = keys
        pair, addr, user = rates
        with self._lock:
            refused, retry = 0, 0.0
            n, ttl = self._hit(pair_key, pair.window_s, now)
            if n > pair.limit:
                refused, retry = refused | 1, max(retry, ttl)
            n, ttl = self._hit(addr_key, addr.window_s, now)
            if n > addr.limit:
                refused, retry = refused | 2, max(retry, ttl)
            failures, ttl = self._get(user_key, now)
            if failures >= user.limit and self._known.get(known_key, 0.0) <= now:
                refused, retry = refused | 4, max(retry, ttl)
            if not refused:
                self._hit(user_key, user.window_s, now)
            return refused, retry

    def settle(self, user_key: str, known_key: str, succeeded: bool, known_ttl_s: int, now: float) -> None:
        with self._lock:
            count, ttl = self._get(user_key, now)
            if count > 0:
                self._windows[user_key] = (now + ttl, count - 1)
            if succeeded:
                self._make_room(self._known, known_key, now, lambda v: v)
                self._known.pop(known_key, None)  # re-insert: newest last, so pruning drops the oldest
                self._known[known_key] = now + known_ttl_s


_SCOPES = ((1, ADDRESS_USER), (2, ADDRESS), (4, USER))


class LoginLimiter:
    """`check(address, username)` before the password check; `settle(decision, succeeded=)` after it
    unless the password was wrong."""

    def __init__(
        self,
        redis: Callable[[], Redis] | None,
        per_address_user: Rate,
        per_address: Rate,
        per_user_failures: Rate,
        *,
        known_address_ttl_s: int = KNOWN_ADDRESS_TTL_S,
        prefix: str = "rl:login",
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """``redis`` returns the client; it is called on the first attempt, so redis-py is imported only
        when someone actually logs in. None: per-process limits only. ``breaker``: skips Redis while open
        (default: open after one failure, for REDIS_RETRY_AFTER_S)."""
        self._redis = redis
        self.rates: tuple[Rate, Rate, Rate] = (per_address_user, per_address, per_user_failures)
        self.known_address_ttl_s = known_address_ttl_s
        self.prefix = prefix
        self._local = _LocalCounters()
        self.breaker = breaker or CircuitBreaker("redis", 1, REDIS_RETRY_AFTER_S)
        self._check_script: AsyncScript | None = None
        self._settle_script: AsyncScript | None = None

    def keys_for(self, address: str, username: str) -> tuple[str, str, str, str]:
        """Redis keys of one (address, username): pair counter, address counter, user failures, known.
        The address comes first and cannot contain '|', so a username cannot forge another pair's key."""
        a, u, p = address_key(address), username.lower(), self.prefix
        return f"{p}:addr_user:{a}|{u}", f"{p}:addr:{a}", f"{p}:user_failures:{u}", f"{p}:known:{a}|{u}"

    async def _via_redis(self, call: Callable[[Redis], Awaitable[T]], now: float) -> T | None:
        """Run `call` against Redis unless its circuit breaker is open (or its half-open probe is out);
        None (degraded) when skipped or when it fails."""
        if self._redis is None:
            return None
        try:
            probe = self.breaker.acquire()
        except CircuitOpenError:
            return None  # known down: no socket timeout paid, per-process limits decide
        from redis.exceptions import RedisError

        try:
            result = await call(self._redis())
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            # ValueError: the client is built on first use, and redis-py refuses some REDIS_URL options
            # only then (the port is checked at start). Degrade like an outage rather than fail logins.
            self.breaker.failure()
            log.warning(
                "rate limiter degraded: Redis unavailable, using per-process limits",
                extra={
                    "error": type(exc).__name__,
                    # redis-py's URL errors name the option, never the URL (which may hold a password)
                    **({"detail": str(exc)[:200]} if isinstance(exc, ValueError) else {}),
                    "breaker": self.breaker.state.name,
                },
            )
            return None
        except BaseException:
            self.breaker.release(probe)
            raise
        self.breaker.success()
        return result

    async def check(self, address: str, username: str) -> LoginDecision:
        now = time.monotonic()
        keys = self.keys_for(address, username)
        args: list[int] = []
        for rate in self.rates:
            args += [rate.limit, rate.window_s * 1000]

        async def run(client: Redis) -> list[Any]:
            if self._check_script is None:
                self._check_script = client.register_script(_LUA_CHECK)
            return list(await self._check_script(keys=list(keys), args=args))

        out = await self._via_redis(run, now)
        if out is not None:
            refused, retry_s, degraded = int(out[0]), int(out[1]) / 1000, False
        else:
            (refused, retry_s), degraded = self._local.check(keys, self.rates, now), True
        return LoginDecision(
            allowed=not refused,
            retry_after=max(1, math.ceil(retry_s)) if refused else 0,
            degraded=degraded,
            refused_by=tuple(name for bit, name in _SCOPES if refused & bit),
            keys=keys,
        )

    async def settle(self, decision: LoginDecision, *, succeeded: bool) -> None:
        """The allowed attempt did not end in a failed password check (it succeeded, or errored before a
        verdict): give back its reservation on the per-user failure counter; on success remember the
        address for this account. Settled where it was counted (Redis or this process)."""
        if not decision.allowed:
            return
        _, _, user_key, known_key = decision.keys
        now = time.monotonic()
        if decision.degraded:
            self._local.settle(user_key, known_key, succeeded, self.known_address_ttl_s, now)
            return

        async def run(client: Redis) -> None:
            if self._settle_script is None:
                self._settle_script = client.register_script(_LUA_SETTLE)
            await self._settle_script(
                keys=[user_key, known_key], args=[int(succeeded), self.known_address_ttl_s * 1000]
            )

        # Redis gone since the check: the reservation stays counted as a failure (the safe side).
        await self._via_redis(run, now)
