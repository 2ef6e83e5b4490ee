"""CRUD against a migrated PostgreSQL, and a fixed number of SQL statements per list request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event

from devenv.services import PostgresInstance
from tests.app.conftest import run_alembic


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _category(client: httpx.AsyncClient, token: str) -> int:
    r = await client.post(
        "/api/categories", json={"name": f"cat-{uuid.uuid4().hex[:8]}"}, headers=_auth(token)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_create_get_list_items_with_relations(client: httpx.AsyncClient, token: str) -> None:
    cat = await _category(client, token)
    r = await client.post(
        "/api/items",
        json={"name": "kettle", "description": "1.7 l", "price_cents": 2599, "category_id": cat},
        headers=_auth(token),
    )
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["category"]["id"] == cat
    assert item["reviews"] == []

    for rating in (5, 3):
        rr = await client.post(
            f"/api/items/{item['id']}/reviews", json={"rating": rating}, headers=_auth(token)
        )
        assert rr.status_code == 201, rr.text

    got = (await client.get(f"/api/items/{item['id']}")).json()
    assert [rv["rating"] for rv in got["reviews"]] == [5, 3]
    assert got["name"] == "kettle"
    assert got["price_cents"] == 2599

    listed = (await client.get("/api/items", params={"category_id": cat})).json()
    assert [i["id"] for i in listed] == [item["id"]]
    assert listed[0]["category"]["name"].startswith("cat-")


async def test_pages_follow_limit_and_offset(client: httpx.AsyncClient, token: str) -> None:
    """Paging, with and without a category: the pages are consecutive slices of the list ordered by id."""
    cat = await _category(client, token)
    ids = []
    for i in range(5):
        r = await client.post(
            "/api/items", json={"name": f"p{i}", "price_cents": i, "category_id": cat}, headers=_auth(token)
        )
        ids.append(r.json()["id"])

    async def page(**params: int) -> list[int]:
        r = await client.get("/api/items", params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()]

    assert await page(category_id=cat, limit=2) == ids[:2]
    assert await page(category_id=cat, limit=2, offset=2) == ids[2:4]
    assert await page(category_id=cat, limit=2, offset=4) == ids[4:]
    assert await page(category_id=cat, limit=3, offset=5) == []
    everything = await page(limit=200)
    assert everything == sorted(everything)
    assert set(ids) <= set(everything)
    assert await page(limit=3, offset=2) == everything[2:5]
    assert (await client.get(f"/api/items/{ids[3]}")).json()["name"] == "p3"


async def test_errors_are_clear(client: httpx.AsyncClient, token: str) -> None:
    assert (await client.get("/api/items/999999")).status_code == 404
    r = await client.post(
        "/api/items", json={"name": "x", "price_cents": 1, "category_id": 999999}, headers=_auth(token)
    )
    assert r.status_code == 422
    assert r.json() == {
        "detail": [{"loc": ["body", "category_id"], "msg": "category does not exist", "type": "not_found"}]
    }
    r = await client.post(
        "/api/items", json={"name": "x", "price_cents": -1, "category_id": 1}, headers=_auth(token)
    )
    assert r.status_code == 422
    assert "price_cents" in r.text
    r = await client.post("/api/items/999999/reviews", json={"rating": 9}, headers=_auth(token))
    assert r.status_code == 422  # rating out of 1..5 is rejected before the lookup


async def test_writes_require_a_valid_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/categories", json={"name": "nope"})
    assert r.status_code == 401
    r = await client.post("/api/categories", json={"name": "nope"}, headers=_auth("not-a-jwt"))
    assert r.status_code == 401


@pytest.fixture
def statements(client: httpx.AsyncClient) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = client.app.state.resources.engine.sync_engine  # type: ignore[attr-defined]

    def on_exec(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_exec)
    yield seen
    event.remove(engine, "before_cursor_execute", on_exec)


async def test_list_query_count_does_not_grow_with_items(
    client: httpx.AsyncClient, token: str, statements: list[str]
) -> None:
    """N+1 guard: listing 2 or 20 items (each with reviews) runs the same number of statements."""
    counts = {}
    for n in (2, 20):
        cat = await _category(client, token)
        for i in range(n):
            r = await client.post(
                "/api/items",
                json={"name": f"i{i}", "price_cents": i, "category_id": cat},
                headers=_auth(token),
            )
            await client.post(
                f"/api/items/{r.json()['id']}/reviews", json={"rating": 4}, headers=_auth(token)
            )
        statements.clear()
        body = (await client.get("/api/items", params={"category_id": cat, "limit": 200})).json()
        assert len(body) == n
        assert all(len(i["reviews"]) == 1 and i["category"]["id"] == cat for i in body)
        counts[n] = len([s for s in statements if s.lstrip().upper().startswith("SELECT")])
    assert counts[2] == counts[20], counts
    assert counts[20] <= 2, counts  # items JOIN categories, then one IN (...) for all reviews


async def test_migrations_downgrade_and_upgrade_cleanly(pg: PostgresInstance) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = pg.url.rsplit("/", 1)[0] + f"/{name}"
        run_alembic(url, "upgrade", "head")
        conn = await asyncpg.connect(pg.dsn.rsplit("/", 1)[0] + f"/{name}")
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"categories", "items", "reviews", "users", "alembic_version"} <= tables
        await conn.close()
        run_alembic(url, "downgrade", "base")
        run_alembic(url, "upgrade", "head")
        assert "0001" in run_alembic(url, "current").stdout
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
