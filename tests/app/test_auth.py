"""Login, JWT, and the login rate limit (Redis-backed; degraded per-process when Redis is down)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.manage import create_user
from app.settings import Settings, load_settings
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import USER_PASSWORD


async def _login(client: httpx.AsyncClient, user: str, password: str = USER_PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": user, "password": password})


async def test_login_issues_a_working_jwt(
    client: httpx.AsyncClient, users: list[str], settings: Settings
) -> None:
    r = await _login(client, "carol")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["access_token"], settings.jwt_key, algorithms=["HS256"])
    assert claims["sub"] == "carol"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 30 * 60
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"username": "carol"}


async def test_wrong_password_and_unknown_user_look_the_same(
    client: httpx.AsyncClient, users: list[str]
) -> None:
    bad = await _login(client, "carol", "wrong")
    unknown = await _login(client, "nobody-here", "wrong")
    assert bad.status_code == unknown.status_code == 401
    assert bad.json() == unknown.json()


async def test_forged_tokens_are_rejected(client: httpx.AsyncClient, users: list[str]) -> None:
    forged = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60}, "some-other-key-" * 3, algorithm="HS256"
    )
    none_alg = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "", algorithm="none")
    expired = jwt.encode({"sub": "alice", "exp": int(time.time()) - 1}, "x" * 40, algorithm="HS256")
    for tok in (forged, none_alg, expired):
        r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401


def _client_from(app: FastAPI, host: str) -> httpx.AsyncClient:
    """A client whose address the app sees as `host` (as uvicorn reports the peer, or the trusted proxy's
    X-Forwarded-For entry)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 1234)), base_url="http://t")


@contextlib.asynccontextmanager
async def _app(settings: Settings, **limits: str) -> AsyncIterator[FastAPI]:
    """The app with other login limits (validated like the environment's), counters reset."""
    from app.main import create_app

    if limits:
        settings = load_settings(
            database_url=settings.database_url.get_secret_value(),
            redis_url=settings.redis_url.get_secret_value(),
            app_env="development",
            **limits,
        )
    app = create_app(settings)
    try:
        yield app
    finally:
        await app.state.resources.close()


async def test_sixth_attempt_from_one_address_on_one_account_is_refused(
    client: httpx.AsyncClient, users: list[str], redis_server: RedisInstance
) -> None:
    statuses = [(await _login(client, "dave", "wrong")).status_code for _ in range(5)]
    assert statuses == [401] * 5
    r = await _login(client, "dave")  # even the right password: the limit counts attempts
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json() == {"detail": "too many login attempts, retry later"}
    # Per (address, username): the same address may still log in to another account.
    assert (await _login(client, "alice")).status_code == 200
    import redis as redis_sync

    with redis_sync.Redis.from_url(redis_server.url) as rc:
        keys = rc.keys("rl:login:*")
        assert keys
        assert all(rc.pttl(k) > 0 for k in keys)  # never a key without expiry


async def test_an_address_is_limited_across_usernames(settings: Settings, users: list[str]) -> None:
    """Spraying many usernames from one address is capped by LOGIN_ADDRESS_RATE_LIMIT (6/minute here)."""
    async with (
        _app(settings, login_address_rate_limit="6/minute") as app,
        _client_from(app, "203.0.113.1") as a,
        _client_from(app, "203.0.113.2") as b,
    ):
        statuses = [(await _login(a, f"ghost{i}", "wrong")).status_code for i in range(6)]
        assert statuses == [401] * 6  # each username is far below its own 5/minute
        r = await _login(a, "alice")  # a 7th username, right password
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert (await _login(b, "alice")).status_code == 200  # another address is not affected


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis", "redis-down"])
async def test_failure_ceiling_per_username_holds_across_addresses_but_not_for_the_owners_address(
    settings: Settings, users: list[str], redis_server: RedisInstance, redis_up: bool
) -> None:
    """LOGIN_USER_FAILURE_LIMIT (6/hour here) caps guessing on one account from any number of addresses;
    the addresses the owner logged in from keep working. Same rules when Redis is down (per process)."""
    if not redis_up:
        redis_server.stop()
    try:
        async with (
            _app(settings, login_user_failure_limit="6/hour") as app,
            _client_from(app, "198.51.100.10") as home,
        ):
            for _ in range(2):  # successes do not count toward the ceiling
                assert (await _login(home, "erin")).status_code == 200
            for i in range(3):  # a botnet: 3 addresses x 2 guesses, each far below 5/minute
                async with _client_from(app, f"203.0.113.{i + 1}") as bot:
                    guesses = [(await _login(bot, "erin", "guess")).status_code for _ in range(2)]
                    assert guesses == [401] * 2
            async with _client_from(app, "203.0.113.50") as bot:
                r = await _login(bot, "erin")  # even the right password: no more guesses from new places
                assert r.status_code == 429
                assert 60 < int(r.headers["Retry-After"]) <= 3600
                assert (await _login(bot, "alice")).status_code == 200  # other accounts are not affected
            assert (await _login(home, "erin")).status_code == 200  # the owner is not locked out
            assert (await _login(home, "erin", "typo")).status_code == 401  # still only 5/minute here
    finally:
        if not redis_up:
            redis_server.start()


async def test_successes_and_errors_do_not_count_toward_the_username_ceiling(
    settings: Settings, users: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only wrong passwords fill the per-username ceiling (5/hour here): not the owner's own logins, not
    attempts that failed for lack of a database, so an outage cannot lock an account."""
    # 5 simulated outages would open the database's circuit breaker (BREAKER_FAILURE_THRESHOLD=5) and the
    # logins after them would get 503 for a while: not what this test is about.
    async with _app(settings, login_user_failure_limit="5/hour", breaker_failure_threshold="10") as app:
        async with _client_from(app, "198.51.100.20") as owner:
            assert [(await _login(owner, "carol")).status_code for _ in range(5)] == [200] * 5
        from app.routes import auth

        async def database_gone(password: str, hashed: str | None) -> bool:
            raise ConnectionError("database gone")

        with monkeypatch.context() as m:
            m.setattr(auth, "verify_password", database_gone)
            for i in range(5):
                async with _client_from(app, f"203.0.113.{i + 1}") as c:
                    assert (await _login(c, "carol")).status_code == 503
        async with _client_from(app, "198.51.100.21") as new_place:  # never logged in from here
            assert (await _login(new_place, "carol", "wrong")).status_code == 401
            for i in range(4):
                async with _client_from(app, f"203.0.113.{i + 1}") as c:
                    assert (await _login(c, "carol", "wrong")).status_code == 401
            # 5 wrong passwords now: the ceiling is reached for addresses carol never logged in from
            assert (await _login(new_place, "carol")).status_code == 429


async def test_ipv6_clients_are_limited_per_64(settings: Settings, users: list[str]) -> None:
    """One IPv6 subscriber holds a whole /64; rotating the low bits must not buy fresh attempts."""
    async with _app(settings) as app:
        for i in range(5):
            async with _client_from(app, f"2001:db8:1:2::{i + 1:x}") as c:
                assert (await _login(c, "bob", "wrong")).status_code == 401
        async with _client_from(app, "2001:db8:1:2:ffff::1") as c:
            assert (await _login(c, "bob")).status_code == 429
        async with _client_from(app, "2001:db8:1:3::1") as c:  # the next /64 is someone else
            assert (await _login(c, "bob")).status_code == 200


async def test_limited_logins_never_echo_the_password_or_log_the_address(
    settings: Settings, users: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    password = "Sentinel-pw-7f3a9"
    caplog.set_level(logging.DEBUG)
    async with _app(settings) as app, _client_from(app, "203.0.113.77") as c:
        responses = [await _login(c, "alice", password) for _ in range(6)]
    assert [r.status_code for r in responses] == [401] * 5 + [429]
    for r in responses:
        assert password not in r.text
        assert password not in str(r.headers)
    limited = [rec for rec in caplog.records if rec.getMessage() == "login rate limited"]
    assert len(limited) == 1
    assert limited[0].limits == ("address+username",)  # type: ignore[attr-defined]
    for rec in caplog.records:
        dump = f"{rec.getMessage()} {rec.__dict__}"
        assert password not in dump
        assert "203.0.113.77" not in dump  # the limiter adds no client address to the logs


async def test_redis_down_keeps_serving_and_still_limits(
    client: httpx.AsyncClient, users: list[str], redis_server: RedisInstance, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    try:
        caplog.set_level(logging.WARNING, logger="app.ratelimit")
        statuses = [(await _login(client, "bob")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429], statuses
        async with _client_from(client.app, "203.0.113.9") as elsewhere:  # type: ignore[attr-defined]
            assert (await _login(elsewhere, "bob")).status_code == 200  # per address, as with Redis
        # What a dead Redis adds to a login: one refused connect; its breaker then skips Redis while open.
        limiter = client.app.state.resources.login_limiter  # type: ignore[attr-defined]
        limiter.breaker.success()  # closed again: the next check tries Redis
        start = time.perf_counter()
        decision = await limiter.check("192.0.2.1", "probe")
        assert decision.degraded
        assert time.perf_counter() - start < 0.5
        assert any("rate limiter degraded" in r.getMessage() for r in caplog.records)
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/api/items")).status_code == 200
    finally:
        redis_server.start()


async def test_a_redis_url_option_redis_py_refuses_degrades_instead_of_failing_logins(
    settings: Settings, users: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The client is built on first use; redis-py checks URL options only then. Logins must keep working
    # (per-process limit) and /ready must name Redis, not answer 500.
    from app.main import create_app

    bad = settings.model_copy(
        update={"redis_url": SecretStr("redis://:hunter2@127.0.0.1:6379/0?socket_timeout=soon")}
    )
    app = create_app(bad)
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    caplog.set_level(logging.WARNING, logger="app.ready")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await _login(c, "carol")).status_code == 200
            ready = await c.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["redis"]
        assert ready.json()["checks"]["redis"] == "failed"  # the public probe names it, nothing more
        not_ready = [r for r in caplog.records if r.getMessage() == "not ready"]
        assert "socket_timeout" in not_ready[-1].reasons["redis"]  # type: ignore[attr-defined]
        assert "hunter2" not in ready.text
        assert "hunter2" not in caplog.text
        degraded = [r for r in caplog.records if "rate limiter degraded" in r.getMessage()]
        assert degraded
        assert degraded[0].error == "ValueError"  # type: ignore[attr-defined]
    finally:
        await app.state.resources.close()


def test_operator_creates_first_user_no_default_account(pg: PostgresInstance) -> None:
    """Production has no seeded credentials: an operator creates users; short passwords are refused."""
    env = {**os.environ, "DATABASE_URL": pg.url}
    weak = subprocess.run(
        [sys.executable, "-m", "app.manage", "create-user", "frank"],
        env={**env, "NEW_USER_PASSWORD": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "app.manage", "create-user", "frank"],
        env={**env, "NEW_USER_PASSWORD": "frank-long-password"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr


async def test_created_user_can_log_in(client: httpx.AsyncClient, pg: PostgresInstance) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    await create_user(pg.url, name, "a-good-long-password")
    assert (await _login(client, name, "a-good-long-password")).status_code == 200
    assert (
        await client.post("/api/auth/login", json={"username": "demo", "password": "demo"})
    ).status_code == 401


async def test_window_expires(settings: Settings, users: list[str], redis_server: RedisInstance) -> None:
    import asyncio

    from app.main import create_app

    app = create_app(settings.model_copy(update={"login_rate_limit": "2/second"}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            # Concurrently: the limit is checked before the (slow) password hash, so all three attempts hit
            # Redis within milliseconds, well inside the 1 s window.
            attempts = await asyncio.gather(*(_login(c, "erin", "wrong") for _ in range(3)))
            assert sorted(a.status_code for a in attempts) == [401, 401, 429]
            await asyncio.sleep(1.1)
            assert (await _login(c, "erin")).status_code == 200
    finally:
        await app.state.resources.close()


async def test_client_cannot_pick_its_own_key_with_x_forwarded_for(client: httpx.AsyncClient) -> None:
    """The app never reads X-Forwarded-For itself (only uvicorn does, for trusted peers)."""
    statuses = [
        (
            await client.post(
                "/api/auth/login",
                json={"username": "ghost", "password": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
        ).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_password_hashing_does_not_block_other_requests(
    client: httpx.AsyncClient, users: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 runs in a thread: while one login is hashing, other requests are still answered."""
    import asyncio
    import threading

    from app import security

    started, release = threading.Event(), threading.Event()
    real_verify = security._hasher().verify

    def slow_verify(password: str, hashed: str) -> bool:
        started.set()
        release.wait(10)  # blocks whatever thread runs it
        return real_verify(password, hashed)

    monkeypatch.setattr(security._hasher(), "verify", slow_verify)
    login = asyncio.create_task(_login(client, "alice"))
    try:
        for _ in range(200):
            if started.is_set():
                break
            await asyncio.sleep(0.05)
        assert started.is_set()
        health = await asyncio.wait_for(client.get("/health"), 5)
        assert health.status_code == 200
        assert not login.done()  # the login is still hashing, yet /health was served
    finally:
        release.set()
    assert (await login).status_code == 200


def test_dummy_hash_costs_what_a_real_hash_costs() -> None:
    # Unknown users are verified against the precomputed dummy hash; if its argon2 parameters drifted from
    # the hasher's (a pwdlib upgrade, a tuned cost), "unknown user" would answer faster than "wrong password".
    from app import security

    (hasher,) = security._hasher().hashers
    assert hasher.identify(security._DUMMY_HASH)
    assert not hasher.check_needs_rehash(security._DUMMY_HASH)
    assert security._DUMMY_HASH.split("$")[3] == security.hash_password("x").split("$")[3]


async def test_degraded_counters_stay_bounded_under_a_spray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Redis the counters live in each worker: a spray of addresses and usernames must not grow its
    memory without limit, and limiting must go on."""
    from app import ratelimit

    monkeypatch.setattr(ratelimit, "_LOCAL_MAX_KEYS", 100)
    limiter = ratelimit.LoginLimiter(
        None, ratelimit.Rate(5, 60), ratelimit.Rate(30, 60), ratelimit.Rate(100, 3600)
    )
    for i in range(1000):
        decision = await limiter.check(f"10.0.{i // 256}.{i % 256}", f"user{i}")
        assert decision.allowed
        assert decision.degraded
        await limiter.settle(decision, succeeded=True)
    assert len(limiter._local._windows) <= 100
    assert len(limiter._local._known) <= 100
    decisions = [await limiter.check("192.0.2.1", "alice") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].refused_by == ("address+username",)
