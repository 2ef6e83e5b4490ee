"""The client address by hop count (FORWARDED_TRUSTED_HOPS, app/forwarded.py), the Cloud Run setting.

Google's proxies append what they saw to the RIGHT of the X-Forwarded-For the client sent; the login limiter
must key on the entry they wrote, whatever the client put on the left. Proven on raw headers: the pure
function, the app in process (the limiter's Redis keys), and the image's command under real gunicorn with
uvicorn's `*` trust still configured (the misconfiguration this replaces) — ECS/VPS trust unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis as redis_sync

from app.forwarded import TrustedHopsMiddleware, client_from_forwarded_for
from app.main import create_app
from app.settings import SettingsError, load_settings
from devenv.run import dockerfile_cmd
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import ROOT, make_settings
from tests.app.servers import Server, fresh_post, gunicorn

PEER = "169.254.1.1"  # what the container sees as the TCP peer: Google's proxy, not the client
CLIENT = "203.0.113.9"
LB = "34.120.0.1"  # the custom-domain load balancer's address, appended after the client's


def _xff(*values: str) -> list[bytes]:
    return [v.encode() for v in values]


# ------------------------------------------------------------------------------------------ the pure rule
@pytest.mark.parametrize(
    ("headers", "hops", "expected"),
    [
        # run.app: Google's front end appends the client's address -> 1 hop.
        (["6.6.6.6, 203.0.113.9"], 1, (CLIENT, 0)),
        (["203.0.113.9"], 1, (CLIENT, 0)),
        # Behind the domain's load balancer: "<supplied>, <client>, <LB>" -> 2 hops.
        ([f"6.6.6.6, 7.7.7.7, {CLIENT}, {LB}"], 2, (CLIENT, 0)),
        ([f"{CLIENT}, {LB}"], 2, (CLIENT, 0)),
        # Several headers are one list, in order (the client's first, the proxy's last).
        (["6.6.6.6", f"{CLIENT}, {LB}"], 2, (CLIENT, 0)),
        (["6.6.6.6", CLIENT], 1, (CLIENT, 0)),
        # host:port, IPv6 bare and bracketed with a port; IPv6 in canonical form (one client, one key).
        (["6.6.6.6, 203.0.113.9:4711"], 1, (CLIENT, 4711)),
        (["6.6.6.6, 2001:DB8:0::1"], 1, ("2001:db8::1", 0)),
        ([f"[2001:db8::1]:443, {LB}"], 2, ("2001:db8::1", 443)),
        ([" 203.0.113.9 ,  34.120.0.1 "], 2, (CLIENT, 0)),
        # Fewer entries than hops: not through the expected proxies -> None (the TCP peer stays).
        ([CLIENT], 2, None),
        ([], 1, None),
        # Garbled entry where the client's address should be -> None.
        (["6.6.6.6, unknown"], 1, None),
        (["6.6.6.6, "], 1, None),
        ([f"bogus, {LB}"], 2, None),
        (["[2001:db8::1"], 1, None),
        (["203.0.113.9:http"], 1, None),
        (["203.0.113.9:99999"], 1, None),
        (["[2001:db8::1]x"], 1, None),
        (["203.0.113.9"], 0, None),
    ],
)
def test_client_is_the_nth_entry_from_the_right(
    headers: list[str], hops: int, expected: tuple[str, int] | None
) -> None:
    assert client_from_forwarded_for(_xff(*headers), hops) == expected


async def _seen(hops: int, headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(client=scope.get("client"), scheme=scope.get("scheme"))

    scope = {"type": kind, "client": (PEER, 40000), "scheme": "http", "headers": headers}
    await TrustedHopsMiddleware(app, hops)(scope, None, None)
    return seen


async def test_middleware_sets_client_and_scheme_only_through_the_proxies() -> None:
    through = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9"), (b"x-forwarded-proto", b"https")]
    assert await _seen(1, through) == {"client": (CLIENT, 0), "scheme": "https"}
    assert (await _seen(1, through, "websocket"))["scheme"] == "wss"
    # Short header: the peer and the scheme stay (a client-sent proto is not believed either).
    short = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    assert await _seen(2, short) == {"client": (PEER, 40000), "scheme": "http"}
    # No header at all, a garbled proto.
    assert await _seen(1, []) == {"client": (PEER, 40000), "scheme": "http"}
    odd = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"gopher")]
    assert await _seen(1, odd) == {"client": (CLIENT, 0), "scheme": "http"}


async def test_lifespan_passes_through_and_zero_hops_is_refused() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["type"])

    await TrustedHopsMiddleware(app, 1)({"type": "lifespan"}, None, None)
    assert called == ["lifespan"]
    with pytest.raises(ValueError, match="hops"):
        TrustedHopsMiddleware(app, 0)


def test_setting_is_validated_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@h:5432/d")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    for bad in ("-1", "many", "11"):
        monkeypatch.setenv("FORWARDED_TRUSTED_HOPS", bad)
        with pytest.raises(SettingsError, match="FORWARDED_TRUSTED_HOPS"):
            load_settings()
    monkeypatch.setenv("FORWARDED_TRUSTED_HOPS", "2")
    assert load_settings().forwarded_trusted_hops == 2


# ------------------------------------------------------------------------------------ the app, in process
def _flush(redis_url: str) -> None:
    with redis_sync.Redis.from_url(redis_url) as r:
        r.flushdb()


def _addr_keys(redis_url: str) -> set[str]:
    with redis_sync.Redis.from_url(redis_url) as r:
        return {k.decode() for k in r.scan_iter("rl:login:addr:*")}


@pytest.fixture
async def app_at(pg: PostgresInstance, redis_server: RedisInstance) -> AsyncIterator[Any]:
    """-> (hops) -> an httpx client whose requests arrive from PEER, like Google's proxy's connections."""
    if redis_server.proc is None:
        redis_server.start()
    _flush(redis_server.url)
    made: list[Any] = []

    def make(hops: int) -> httpx.AsyncClient:
        app = create_app(make_settings(pg.url, redis_server.url, forwarded_trusted_hops=hops))
        transport = httpx.ASGITransport(app=app, client=(PEER, 40000))
        c = httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10)
        made.append((c, app))
        return c

    yield make
    for c, app in made:
        await c.aclose()
        await app.state.resources.close()


async def _attempts(c: httpx.AsyncClient, headers: list[list[tuple[str, str]]]) -> list[int]:
    return [
        (
            await c.post("/api/auth/login", json={"username": "erin", "password": "guess"}, headers=h)
        ).status_code
        for h in headers
    ]


@pytest.mark.parametrize(("hops", "appended"), [(1, CLIENT), (2, f"{CLIENT}, {LB}")])
async def test_spoofed_leftmost_entries_do_not_buy_fresh_login_attempts(
    app_at: Any, redis_server: RedisInstance, users: list[str], hops: int, appended: str
) -> None:
    """The same real client rotating a made-up X-Forwarded-For: the 6th attempt is refused (5/minute per
    address and username), and the limiter's only address key is the client's real one."""
    c = app_at(hops)
    spoofs = [[("X-Forwarded-For", f"198.51.100.{i}, {appended}")] for i in range(5)]
    spoofs.append([("X-Forwarded-For", "198.51.100.99"), ("X-Forwarded-For", appended)])  # two headers
    assert await _attempts(c, spoofs) == [401] * 5 + [429]
    assert _addr_keys(redis_server.url) == {f"rl:login:addr:{CLIENT}"}


async def test_different_real_clients_keep_their_own_budget(
    app_at: Any, redis_server: RedisInstance, users: list[str]
) -> None:
    c = app_at(2)
    headers = [[("X-Forwarded-For", f"6.6.6.6, 203.0.113.{i}, {LB}")] for i in range(7)]
    assert await _attempts(c, headers) == [401] * 7  # 7 clients, 1 attempt each: nobody limited
    assert len(_addr_keys(redis_server.url)) == 7


async def test_short_or_garbled_headers_fall_back_to_the_peer(
    app_at: Any, redis_server: RedisInstance, users: list[str]
) -> None:
    """Not through the expected proxies: keyed on the TCP peer, so these all share one budget."""
    c = app_at(2)
    headers = [
        [("X-Forwarded-For", CLIENT)],  # one entry, two hops expected
        [("X-Forwarded-For", f"not-an-ip, {LB}")],
        [("X-Forwarded-For", "")],
        [],
        [("X-Forwarded-For", f"[2001:db8::1, {LB}")],
        [("X-Forwarded-For", ",")],
    ]
    assert await _attempts(c, headers) == [401] * 5 + [429]
    assert _addr_keys(redis_server.url) == {f"rl:login:addr:{PEER}"}


async def test_without_the_setting_the_app_does_not_read_the_header(
    app_at: Any, redis_server: RedisInstance, users: list[str]
) -> None:
    """0 (ECS, VPS, Lambda, local): the app keys on what the server reports; only uvicorn's own
    FORWARDED_ALLOW_IPS handling (outside the app) may rewrite it."""
    c = app_at(0)
    headers = [[("X-Forwarded-For", f"198.51.100.{i}, {CLIENT}")] for i in range(6)]
    assert await _attempts(c, headers) == [401] * 5 + [429]
    assert _addr_keys(redis_server.url) == {f"rl:login:addr:{PEER}"}


# ------------------------------------------------------------------------- the image's command, gunicorn
@pytest.fixture(scope="module")
def cloudrun_server(pg: PostgresInstance, redis_server: RedisInstance, users: list[str]) -> Iterator[Server]:
    """The Cloud Run env behind the domain's load balancer (2 hops), plus FORWARDED_ALLOW_IPS=* (what the
    deployer used to set): with the hop count set, uvicorn must not take the leftmost entry before the app
    sees the request, or a short header's made-up entry would become the "peer" the app falls back to."""
    if redis_server.proc is None:
        redis_server.start()
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "FORWARDED_TRUSTED_HOPS": "2",
        "FORWARDED_ALLOW_IPS": "*",
    }
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:
        yield srv


@pytest.fixture(scope="module")
def ecs_server(pg: PostgresInstance, redis_server: RedisInstance, users: list[str]) -> Iterator[Server]:
    """The ECS/VPS env (fastapi_deploy/tuning.py PRIVATE_PROXY_NETWORKS), no hop count."""
    from fastapi_deploy.tuning import PRIVATE_PROXY_NETWORKS

    if redis_server.proc is None:
        redis_server.start()
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "FORWARDED_ALLOW_IPS": PRIVATE_PROXY_NETWORKS,
    }
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:
        yield srv


def _gunicorn_attempts(url: str, xffs: list[str]) -> list[int]:
    return [
        fresh_post(
            f"{url}/api/auth/login",
            json={"username": "erin", "password": "guess"},
            headers={"X-Forwarded-For": xff},
        ).status_code
        for xff in xffs
    ]


def test_under_gunicorn_the_cloud_run_env_ignores_the_client_written_entry(
    cloudrun_server: Server, redis_server: RedisInstance
) -> None:
    _flush(redis_server.url)
    xffs = [f"198.51.100.{i}, {CLIENT}, {LB}" for i in range(6)]
    assert _gunicorn_attempts(cloudrun_server.url, xffs) == [401] * 5 + [429]
    assert _addr_keys(redis_server.url) == {f"rl:login:addr:{CLIENT}"}


def test_under_gunicorn_a_short_header_is_keyed_on_the_real_peer_not_its_entry(
    cloudrun_server: Server, redis_server: RedisInstance
) -> None:
    """One entry where two hops are expected: the TCP peer (127.0.0.1 here), not the entry uvicorn's `*`
    would have put in its place (gunicorn_conf turns uvicorn's rewriting off)."""
    _flush(redis_server.url)
    xffs = [f"198.51.100.{i}" for i in range(6)]
    assert _gunicorn_attempts(cloudrun_server.url, xffs) == [401] * 5 + [429]
    assert _addr_keys(redis_server.url) == {"rl:login:addr:127.0.0.1"}


def test_under_gunicorn_the_ecs_env_still_walks_right_to_left_past_the_proxy(
    ecs_server: Server, redis_server: RedisInstance
) -> None:
    """Unchanged on ECS/VPS: the peer (loopback here, a private address behind the ALB) is trusted and
    uvicorn takes the rightmost untrusted entry — the address the ALB appended."""
    _flush(redis_server.url)
    statuses = _gunicorn_attempts(ecs_server.url, [f"198.51.100.{i}, {CLIENT}" for i in range(6)])
    assert statuses == [401] * 5 + [429], statuses
    assert _addr_keys(redis_server.url) == {f"rl:login:addr:{CLIENT}"}
