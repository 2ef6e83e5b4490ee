"""The service under real gunicorn with 4 uvicorn workers: the limit and the metrics span all workers."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_sync

from devenv.run import dockerfile_cmd
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import ROOT, USER_PASSWORD
from tests.app.servers import Server, fresh_get, fresh_post, gunicorn

WORKERS = 4


@pytest.fixture(scope="module")
def server(pg: PostgresInstance, redis_server: RedisInstance, users: list[str]) -> Iterator[Server]:
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": str(WORKERS),
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
    }
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:  # the image's own command
        yield srv


def test_login_limit_is_shared_by_all_workers(server: Server, redis_server: RedisInstance) -> None:
    """5/minute per client: the 6th attempt is refused although the attempts hit different workers.
    With a per-process limiter each of the 4 workers would allow 5 (20/minute)."""
    if redis_server.proc is None:
        redis_server.start()
    # Fresh connections usually spread over the workers, but the kernel may hand all 6 to one; then the
    # round proves nothing about sharing, so it is repeated (at most 3 rounds, each must limit correctly).
    spread: dict[str, int] = {}
    for _round in range(3):
        with redis_sync.Redis.from_url(redis_server.url) as r:
            r.flushdb()
        tag = uuid.uuid4().hex[:8]
        statuses = []
        ids = []
        for i in range(6):
            rid = f"rl-{tag}-{i}"
            ids.append(rid)
            resp = fresh_post(
                f"{server.url}/api/auth/login",
                json={"username": "bob", "password": USER_PASSWORD},
                headers={"X-Request-ID": rid},
            )
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                assert int(resp.headers["Retry-After"]) >= 1
        assert statuses == [200] * 5 + [429], statuses
        time.sleep(0.3)  # the access line is written right after the response
        spread = server.pids_for(set(ids))
        assert len(spread) == 6, spread
        if len(set(spread.values())) >= 2:
            break
    assert len(set(spread.values())) >= 2, f"all attempts landed on one worker in 3 rounds: {spread}"


def _health_count(metrics_text: str) -> float:
    total = 0.0
    for m in re.finditer(r"^http_requests_total\{([^}]*)\} ([0-9.e+]+)$", metrics_text, re.MULTILINE):
        if 'route="/health"' in m.group(1) and 'status="200"' in m.group(1):
            total += float(m.group(2))
    return total


def test_metrics_aggregate_requests_from_all_workers(server: Server) -> None:
    before = _health_count(fresh_get(f"{server.url}/metrics").text)
    tag = uuid.uuid4().hex[:8]
    ids = {f"m-{tag}-{i}" for i in range(40)}
    for rid in ids:
        assert fresh_get(f"{server.url}/health", headers={"X-Request-ID": rid}).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        after = _health_count(fresh_get(f"{server.url}/metrics").text)
        if after - before >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pids = server.pids_for(ids)
    assert len(set(pids.values())) >= 2, "requests did not spread over workers; the test would prove nothing"
    # A per-process registry would report only the share of whichever worker answered the scrape.
    assert after - before == 40, (before, after, sorted(set(pids.values())))


def test_gunicorn_uses_configured_worker_count(server: Server) -> None:
    boots = set(re.findall(r"Booting worker with pid: (\d+)", server.log_path.read_text()))
    assert len(boots) >= WORKERS, boots


def test_forwarded_for_from_the_trusted_proxy_identifies_clients(
    server: Server, redis_server: RedisInstance
) -> None:
    """Behind the LB (a trusted peer: loopback by default) each X-Forwarded-For client has its own budget,
    so one busy client does not lock everyone behind the same load balancer out."""
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    statuses = [
        fresh_post(
            f"{server.url}/api/auth/login",
            json={"username": f"ghost{i}", "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(7)
    ]
    assert statuses == [401] * 7, statuses
    with redis_sync.Redis.from_url(redis_server.url) as r:
        assert r.exists("rl:login:addr:203.0.113.6")
        assert not r.exists("rl:login:addr:127.0.0.1")


def _client_at(address: str) -> httpx.Client:
    """A client whose TCP connections come from `address` (127.0.0.0/8 is all loopback on Linux). The
    server trusts X-Forwarded-For only from 127.0.0.1 (FORWARDED_ALLOW_IPS' default), so any other
    loopback address is a direct, untrusted client."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_hundred_failures_from_one_address_leave_the_owner_able_to_log_in_from_another(
    server: Server, redis_server: RedisInstance
) -> None:
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    with _client_at("127.0.0.2") as attacker:
        responses = [
            attacker.post(f"{server.url}/api/auth/login", json={"username": "carol", "password": "guess"})
            for _ in range(100)
        ]
    assert [r.status_code for r in responses] == [401] * 5 + [429] * 95
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in responses[5:])
    # The 95 refused attempts guessed nothing, so they do not count toward the username's 100/hour ceiling.
    with _client_at("127.0.0.3") as owner:
        r = owner.post(f"{server.url}/api/auth/login", json={"username": "carol", "password": USER_PASSWORD})
    assert r.status_code == 200, r.text


def test_a_direct_client_cannot_get_a_fresh_bucket_with_x_forwarded_for(
    server: Server, redis_server: RedisInstance
) -> None:
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    with _client_at("127.0.0.2") as c:
        statuses = [
            c.post(
                f"{server.url}/api/auth/login",
                json={"username": "dave", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            ).status_code
            for i in range(6)
        ]
    assert statuses == [401] * 5 + [429], statuses
    with redis_sync.Redis.from_url(redis_server.url) as r:
        keys = {k.decode() for k in r.keys("rl:login:*")}
    assert "rl:login:addr_user:127.0.0.2|dave" in keys
    assert not [k for k in keys if "198.51.100." in k], keys


def test_username_failure_ceiling_holds_across_proxied_addresses(
    pg: PostgresInstance, redis_server: RedisInstance, users: list[str]
) -> None:
    """A botnet behind the load balancer (X-Forwarded-For from the trusted 127.0.0.1), each address far below
    5/minute, fills the username's failure ceiling (6/hour here; 2 workers, fresh connections); then new
    addresses are refused while the owner's address still logs in."""
    if redis_server.proc is None:
        redis_server.start()
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "LOGIN_USER_FAILURE_LIMIT": "6/hour",
    }
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:

        def login(address: str, password: str) -> httpx.Response:
            return fresh_post(
                f"{srv.url}/api/auth/login",
                json={"username": "alice", "password": password},
                headers={"X-Forwarded-For": address},
            )

        assert login("198.51.100.30", USER_PASSWORD).status_code == 200  # the owner, at home
        statuses = [login(f"203.0.113.{i + 1}", "guess").status_code for i in range(6)]
        assert statuses == [401] * 6
        refused = login("203.0.113.99", USER_PASSWORD)
        assert refused.status_code == 429
        assert 60 < int(refused.headers["Retry-After"]) <= 3600
        assert login("198.51.100.30", USER_PASSWORD).status_code == 200
