"""Service settings from the environment (names fixed by the deployer contract).

`load_settings()` turns pydantic's validation errors into one `SettingsError` whose message names each
bad environment variable and how to fix it, so a misconfigured task fails at boot with a readable line
instead of a traceback deep inside SQLAlchemy on the first request.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from tutorials; a JWT key from this list is as good as none.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changethis",
        "changeme",
        "secret",
        "password",
        "dev",
        "development",
        "test",
        "jwt-secret",
        "your-secret-key",
    }
)
MIN_PRODUCTION_SECRET_LEN = 32
# Only used when APP_ENV=development and no key is set, so `make run` works with zero setup.
DEVELOPMENT_JWT_SECRET = "development-only-jwt-key-never-use-in-production-0123456789"  # noqa: S105

DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_FIX_HINTS = {
    "DATABASE_URL": "set DATABASE_URL=postgresql+asyncpg://user:password@host:5432/dbname",
    "REDIS_URL": "set REDIS_URL=redis://host:6379/0",
    "JWT_SECRET_KEY": "set JWT_SECRET_KEY to a random string of at least "
    f"{MIN_PRODUCTION_SECRET_LEN} characters "
    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
    "CORS_ORIGINS": "list explicit origins, e.g. CORS_ORIGINS=https://app.example.com,https://admin.example.com",
    "CORS_ALLOW_HEADERS": "list explicit headers, e.g. CORS_ALLOW_HEADERS=Authorization,Content-Type",
    "LOGIN_RATE_LIMIT": "use the form <count>/<second|minute|hour|day>, e.g. LOGIN_RATE_LIMIT=5/minute",
    "DB_POOL_CLASS": "use DB_POOL_CLASS=queue (servers) or DB_POOL_CLASS=null (Lambda)",
}


class SettingsError(RuntimeError):
    """Startup configuration is missing or invalid; the message names every offending variable."""


class AppEnv(StrEnum):
    """Deployment environment; production turns on the strict checks."""

    production = "production"
    staging = "staging"
    development = "development"


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """Everything the service reads from its environment; field names are the env var names."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    app_env: AppEnv = AppEnv.development
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

    database_url: SecretStr
    redis_url: SecretStr

    # Per worker process. The deployer sizes these so pool*workers*replicas fits the DB's connection budget.
    db_pool_class: Literal["queue", "null"] = "queue"
    db_pool_size: int = Field(5, ge=1, le=100)
    db_max_overflow: int = Field(2, ge=0, le=100)
    db_pool_timeout: float = Field(5.0, gt=0, le=60)
    db_pool_recycle: int = Field(1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_connect_timeout: float = Field(3.0, gt=0, le=60)
    # Statement guard: a query stuck on a lock must not hold a worker for the full gunicorn timeout.
    db_command_timeout: float = Field(10.0, gt=0, le=600)

    ready_check_timeout: float = Field(0.5, gt=0, le=0.9)
    # Redis is on the hot path of login only; a dead Redis must cost milliseconds, not seconds.
    redis_socket_timeout: float = Field(0.25, gt=0, le=10)

    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_expire_minutes: int = Field(30, ge=1, le=24 * 60)

    cors_origins: str = ""
    cors_allow_headers: str = "Authorization,Content-Type,X-Request-ID"

    login_rate_limit: str = "5/minute"

    # Largest request body accepted (bytes), enforced while the body streams in (app.bodylimit). The API
    # takes small JSON documents and a login form: 1 MiB is generous. The deployer injects it from
    # app.max_request_body_bytes (Caddy enforces the same number on the VPS; Lambda caps it at 6 MB).
    max_request_body_bytes: int = Field(DEFAULT_MAX_REQUEST_BODY_BYTES, ge=1024, le=1024 * 1024 * 1024)

    # /metrics on the app's port. Off where nothing can scrape it privately (Lambda, Cloud Run): there it
    # would only publish request counts and route names to the internet. ECS and the VPS keep it on for
    # in-network scrapers and block the path at the load balancer / Caddy instead.
    metrics_enabled: bool = True

    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(0.1, ge=0.0, le=1.0)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if not raw.startswith("postgresql+asyncpg://"):
            scheme = raw.split("://", 1)[0] if "://" in raw else "<none>"
            raise ValueError(f"must use the asyncpg driver (postgresql+asyncpg://...), got scheme {scheme!r}")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        # The client is created on first use (app.main.LazyRedis), so a bad port must fail here, at start,
        # not at the first login. Never echo the URL: it may carry a password.
        from urllib.parse import urlsplit

        try:
            _ = urlsplit(raw).port  # raises on a non-numeric or out-of-range port
        except ValueError:
            raise ValueError("has an invalid port (expected redis://[:password@]host:PORT/DB)") from None
        return v

    @field_validator("login_rate_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        m = _RATE_RE.match(v)
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"{v!r} is not a rate")
        return v

    @field_validator("jwt_secret_key", "sentry_dsn", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.app_env is AppEnv.development:
            return self
        key = self.jwt_secret_key.get_secret_value() if self.jwt_secret_key else ""
        if not key:
            raise ValueError(f"JWT_SECRET_KEY: required when APP_ENV={self.app_env.value}")
        if key.lower() in PLACEHOLDER_SECRETS or key == DEVELOPMENT_JWT_SECRET:
            raise ValueError("JWT_SECRET_KEY: is a well-known placeholder value")
        if len(key) < MIN_PRODUCTION_SECRET_LEN:
            raise ValueError(
                f"JWT_SECRET_KEY: is {len(key)} characters, at least {MIN_PRODUCTION_SECRET_LEN} are required"
            )
        if self.app_env is AppEnv.production:
            if "*" in self.cors_origin_list:
                raise ValueError("CORS_ORIGINS: '*' is refused in production")
            if "*" in self.cors_header_list:
                raise ValueError("CORS_ALLOW_HEADERS: '*' is refused in production")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return _split_csv(self.cors_origins)

    @property
    def cors_header_list(self) -> list[str]:
        return _split_csv(self.cors_allow_headers)

    @cached_property
    def login_rate(self) -> tuple[int, int]:
        """(attempts, window seconds) parsed from LOGIN_RATE_LIMIT."""
        m = _RATE_RE.match(self.login_rate_limit)
        assert m is not None  # validated above
        return int(m.group(1)), _PERIOD_SECONDS[m.group(2)]

    @property
    def jwt_key(self) -> str:
        if self.jwt_secret_key is not None:
            return self.jwt_secret_key.get_secret_value()
        return DEVELOPMENT_JWT_SECRET  # development only: the validator refuses this elsewhere


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        if loc:
            name = loc.upper()
        else:  # model-level validator: the message starts with the variable name
            name, _, msg = msg.partition(": ")
        if e["type"] == "missing":
            msg = "is required but not set"
        hint = _FIX_HINTS.get(name)
        lines.append(f"  {name}: {msg}" + (f" -> {hint}" if hint else ""))
    return "invalid service settings:\n" + "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise `SettingsError` naming every bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise SettingsError(_describe(err)) from None
