"""Service settings from the environment (names fixed by the deployer contract).

`load_settings()` turns pydantic's validation errors into one `SettingsError` whose message names each
bad environment variable and how to fix it, so a misconfigured task fails at boot with a readable line
instead of a traceback deep inside SQLAlchemy on the first request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app import contract

# Only used when APP_ENV=development and no key is set, so `make run` works with zero setup.
DEVELOPMENT_JWT_SECRET = "development-only-jwt-key-never-use-in-production-0123456789"  # noqa: S105

# The names, checks and hints the deployer applies to a stack before `pulumi up` (app/contract.py).
_FIX_HINTS = contract.FIX_HINTS
PLACEHOLDER_SECRETS = contract.PLACEHOLDER_SECRETS
MIN_PRODUCTION_SECRET_LEN = contract.MIN_PRODUCTION_SECRET_LEN
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024


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

    # Circuit breakers around PostgreSQL and Redis, per worker process (app.breaker). After this many
    # consecutive failures a dependency is skipped (DB routes: 503 + Retry-After at once; login: local
    # limits) for BREAKER_OPEN_SECONDS, then one probe request decides. 5: one reset connection or a
    # single slow query never trips it, and an outage costs a worker at most 5 timed-out requests.
    breaker_failure_threshold: int = Field(5, ge=1, le=100)
    # 2 s: a recovered database serves again within ~2 s, while an outage costs one probe per 2 s per
    # worker (4 workers: 2 probes/s per replica) - no load worth mentioning on a database coming back.
    breaker_open_seconds: float = Field(2.0, ge=0.1, le=60)
    # Read cache for the item list and detail (app/cache.py): entries live this long at most; every write
    # invalidates them at once (generation counter). 0 turns the cache off. Bounded: a day.
    cache_ttl_seconds: int = Field(600, ge=0, le=86400)

    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_expire_minutes: int = Field(30, ge=1, le=24 * 60)

    cors_origins: str = ""
    cors_allow_headers: str = "Authorization,Content-Type,X-Request-ID"

    # Login limits (app/ratelimit.py, docs/service.md): attempts per (client address, username), attempts per
    # client address across usernames, and failed attempts per username across all addresses.
    login_rate_limit: str = "5/minute"
    login_address_rate_limit: str = "30/minute"
    login_user_failure_limit: str = "100/hour"

    # Largest request body accepted (bytes), enforced while the body streams in (app.bodylimit). The API
    # takes small JSON documents and a login form: 1 MiB is generous. The deployer injects it from
    # app.max_request_body_bytes (Caddy enforces the same number on the VPS; Lambda caps it at 6 MB).
    max_request_body_bytes: int = Field(DEFAULT_MAX_REQUEST_BODY_BYTES, ge=1024, le=1024 * 1024 * 1024)

    # Client address = the N-th X-Forwarded-For entry from the right, N = the proxies the platform puts in
    # front that each append one entry (app/forwarded.py). 0: off, uvicorn's FORWARDED_ALLOW_IPS decides.
    # The deployer sets it on Cloud Run (1 on the run.app URL, 2 behind the custom-domain load balancer).
    forwarded_trusted_hops: int = Field(0, ge=0, le=10)

    # /metrics on the app's port. Off where nothing can scrape it privately (Lambda, Cloud Run): there it
    # would only publish request counts and route names to the internet. ECS and the VPS keep it on for
    # in-network scrapers and block the path at the load balancer / Caddy instead.
    metrics_enabled: bool = True
    # CloudWatch Embedded Metric Format lines (pool use, RSS, worker restarts) on stderr where nothing
    # scrapes /metrics: the deployer sets it on ECS and Lambda (fastapi_deploy/tuning.py,
    # METRICS_EMF_PLATFORMS).
    metrics_emf: bool = False
    # Where the EMF lines go: namespace and the value of their single dimension Service. The deployer's ECS
    # alarms read namespace FastAPIDeploy and Service=<name>-<stack>. Read from the environment by
    # app/runtime_metrics.py (the gunicorn master, which has no Settings, writes restart lines too).
    metrics_emf_namespace: str = Field("FastAPIDeploy", min_length=1, max_length=255)
    metrics_emf_service: str = Field("fastapi-deploy", min_length=1, max_length=255)

    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(0.1, ge=0.0, le=1.0)

    # FastAPI's native OpenTelemetry (FastAPI >= 0.165: a span, metrics and log records per request, sent to
    # the process's global OpenTelemetry providers; app.main.fastapi_telemetry). "auto": on when this
    # process has somewhere to send it - an OTEL_* variable is set (opentelemetry-instrument, an OTLP
    # endpoint, a service name) or a provider is configured when the app is built - else off. The image
    # carries the OpenTelemetry API (FastAPI requires it) but no SDK, so with nothing configured FastAPI
    # would only find out, on every request, that there is nothing to do: ~10 us of a /health request
    # (BENCHMARKS.md §10). "on"/"off" decide regardless.
    fastapi_telemetry: Literal["auto", "on", "off"] = "auto"

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, v: SecretStr) -> SecretStr:
        problem = contract.database_url_problem(v.get_secret_value())
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr) -> SecretStr:
        # The client is created on first use (app.main.LazyRedis), so a bad port must fail here, at start,
        # not at the first login. Never echo the URL: it may carry a password.
        problem = contract.redis_url_problem(v.get_secret_value())
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("login_rate_limit", "login_address_rate_limit", "login_user_failure_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        contract.parse_rate(v)
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
        problem = contract.jwt_secret_problem(key, self.app_env.value)
        if problem is None and key == DEVELOPMENT_JWT_SECRET:
            problem = "is a well-known placeholder value"
        if problem:
            raise ValueError(f"JWT_SECRET_KEY: {problem}")
        if self.app_env is AppEnv.production:
            if "*" in self.cors_origin_list:
                raise ValueError("CORS_ORIGINS: '*' is refused in production")
            if "*" in self.cors_header_list:
                raise ValueError("CORS_ALLOW_HEADERS: '*' is refused in production")
        return self

    @model_validator(mode="after")
    def _login_limits_coherent(self) -> Settings:
        (pair, pair_s), (addr, addr_s), (user, _) = self.login_rates
        if addr * pair_s < pair * addr_s:  # compared as rates: addr/addr_s < pair/pair_s
            raise ValueError(
                f"LOGIN_ADDRESS_RATE_LIMIT: {self.login_address_rate_limit!r} is a lower rate than "
                f"LOGIN_RATE_LIMIT ({self.login_rate_limit!r}), which then never applies -> set "
                "LOGIN_ADDRESS_RATE_LIMIT several times higher (default 30/minute) or lower LOGIN_RATE_LIMIT"
            )
        if user < pair:
            raise ValueError(
                f"LOGIN_USER_FAILURE_LIMIT: {self.login_user_failure_limit!r} allows fewer failures than "
                f"LOGIN_RATE_LIMIT ({self.login_rate_limit!r}) allows attempts, so one address could lock "
                "the account out of every new address in one window -> set LOGIN_USER_FAILURE_LIMIT to "
                "many times LOGIN_RATE_LIMIT's count (default 100/hour)"
            )
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return _split_csv(self.cors_origins)

    @property
    def cors_header_list(self) -> list[str]:
        return _split_csv(self.cors_allow_headers)

    @property
    def login_rate(self) -> tuple[int, int]:
        """(attempts, window seconds) per (client address, username), from LOGIN_RATE_LIMIT."""
        return contract.parse_rate(self.login_rate_limit)

    @property
    def login_rates(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(count, window seconds) of LOGIN_RATE_LIMIT, LOGIN_ADDRESS_RATE_LIMIT, LOGIN_USER_FAILURE_LIMIT."""
        return (
            contract.parse_rate(self.login_rate_limit),
            contract.parse_rate(self.login_address_rate_limit),
            contract.parse_rate(self.login_user_failure_limit),
        )

    @property
    def jwt_key(self) -> str:
        if self.jwt_secret_key is not None:
            return self.jwt_secret_key.get_secret_value()
        return DEVELOPMENT_JWT_SECRET  # development only: the validator refuses this elsewhere


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    """(ENV_NAME, "problem [-> fix]") per error; pydantic's messages never include the value sent."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        if loc:
            name = loc.upper()
        else:  # model-level validator: the message starts with the variable name
            name, _, msg = msg.partition(": ")
        if e["type"] == "missing":
            msg = "is required but not set"
        hint = None if " -> " in msg else _FIX_HINTS.get(name)  # a message may carry its own fix
        out.append((name, msg + (f" -> {hint}" if hint else "")))
    return out


def _describe(err: ValidationError) -> str:
    lines = [f"  {name}: {problem}" for name, problem in _problems(err)]
    return "invalid service settings:\n" + "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise `SettingsError` naming every bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise SettingsError(_describe(err)) from None


class _GivenOnly(Settings):
    """The same model and validators, fed only what the caller passes (not this process's environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


#: Every env name the service or its gunicorn configuration reads.
KNOWN_ENV_NAMES = frozenset({name.upper() for name in Settings.model_fields} | contract.TUNING_ENV_NAMES)


def environment_problems(env: Mapping[str, str], secret_names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """What the service would refuse at start in this environment, before it ever starts.

    ``env`` holds the literal values a container will get; ``secret_names`` the variables whose value is a
    secret reference, resolved only at start. Literal values go through the model's own validators; a
    referenced credential is replaced by a stand-in that passes them (its real value is checked at start and
    by `infra doctor`), so a missing required setting is reported but an unreadable one is not guessed at.
    Returns ``[(ENV_NAME, "problem -> fix"), ...]``; values are never part of a message.
    """
    fields = {name.upper(): name for name in Settings.model_fields}
    secrets = {name.upper() for name in secret_names}
    given: dict[str, object] = {}
    for key, value in env.items():
        if key.upper() in fields and key.upper() not in secrets:
            given[fields[key.upper()]] = value
    for key in secrets:
        if key in fields and key in contract.STAND_INS:
            given[fields[key]] = contract.STAND_INS[key]
    problems: list[tuple[str, str]] = []
    try:
        _GivenOnly(**given)  # type: ignore[arg-type]
    except ValidationError as err:
        problems = _problems(err)
    # The model checks these only once every field is valid; report them alongside the field errors.
    app_env = str(given.get("app_env") or AppEnv.development.value)
    if app_env != AppEnv.development.value:
        for name in contract.REQUIRED_OUTSIDE_DEVELOPMENT:
            present = name in secrets or any(k.upper() == name for k in env)
            if not present and all(n != name for n, _ in problems):
                hint = _FIX_HINTS.get(name)
                problems.append((name, f"required when APP_ENV={app_env}" + (f" -> {hint}" if hint else "")))
    return problems
