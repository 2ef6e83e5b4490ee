"""Login, JWT, and the login rate limit (Redis-backed; degraded per-process when Redis is down)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest
from pydantic import SecretStr

from app.manage import create_user
from app.settings import Settings
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


async def test_sixth_attempt_in_a_minute_is_refused(
    client: httpx.AsyncClient, users: list[str], redis_server: RedisInstance
) -> None:
    statuses = [(await _login(client, "dave", "wrong")).status_code for _ in range(5)]
    assert statuses == [401] * 5
    r = await _login(client, "dave")  # even the right password: the limit counts attempts
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    import redis as redis_sync

    with redis_sync.Redis.from_url(redis_server.url) as rc:
        keys = sorted(rc.keys("rl:login:*"))
        assert keys == [b"rl:login:ip:127.0.0.1", b"rl:login:user:dave"]
        assert all(0 < rc.pttl(k) <= 60_000 for k in keys)  # never a key without expiry


async def test_limit_is_per_client_and_per_account(settings: Settings, users: list[str]) -> None:
    """Another IP is not blocked by the first one's attempts, but the attacked account is."""
    from app.main import create_app

    app = create_app(settings)
    try:

        def client_from(ip: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(ip, 1234)), base_url="http://t"
            )

        async with client_from("203.0.113.1") as a, client_from("203.0.113.2") as b:
            for _ in range(5):
                await _login(a, "erin", "wrong")
            assert (await _login(a, "alice")).status_code == 429  # same client, other account
            assert (await _login(b, "alice")).status_code == 200  # other client, other account
            assert (await _login(b, "erin")).status_code == 429  # other client, attacked account
    finally:
        await app.state.resources.close()


async def test_redis_down_keeps_serving_and_still_limits(
    client: httpx.AsyncClient, users: list[str], redis_server: RedisInstance, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    try:
        caplog.set_level(logging.WARNING, logger="app.ratelimit")
        statuses = [(await _login(client, "bob")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429], statuses
        # What a dead Redis adds to a login: one refused connect, then the limiter skips Redis for 5 s.
        limiter = client.app.state.resources.login_limiter  # type: ignore[attr-defined]
        limiter._redis_down_until = 0.0
        start = time.perf_counter()
        decision = await limiter.hit("probe")
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
                json={"username": f"ghost{i}", "password": "wrong"},
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
