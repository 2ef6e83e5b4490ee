"""Startup configuration: clear errors naming the variable, production guards, pool wiring."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from app.db import create_engine
from app.settings import SettingsError, load_settings

PG = "postgresql+asyncpg://u:p@127.0.0.1:5432/db"
RD = "redis://127.0.0.1:6379/0"
STRONG = "k" * 20 + "Zq8-v3_xY1pQ0wE7rT5u"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "APP_ENV",
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET_KEY",
        "CORS_ORIGINS",
        "CORS_ALLOW_HEADERS",
    ):
        monkeypatch.delenv(var, raising=False)


def test_missing_database_url_is_named_with_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", RD)
    with pytest.raises(SettingsError) as ei:
        load_settings()
    msg = str(ei.value)
    assert "DATABASE_URL: is required but not set" in msg
    assert "postgresql+asyncpg://" in msg  # the fix
    assert "REDIS_URL" not in msg


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("DB_POOL_SIZE", "lots", "DB_POOL_SIZE: Input should be a valid integer"),
        ("DB_POOL_SIZE", "0", "DB_POOL_SIZE: Input should be greater than or equal to 1"),
        ("DB_POOL_CLASS", "static", "DB_POOL_CLASS: Input should be 'queue' or 'null'"),
        ("LOGIN_RATE_LIMIT", "five per minute", "LOGIN_RATE_LIMIT: is not a rate"),
        ("LOGIN_ADDRESS_RATE_LIMIT", "30/min", "LOGIN_ADDRESS_RATE_LIMIT: is not a rate"),
        ("LOGIN_USER_FAILURE_LIMIT", "0/hour", "LOGIN_USER_FAILURE_LIMIT: is not a rate"),
        ("DATABASE_URL", "postgresql://u:p@h/db", "DATABASE_URL: must use the asyncpg driver"),
        ("READY_CHECK_TIMEOUT", "2", "READY_CHECK_TIMEOUT: Input should be less than or equal to 0.9"),
        ("MAX_REQUEST_BODY_BYTES", "1MB", "MAX_REQUEST_BODY_BYTES: Input should be a valid integer"),
        (
            "MAX_REQUEST_BODY_BYTES",
            "100",
            "MAX_REQUEST_BODY_BYTES: Input should be greater than or equal to 1024",
        ),
        # The Redis client is created on first use, so a bad port is caught here, at start.
        ("REDIS_URL", "redis://:hunter2@cache:63790a/0", "REDIS_URL: has an invalid port"),
        ("REDIS_URL", "redis://cache:99999/0", "REDIS_URL: has an invalid port"),
    ],
)
def test_invalid_values_are_named(monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str) -> None:
    monkeypatch.setenv("DATABASE_URL", PG)
    monkeypatch.setenv("REDIS_URL", RD)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        load_settings()


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2-secret@h/db")
    monkeypatch.setenv("REDIS_URL", RD)
    with pytest.raises(SettingsError) as ei:
        load_settings()
    assert "hunter2" not in str(ei.value)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (None, "JWT_SECRET_KEY: required when APP_ENV=production"),
        ("", "JWT_SECRET_KEY: required when APP_ENV=production"),
        ("changethis", "JWT_SECRET_KEY: is a well-known placeholder"),
        ("short-but-random-1234", "JWT_SECRET_KEY: is 21 characters, at least 32"),
    ],
)
def test_production_refuses_weak_jwt_key(
    monkeypatch: pytest.MonkeyPatch, key: str | None, needle: str
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    if key is not None:
        monkeypatch.setenv("JWT_SECRET_KEY", key)
    with pytest.raises(SettingsError, match=needle):
        load_settings(database_url=PG, redis_url=RD)


@pytest.mark.parametrize(
    ("var", "value"),
    [("CORS_ORIGINS", "*"), ("CORS_ORIGINS", "https://a.example.com, *"), ("CORS_ALLOW_HEADERS", "*")],
)
def test_production_refuses_wildcard_cors(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=f"{var}: '\\*' is refused in production"):
        load_settings(database_url=PG, redis_url=RD)


def test_production_accepts_strong_key_and_explicit_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG)
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example.com,https://b.example.com")
    s = load_settings(database_url=PG, redis_url=RD)
    assert s.cors_origin_list == ["https://a.example.com", "https://b.example.com"]
    assert s.jwt_key == STRONG


def test_development_allows_wildcard_and_no_key() -> None:
    s = load_settings(database_url=PG, redis_url=RD, cors_origins="*")
    assert s.cors_origin_list == ["*"]
    assert len(s.jwt_key) >= 32


def test_contract_env_vars_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "1",
        "DB_POOL_TIMEOUT": "2.5",
        "DB_POOL_RECYCLE": "600",
        "DB_POOL_PRE_PING": "false",
        "DB_CONNECT_TIMEOUT": "1.5",
        "LOGIN_RATE_LIMIT": "10/hour",
        "LOGIN_ADDRESS_RATE_LIMIT": "40/hour",
        "LOGIN_USER_FAILURE_LIMIT": "500/day",
        "READY_CHECK_TIMEOUT": "0.3",
        "MAX_REQUEST_BODY_BYTES": "65536",
        "SENTRY_TRACES_SAMPLE_RATE": "0.25",
        "PORT": "8080",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = load_settings(database_url=PG, redis_url=RD)
    engine = create_engine(s)
    pool = engine.sync_engine.pool
    assert isinstance(pool, AsyncAdaptedQueuePool)
    assert pool.size() == 3
    assert pool._max_overflow == 1
    assert pool._timeout == 2.5
    assert pool._recycle == 600
    assert pool._pre_ping is False
    assert s.login_rate == (10, 3600)
    assert s.login_rates == ((10, 3600), (40, 3600), (500, 86400))
    assert (s.ready_check_timeout, s.sentry_traces_sample_rate, s.port) == (0.3, 0.25, 8080)
    assert s.db_connect_timeout == 1.5
    assert s.max_request_body_bytes == 65536


def test_login_limit_defaults_reach_the_limiter() -> None:
    from app.main import Resources
    from app.ratelimit import Rate

    limiter = Resources.build(load_settings(database_url=PG, redis_url=RD)).login_limiter
    assert limiter.rates == (Rate(5, 60), Rate(30, 60), Rate(100, 3600))


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        # A per-address rate below the per-(address, username) rate makes LOGIN_RATE_LIMIT meaningless.
        (
            {"LOGIN_ADDRESS_RATE_LIMIT": "4/minute"},
            "LOGIN_ADDRESS_RATE_LIMIT: '4/minute' is a lower rate than LOGIN_RATE_LIMIT ('5/minute')",
        ),
        ({"LOGIN_RATE_LIMIT": "2/second", "LOGIN_ADDRESS_RATE_LIMIT": "100/minute"}, "is a lower rate"),
        # A ceiling one address reaches in one window lets one attacker lock the owner out of new places.
        (
            {"LOGIN_USER_FAILURE_LIMIT": "3/hour"},
            "LOGIN_USER_FAILURE_LIMIT: '3/hour' allows fewer failures than LOGIN_RATE_LIMIT ('5/minute')",
        ),
    ],
)
def test_incoherent_login_limits_are_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as ei:
        load_settings(database_url=PG, redis_url=RD)
    msg = str(ei.value)
    assert needle in msg
    (line,) = [ln for ln in msg.splitlines() if "LOGIN_" in ln]
    assert line.count(" -> ") == 1  # one fix, not the format hint as well
    assert "-> set LOGIN_" in line


def test_null_pool_for_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_CLASS", "null")
    engine = create_engine(load_settings(database_url=PG, redis_url=RD))
    assert isinstance(engine.sync_engine.pool, NullPool)


def test_gunicorn_startup_error_names_setting() -> None:
    """Booting the app without DATABASE_URL fails with the variable in the error, not a deep traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", "from app.main import create_app; create_app()"],
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": RD},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "SettingsError: invalid service settings" in proc.stderr
    assert "DATABASE_URL: is required but not set" in proc.stderr
