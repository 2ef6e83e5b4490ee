"""The contract between the service and the deployer: one module, standard library only.

The service (``app/settings.py``, ``app/secret_refs.py``, in the image), the deployer (``infra/``) and the
policy pack (``policy/rules.py``, which must also run as a standalone copy of ``policy/``) all import
these names instead of writing them again, so what the plan accepts is what the service accepts:

* :data:`TUNING_ENV_NAMES` — env the deployer's tuning computes (``fastapi_deploy/tuning.py``); a stack
  can't set them.
* :data:`CREDENTIAL_ENV_NAMES` — env whose value is a credential: only ever a secret reference.
* :data:`REQUIRED_ENV`, :data:`REQUIRED_OUTSIDE_DEVELOPMENT` — what the service refuses to start without.
* literal-value validators (:func:`parse_rate`, :func:`database_url_problem`, :func:`redis_url_problem`,
  :func:`jwt_secret_problem`) and :data:`FIX_HINTS`.
* the secret-reference grammar (:func:`parse_secret_ref`, :func:`looks_like_reference`).
* :data:`SECRET_MASK` and :func:`mask` — how a value that may be secret is shown;
  :func:`env_entry_problem` — what plain env may never hold.
* :data:`COMMON_OUTPUTS` — the stack outputs every target exports (a target's own ones are declared once, in
  its registration: ``fastapi_deploy.registry.Target.outputs``).
* :data:`RUNTIME_FACTS`, :data:`RUNTIME_FACT_KEYS`, :func:`runtime_facts_problems` — the runtime facts a
  target's component publishes for the policy pack's stack rules.

``policy/contract.py`` is a byte-for-byte copy for the standalone policy pack (``tests/test_contract.py``
fails when the two differ). Edit this file, then copy it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# ------------------------------------------------------------------------------------------------ env names
#: Computed by the deployer's tuning from the platform, its size and the database budget. Set by hand they
#: would silently break the connection budget or the timeout chain.
TUNING_ENV_NAMES = frozenset(
    {
        "APP_ENV",
        "PORT",
        "WEB_CONCURRENCY",
        "GUNICORN_KEEPALIVE",
        "GUNICORN_TIMEOUT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_MAX_REQUESTS",
        "GUNICORN_MAX_REQUESTS_JITTER",
        "GC_FREEZE",
        "GC_THRESHOLD",
        "DB_POOL_CLASS",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_POOL_TIMEOUT",
        "DB_POOL_RECYCLE",
        "DB_POOL_PRE_PING",
        "DB_CONNECT_TIMEOUT",
        "READY_CHECK_TIMEOUT",
        "MAX_REQUEST_BODY_BYTES",
        "CORS_ORIGINS",
        "PROMETHEUS_MULTIPROC_DIR",
        "FORWARDED_ALLOW_IPS",
        "FORWARDED_TRUSTED_HOPS",
        "MIGRATE_ON_START",
        "MIGRATE_TIMEOUT",
        "METRICS_EMF",
        "METRICS_EMF_NAMESPACE",
        "METRICS_EMF_SERVICE",
    }
)
#: Credentials: only a secret reference (injected natively by the platform), never a value in plain env.
CREDENTIAL_ENV_NAMES = frozenset({"DATABASE_URL", "JWT_SECRET_KEY", "SENTRY_DSN"})
#: The service refuses to start without these, whatever APP_ENV says.
REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL")
#: ... and without these when APP_ENV is not ``development``.
REQUIRED_OUTSIDE_DEVELOPMENT = ("JWT_SECRET_KEY",)
APP_ENVS = ("production", "staging", "development")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# ------------------------------------------------------------------------------------ literal-value checks
#: Values people paste from tutorials; a JWT key from this list is as good as none.
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
RATE_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")

FIX_HINTS = {
    "DATABASE_URL": "set DATABASE_URL=postgresql+asyncpg://user:password@host:5432/dbname",
    "REDIS_URL": "set REDIS_URL=redis://host:6379/0",
    "JWT_SECRET_KEY": "set JWT_SECRET_KEY to a random string of at least "
    f"{MIN_PRODUCTION_SECRET_LEN} characters "
    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
    "CORS_ORIGINS": "list explicit origins, e.g. CORS_ORIGINS=https://app.example.com,https://admin.example.com",
    "CORS_ALLOW_HEADERS": "list explicit headers, e.g. CORS_ALLOW_HEADERS=Authorization,Content-Type",
    "LOGIN_RATE_LIMIT": "use the form <count>/<second|minute|hour|day>, e.g. LOGIN_RATE_LIMIT=5/minute",
    "LOGIN_ADDRESS_RATE_LIMIT": "use the form <count>/<second|minute|hour|day>, "
    "e.g. LOGIN_ADDRESS_RATE_LIMIT=30/minute",
    "LOGIN_USER_FAILURE_LIMIT": "use the form <count>/<second|minute|hour|day>, "
    "e.g. LOGIN_USER_FAILURE_LIMIT=100/hour",
    "LOG_LEVEL": f"use one of {', '.join(LOG_LEVELS)}, e.g. LOG_LEVEL=info",
    "DB_POOL_CLASS": "use DB_POOL_CLASS=queue (servers) or DB_POOL_CLASS=null (Lambda)",
}


def parse_rate(value: str) -> tuple[int, int]:
    """``"5/minute"`` -> ``(5, 60)``. ValueError (not echoing the value) when it is not a rate."""
    m = _RATE_RE.match(value)
    if not m or int(m.group(1)) < 1:
        raise ValueError("is not a rate of the form <count>/<second|minute|hour|day>")
    return int(m.group(1)), RATE_PERIOD_SECONDS[m.group(2)]


def database_url_problem(raw: str) -> str | None:
    """Why ``raw`` is not a DATABASE_URL the service can use (never echoing it), or None."""
    if not raw.startswith("postgresql+asyncpg://"):
        scheme = raw.split("://", 1)[0] if "://" in raw else "<none>"
        if len(scheme) > 40 or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
            scheme = "<none>"
        return f"must use the asyncpg driver (postgresql+asyncpg://...), got scheme {scheme!r}"
    return None


def redis_url_problem(raw: str) -> str | None:
    """Why ``raw`` is not a REDIS_URL redis-py accepts (never echoing it: it may hold a password)."""
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        return "must start with redis://, rediss:// or unix://"
    try:
        _ = urlsplit(raw).port  # raises on a non-numeric or out-of-range port
    except ValueError:
        return "has an invalid port (expected redis://[:password@]host:PORT/DB)"
    return None


def jwt_secret_problem(key: str, app_env: str) -> str | None:
    """Why ``key`` is not an acceptable JWT signing key under ``app_env`` (never echoing it), or None."""
    if app_env == "development":
        return None
    if not key:
        return f"required when APP_ENV={app_env}"
    if key.lower() in PLACEHOLDER_SECRETS:
        return "is a well-known placeholder value"
    if len(key) < MIN_PRODUCTION_SECRET_LEN:
        return f"is {len(key)} characters, at least {MIN_PRODUCTION_SECRET_LEN} are required"
    return None


#: Values that pass the service's own checks, standing in for a setting whose real value is a secret
#: reference the deployer cannot read (it validates everything else about the environment).
STAND_INS = {
    "DATABASE_URL": "postgresql+asyncpg://stand-in:stand-in@stand-in:5432/stand-in",
    "REDIS_URL": "redis://stand-in:6379/0",
    "JWT_SECRET_KEY": "stand-in-" + "x" * MIN_PRODUCTION_SECRET_LEN,
    "SENTRY_DSN": "https://stand-in@stand-in.invalid/1",
}

# ----------------------------------------------------------------------------------------------- masking
#: Shown wherever a secret value (or a value that may be one) would otherwise be printed.
SECRET_MASK = "[secret]"  # noqa: S105 - a display placeholder, not a credential
#: A URL scheme (``postgresql+asyncpg://``) or a reference scheme; anything else before a ':' may be secret
#: (``AKIA...:...``, ``hunter2:...``) and is not shown.
_SCHEME = re.compile(r"^(?:([a-z][a-z0-9+.\-]{0,19}):(?=//)|(ssm|secretsmanager|gcp|arn|vault|file|env):)")
#: ``scheme://user:password@`` — a credential inside a URL.
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.I)


def mask(value: object) -> str:
    """A printable description of a value that may be a secret: a URL or reference scheme, else the first
    three characters, and the length.

    ``mask("postgresql://u:pw@db/x")`` -> ``'postgresql:…' (22 chars)``; ``mask("s3cr3t-value")`` ->
    ``'s3c…' (12 chars)``. Enough to recognise what was pasted, never enough to use it.
    """
    text = value if isinstance(value, str) else repr(value)
    m = _SCHEME.match(text)
    shown = m.group(0) if m else text[:3]
    return f"'{shown}…' ({len(text)} chars)"


def env_entry_problem(name: str, value: object) -> str | None:
    """Why ``name=value`` must not be a plain environment variable of a deploy, or None.

    Two things are refused wherever plain env is given (the stack's ``app.env``, a component's ``env``
    Arg): a credential's name (:data:`CREDENTIAL_ENV_NAMES`) and a URL carrying a password. Either would
    sit in plain text in the state, the console and the plan. The text names neither the field nor the
    fix: the caller prefixes its field (``app.env.NAME`` / ``XxxArgs.env.NAME``) and says where the secret
    reference goes. A value that is not a string (an Output) is judged by its name only.
    """
    if name in CREDENTIAL_ENV_NAMES:
        return "a credential, which in plain text would sit in the state and the console"
    if isinstance(value, str) and URL_WITH_PASSWORD.match(value):
        return (
            f"the URL carries a password ({mask(value)}), which in plain text would sit in the state and the "
            "console"
        )
    return None


def shown_scheme(value: str) -> str | None:
    """The scheme :func:`mask` shows for ``value`` (None when it shows none)."""
    m = _SCHEME.match(value)
    return (m.group(1) or m.group(2)) if m else None


# ------------------------------------------------------------------------------- secret-reference grammar
SECRET_SCHEMES = ("ssm", "secretsmanager", "gcp")
#: The grammar's description (not a credential).
SECRET_REF_FORMS = (
    "ssm:/path, secretsmanager:name[:json-key], secretsmanager:ARN[:json-key], "  # noqa: S105
    "gcp:projects/P/secrets/S[/versions/V] or gcp:S"
)
_SSM_PATH = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")
_SSM_ARN = re.compile(r"^arn:(aws[a-z-]*):ssm:([a-z0-9-]+):(\d{12}):parameter(/[A-Za-z0-9_.\-/]+)$")
_SM_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]{1,512}$")
_SM_ARN = re.compile(r"^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:([A-Za-z0-9/_+=.@\-]+)$")
#: Parts of a Secrets Manager ARN split on ':' (arn, partition, service, region, account, secret, name).
_SM_ARN_PARTS = 7
_JSON_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")
_GCP_FULL = re.compile(
    r"^projects/([a-z][a-z0-9\-]{4,28}[a-z0-9]|\d+)/secrets/([A-Za-z0-9_\-]{1,255})(?:/versions/(\w+))?$"
)
_GCP_SHORT = re.compile(r"^([A-Za-z0-9_\-]{1,255})(?:/versions/(\w+))?$")
_LOOKS_LIKE_REF = re.compile(r"^(ssm:(/|arn:)|secretsmanager:|gcp:|arn:aws[a-z-]*:(ssm|secretsmanager):)")


class SecretRefSyntaxError(ValueError):
    """A string that is not a secret reference. The message shows the value only masked."""


@dataclass(frozen=True)
class ParsedSecretRef:
    """A secret reference taken apart (never the secret's value)."""

    scheme: str
    #: ssm: the parameter path (``/a/b``); secretsmanager: the name; gcp: the secret id.
    name: str
    #: secretsmanager: a key inside a JSON secret.
    json_key: str | None = None
    #: gcp: version (default ``latest``).
    version: str | None = None
    #: gcp: project, when given in the reference.
    project: str | None = None
    #: When the reference was a full ARN: the ARN without the json key.
    given_arn: str | None = None

    @property
    def aws_id(self) -> str:
        """What ssm:GetParameter / secretsmanager:GetSecretValue take: the ARN when given, else the name."""
        return self.given_arn or self.name


def looks_like_reference(value: str) -> bool:
    """True when ``value`` is meant as a reference (``ssm:/``, ``secretsmanager:``, ``gcp:``, an ARN)."""
    return bool(_LOOKS_LIKE_REF.match(value))


def parse_secret_ref(raw: object) -> ParsedSecretRef:
    """Parse ``scheme:body``; :class:`SecretRefSyntaxError` naming the accepted form, the value masked."""
    if not isinstance(raw, str) or ":" not in raw:
        raise SecretRefSyntaxError(f"{mask(raw)} is not a secret reference; use {SECRET_REF_FORMS}")
    scheme, body = raw.split(":", 1)
    if scheme == "ssm":
        return _parse_ssm(raw, body)
    if scheme == "secretsmanager":
        return _parse_secretsmanager(raw, body)
    if scheme == "gcp":
        m = _GCP_FULL.match(body)
        if m:
            return ParsedSecretRef("gcp", m.group(2), version=m.group(3) or "latest", project=m.group(1))
        m = _GCP_SHORT.match(body)
        if m:
            return ParsedSecretRef("gcp", m.group(1), version=m.group(2) or "latest")
        raise SecretRefSyntaxError(
            f"{mask(raw)}: expected gcp:projects/P/secrets/S[/versions/V] or gcp:S[/versions/V]"
        )
    if shown_scheme(raw) == scheme:  # mask() shows exactly this scheme, nothing after it
        raise SecretRefSyntaxError(f"{mask(raw)}: unknown scheme {scheme!r}; use {SECRET_REF_FORMS}")
    raise SecretRefSyntaxError(f"{mask(raw)} is not a secret reference; use {SECRET_REF_FORMS}")


def _parse_ssm(raw: str, body: str) -> ParsedSecretRef:
    m = _SSM_ARN.match(body)
    if m:
        return ParsedSecretRef("ssm", m.group(4), given_arn=body)
    if not _SSM_PATH.match(body):
        raise SecretRefSyntaxError(
            f"{mask(raw)}: an ssm: reference is an absolute parameter path like ssm:/prod/api/jwt "
            "or ssm:arn:aws:ssm:REGION:ACCOUNT:parameter/path"
        )
    return ParsedSecretRef("ssm", body)


def _parse_secretsmanager(raw: str, body: str) -> ParsedSecretRef:
    if body.startswith("arn:"):
        parts = body.split(":")
        arn = ":".join(parts[:_SM_ARN_PARTS])
        key = parts[_SM_ARN_PARTS] if len(parts) > _SM_ARN_PARTS else None
        m = _SM_ARN.match(arn)
        if not m or len(parts) > _SM_ARN_PARTS + 1:
            raise SecretRefSyntaxError(
                f"{mask(raw)}: expected "
                "secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key]"
            )
        if key is not None and not _JSON_KEY.match(key):
            raise SecretRefSyntaxError(f"{mask(raw)}: a json key may only contain letters, digits, _ . -")
        return ParsedSecretRef("secretsmanager", m.group(4), json_key=key, given_arn=arn)
    name, sep, key = body.partition(":")
    if not _SM_NAME.match(name):
        raise SecretRefSyntaxError(
            f"{mask(raw)}: a Secrets Manager name is 1-512 chars of letters, digits and /_+=.@-"
        )
    # `name:` (a key forgotten) is refused, not read as the whole secret.
    if sep and not _JSON_KEY.match(key):
        raise SecretRefSyntaxError(f"{mask(raw)}: a json key may only contain letters, digits, _ . -")
    return ParsedSecretRef("secretsmanager", name, json_key=key or None)


# -------------------------------------------------------------------------------------------- runtime facts
#: The prop under which a target's component publishes its runtime facts. Component props are registered
#: with the engine as the component's inputs, so `pulumi preview --policy-pack policy` and `infra plan`
#: both hand them to the policy pack. The pack derives the same facts from the real resources for the
#: platforms whose resources it reads itself (:data:`RESOURCE_DERIVED_PLATFORMS`) and takes them from
#: here for any other target: its stack rules (keepalive vs LB idle timeout, graceful timeout vs stop
#: grace, workers per vCPU and memory, the DB connection budget, proxy headers, one instance in
#: production, CORS, alarms) then judge a fifth target like a built-in one.
RUNTIME_FACTS = "runtimeFacts"
#: key -> what it states. ``platform`` and ``env`` are required; a number may be null (unknown / none).
RUNTIME_FACT_KEYS: dict[str, str] = {
    "platform": "the target's key (app.target)",
    "env": "the app container's plain environment, NAME -> string (never a secret's value: secrets are "
    "injected from the secret store, by reference)",
    "memoryMib": "memory limit of one instance, MiB",
    "vcpu": "vCPUs of one instance",
    "stopGraceS": "seconds between SIGTERM and SIGKILL when an instance is stopped",
    "lbIdleTimeoutS": "idle timeout of the load balancer or proxy in front of the app, seconds (null: none; "
    "a value also means the app is behind a proxy that appends X-Forwarded-For)",
    "maxReplicas": "instances alive at once at the scaling maximum, including the deploy surge (null: "
    "unbounded)",
    "minReplicas": "instances kept running at least",
    "maxInstances": "the configured scaling maximum, without the surge",
    "connectionBudget": "database connections the whole service may hold (null: unknown)",
}
#: Platforms whose facts the pack reads off the real resources (task definition, service, function,
#: container): published facts of these are not used, the resources are the ground truth.
RESOURCE_DERIVED_PLATFORMS = frozenset({"ecs", "cloudrun", "lambda", "vps"})
_WHOLE_FACTS = frozenset({"maxReplicas", "minReplicas", "maxInstances", "connectionBudget"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: The largest runtime fact accepted (MiB, vCPU, seconds, replicas, connections): anything larger is a
#: mistake, and bounding it keeps the pack's arithmetic finite.
MAX_RUNTIME_FACT = 10**9


def runtime_facts_problems(facts: object) -> list[str]:
    """What makes a published facts mapping unusable, one message per key (empty: usable)."""
    if not isinstance(facts, dict):
        return [f"{RUNTIME_FACTS}: a mapping of {', '.join(RUNTIME_FACT_KEYS)}, not {type(facts).__name__}"]
    problems = [
        f"{RUNTIME_FACTS}.{key}: unknown fact; known: {', '.join(RUNTIME_FACT_KEYS)}"
        for key in facts
        if key not in RUNTIME_FACT_KEYS
    ]
    platform = facts.get("platform")
    if not isinstance(platform, str) or not platform:
        problems.append(f"{RUNTIME_FACTS}.platform: required, the target's key (app.target)")
    env = facts.get("env")
    if not isinstance(env, dict):
        problems.append(f"{RUNTIME_FACTS}.env: required, the container's plain env as NAME -> string")
    else:
        for name, value in env.items():
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                problems.append(f"{RUNTIME_FACTS}.env: {name!r} is not an environment variable name")
            elif not isinstance(value, str):
                problems.append(f"{RUNTIME_FACTS}.env.{name}: a string, not {type(value).__name__}")
    for key in RUNTIME_FACT_KEYS:
        if key in ("platform", "env") or facts.get(key) is None:
            continue
        value = facts[key]
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        # `0 <= n <= max` is False for NaN and infinities; huge ints stop there, before float() overflows
        if (
            number is None
            or not 0 <= number <= MAX_RUNTIME_FACT
            or (key in _WHOLE_FACTS and not float(number).is_integer())
        ):
            kind = "a whole number" if key in _WHOLE_FACTS else "a number"
            # (a huge int has no repr beyond 4300 digits: never build one)
            big = isinstance(number, int) and number > MAX_RUNTIME_FACT
            shown = "a larger number" if big else repr(value)[:40]
            problems.append(
                f"{RUNTIME_FACTS}.{key}: {kind} from 0 to {MAX_RUNTIME_FACT} or null, not {shown}"
            )
    return problems


# -------------------------------------------------------------------------------------------- stack outputs
#: Output keys every target exports (read back by `infra verify`).
COMMON_OUTPUTS = ("target", "url", "image", "health_path", "ready_path")
