"""The item read cache (app/cache.py) against real Redis and PostgreSQL, in one process and under gunicorn."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.cache import ReadCache
from app.main import create_app
from app.settings import Settings
from devenv.run import dockerfile_cmd
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import ROOT, USER_PASSWORD, make_settings
from tests.app.servers import Server, fresh_get, fresh_post, gunicorn


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cache(client: httpx.AsyncClient) -> ReadCache:
    cache: ReadCache = client.app.state.resources.cache  # type: ignore[attr-defined]
    return cache


async def _item(client: httpx.AsyncClient, token: str) -> tuple[int, int]:
    """A new category and an item in it: (category id, item id)."""
    r = await client.post(
        "/api/categories", json={"name": f"cat-{uuid.uuid4().hex[:8]}"}, headers=_auth(token)
    )
    assert r.status_code == 201, r.text
    cat = int(r.json()["id"])
    r = await client.post(
        "/api/items",
        json={"name": "kettle ☕", "description": "1.7 l", "price_cents": 2599, "category_id": cat},
        headers=_auth(token),
    )
    assert r.status_code == 201, r.text
    return cat, int(r.json()["id"])


async def _review(client: httpx.AsyncClient, token: str, item_id: int, rating: int) -> None:
    r = await client.post(f"/api/items/{item_id}/reviews", json={"rating": rating}, headers=_auth(token))
    assert r.status_code == 201, r.text


@pytest.fixture
async def uncached(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same database through an app with the cache off (CACHE_TTL_SECONDS=0): FastAPI's own rendering."""
    app = create_app(settings.model_copy(update={"cache_ttl_seconds": 0}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c
    await app.state.resources.close()


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same Redis and database: another worker process, as far as the cache can tell."""
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.resources.close()


@pytest.fixture
def selects(client: httpx.AsyncClient) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = client.app.state.resources.engine.sync_engine  # type: ignore[attr-defined]

    def on_exec(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_exec)
    yield seen
    event.remove(engine, "before_cursor_execute", on_exec)


async def test_hit_after_miss_is_identical_to_the_uncached_response(
    client: httpx.AsyncClient, uncached: httpx.AsyncClient, token: str, selects: list[str]
) -> None:
    cat, item_id = await _item(client, token)
    await _review(client, token, item_id, 4)
    for path, params in [
        (f"/api/items/{item_id}", {}),
        ("/api/items", {"category_id": cat}),
        ("/api/items", {"category_id": cat, "limit": 50, "offset": 0}),  # defaults spelled out: same key
    ]:
        plain = await uncached.get(path, params=params)
        before = dict(_cache(client).stats)
        selects.clear()
        first = await client.get(path, params=params)
        second = await client.get(path, params=params)
        assert first.status_code == second.status_code == plain.status_code == 200
        assert first.content == second.content == plain.content, path
        for h in ("content-type", "content-length"):
            assert first.headers[h] == second.headers[h] == plain.headers[h], h
        assert _cache(client).stats["hit"] >= before["hit"] + 1
        assert len(selects) <= 2  # at most the one miss hit the database
    assert _cache(client).stats["hit"] >= 4  # the spelled-out defaults were a hit too
    missing = await client.get("/api/items/2147483000")
    assert missing.status_code == 404
    assert missing.json() == (await uncached.get("/api/items/2147483000")).json()


async def test_every_write_is_visible_to_the_next_read_in_any_worker(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient, token: str
) -> None:
    cat, item_id = await _item(client, token)
    for c in (client, other_worker):  # warm both "workers"
        assert (await c.get(f"/api/items/{item_id}")).json()["reviews"] == []
        assert len((await c.get("/api/items", params={"category_id": cat})).json()) == 1
    for rating in (1, 2, 3, 4, 5):
        await _review(client, token, item_id, rating)
        for c in (other_worker, client):
            got = (await c.get(f"/api/items/{item_id}")).json()
            assert [r["rating"] for r in got["reviews"]] == list(range(1, rating + 1))
            listed = (await c.get("/api/items", params={"category_id": cat})).json()
            assert [r["rating"] for r in listed[0]["reviews"]] == list(range(1, rating + 1))
    # A new item shows up in the list another worker had cached.
    r = await other_worker.post(
        "/api/items", json={"name": "mug", "price_cents": 1, "category_id": cat}, headers=_auth(token)
    )
    assert r.status_code == 201
    assert len((await client.get("/api/items", params={"category_id": cat})).json()) == 2
    assert _cache(client).stats["hit"] > 0


async def test_concurrent_misses_run_one_query(
    client: httpx.AsyncClient, token: str, selects: list[str]
) -> None:
    cat, item_id = await _item(client, token)
    # One computation of each, uncached, for the reference number of SELECTs.
    _cache(client).ttl_s = 0
    selects.clear()
    await client.get(f"/api/items/{item_id}")
    per_detail = len(selects)
    _cache(client).ttl_s = 600
    for path, params in [(f"/api/items/{item_id}", {}), ("/api/items", {"category_id": cat})]:
        before = dict(_cache(client).stats)
        selects.clear()
        responses = await asyncio.gather(*(client.get(path, params=params) for _ in range(20)))
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        stats = _cache(client).stats
        assert stats["miss"] - before["miss"] == 1, stats  # one request computed ...
        joined = stats["coalesced"] - before["coalesced"]
        late = stats["hit"] - before["hit"]  # (its lookup missed, but the entry was stored meanwhile)
        assert joined + late == 19, stats  # ... the others joined it or found its entry
        assert joined >= 1, stats
        assert 1 <= len(selects) <= max(per_detail, 2), selects


async def test_redis_down_reads_and_writes_work_and_nothing_stale_after(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient, token: str, redis_server: RedisInstance
) -> None:
    cat, item_id = await _item(client, token)
    for c in (client, other_worker):
        assert (await c.get(f"/api/items/{item_id}")).status_code == 200
    redis_server.stop()
    try:
        t0 = time.monotonic()
        got = await client.get(f"/api/items/{item_id}")
        assert got.status_code == 200
        assert got.json()["reviews"] == []
        await _review(client, token, item_id, 2)  # the write succeeds; its invalidation is pending
        for c in (client, other_worker):
            got = await c.get(f"/api/items/{item_id}")
            assert got.status_code == 200
            assert [r["rating"] for r in got.json()["reviews"]] == [2]
            assert (await c.get("/api/items", params={"category_id": cat})).status_code == 200
        assert time.monotonic() - t0 < 5  # bounded by the socket timeout, then skipped
    finally:
        redis_server.start()
    for _ in range(3):
        for c in (client, other_worker):
            got = await c.get(f"/api/items/{item_id}")
            assert [r["rating"] for r in got.json()["reviews"]] == [2]


async def test_a_failed_invalidation_is_retried_and_blocks_this_process_meanwhile(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis reachable for reads but the write's INCR fails (a blip): the entries under the old generation
    are still in Redis. The writer's process never serves them; the retry makes them unreachable for all."""
    _, item_id = await _item(client, token)
    for c in (client, other_worker):
        assert (await c.get(f"/api/items/{item_id}")).json()["reviews"] == []
        assert (await c.get(f"/api/items/{item_id}")).json()["reviews"] == []  # cached now
    cache = _cache(client)
    real_bump = cache._bump
    calls = 0

    async def failing_once(namespace: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("injected")
        await real_bump(namespace)

    monkeypatch.setattr(cache, "_bump", failing_once)
    monkeypatch.setattr("app.cache.REDIS_RETRY_AFTER_S", 0.0)
    await _review(client, token, item_id, 5)
    assert cache._pending == {"items"}
    # The writer's own process: never the old value (it retries the bump first, or bypasses the cache).
    assert [r["rating"] for r in (await client.get(f"/api/items/{item_id}")).json()["reviews"]] == [5]
    # Another process may see the old entry only until the retry (background, every BUMP_RETRY_S).
    deadline = time.monotonic() + 5
    while True:
        got = (await other_worker.get(f"/api/items/{item_id}")).json()["reviews"]
        if got:
            break
        assert time.monotonic() < deadline, "invalidation never retried"
        await asyncio.sleep(0.1)
    assert not cache._pending
    assert [r["rating"] for r in got] == [5]


# ------------------------------------------------------------------------------------------- gunicorn
WORKERS = 3
ROUNDS = 12


@pytest.fixture(scope="module")
def server(pg: PostgresInstance, redis_server: RedisInstance, users: list[str]) -> Iterator[Server]:
    if redis_server.proc is None:
        redis_server.start()
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": str(WORKERS),
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "CACHE_TTL_SECONDS": "600",
    }
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:
        yield srv


def _get(server: Server, path: str, rid: str, **params: Any) -> httpx.Response:
    r = fresh_get(f"{server.url}{path}", params=params, headers={"X-Request-ID": rid})
    assert r.status_code == 200, r.text
    return r


def test_write_then_read_across_gunicorn_workers(server: Server) -> None:
    """Bounded rounds of: every worker has the item cached, one worker writes, reads on fresh connections
    (spread over the workers) all see the write."""
    login = fresh_post(f"{server.url}/api/auth/login", json={"username": "carol", "password": USER_PASSWORD})
    assert login.status_code == 200, login.text
    auth = _auth(login.json()["access_token"])
    r = fresh_post(f"{server.url}/api/categories", json={"name": f"g-{uuid.uuid4().hex[:8]}"}, headers=auth)
    cat = r.json()["id"]
    r = fresh_post(
        f"{server.url}/api/items", json={"name": "g", "price_cents": 1, "category_id": cat}, headers=auth
    )
    item_id = r.json()["id"]
    tag = uuid.uuid4().hex[:8]
    rids: set[str] = set()
    started = time.monotonic()
    for n in range(1, ROUNDS + 1):
        assert time.monotonic() - started < 120
        for i in range(WORKERS * 2):  # warm (and hit) the cache in the workers
            _get(server, f"/api/items/{item_id}", f"w-{tag}-{n}-{i}")
        r = fresh_post(f"{server.url}/api/items/{item_id}/reviews", json={"rating": 1 + n % 5}, headers=auth)
        assert r.status_code == 201, r.text
        for i in range(WORKERS * 2):
            rid = f"r-{tag}-{n}-{i}"
            rids.add(rid)
            assert len(_get(server, f"/api/items/{item_id}", rid).json()["reviews"]) == n, (n, i)
            listed = _get(server, "/api/items", rid + "l", category_id=cat).json()
            assert len(listed[0]["reviews"]) == n, (n, i)
    time.sleep(0.3)
    pids = set(server.pids_for(rids).values())
    assert len(pids) >= 2, f"all reads landed on one worker: {pids}"
    metrics = fresh_get(f"{server.url}/metrics").text
    assert 'cache_requests_total{namespace="items",result="hit"}' in metrics


def test_settings_bound_the_ttl(pg: PostgresInstance, redis_server: RedisInstance) -> None:
    from app.settings import SettingsError

    assert make_settings(pg.url, redis_server.url).cache_ttl_seconds == 600
    for bad in (-1, 86401):
        with pytest.raises(SettingsError, match="CACHE_TTL_SECONDS"):
            make_settings(pg.url, redis_server.url, cache_ttl_seconds=bad)
