"""The one place where runtime numbers live: platform + size + DB budget -> RuntimeTuning.

Pure functions, no Pulumi, no I/O. Every target receives a :class:`RuntimeTuning`; it injects
``tuning.env()`` into the container and uses the infra numbers (LB idle timeout, deregistration delay,
stop timeout, health-check timings) for its resources, so the timeout chain can't drift apart.

Rules (each one prevents a failure seen in production; numbers in the comments):

* Workers = the platform's vCPU allotment (async uvicorn workers: one event loop saturates one core;
  ``2*cores+1`` is a sync-worker rule that only adds context switching and tail latency), at least 1,
  capped by memory (``MEMORY_PER_WORKER_MIB`` each after ``MEMORY_HEADROOM_MIB``). Lambda: always 1.
* Connections: ``replicas_during_deploy * workers * (pool_size + max_overflow) <= budget`` where
  replicas during a deploy are ``max * surge`` (ECS maximumPercent 200 runs old and new tasks side by
  side; Cloud Run keeps old-revision instances until idle; a VPS redeploy starts the new container
  before the old stops). The pool is derived from the budget; when even the minimum does not fit,
  :class:`TuningError` names the keys to change.
* Timeout chain: LB idle timeout (ALB 60) < server keepalive (75) — otherwise gunicorn closes an idle
  connection the ALB is about to reuse and the client gets a 502. Graceful timeout (20) < platform stop
  grace (ECS stopTimeout 30, Cloud Run 10) so workers finish before SIGKILL, and <= the deregistration
  delay. Deregistration delay >= the longest request (request_timeout_s + 5) but far below the 300 s
  default, which otherwise makes every deploy take 5+ minutes per batch.

Public names: ``RuntimeTuning``, ``TuningError``, ``for_platform(cfg)``, ``tune(TuningInput)``,
``TuningInput``, ``container_environment(cfg, tuning)``, ``ContainerHealth``, ``LbHealth`` and the constants.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fastapi_deploy.config import StackConfigType
    from fastapi_deploy.registry import TuningRules

#: A registered target's key (fastapi_deploy/registry.py); its platform rules live in its package's tuning.py.
Platform = str

# --- memory per worker ---------------------------------------------------------------------------
# RSS of one uvicorn worker running the app with SQLAlchemy + asyncpg + prometheus-client after warm-up
# is ~90-120 MiB; 150 leaves room for request buffers. Headroom covers the gunicorn master (~40 MiB),
# the Python runtime's fragmentation and the page cache; bench/ measures RSS and may adjust these.
MEMORY_PER_WORKER_MIB = 150
MEMORY_HEADROOM_MIB = 256
MAX_WORKERS = 16

# --- connection pool (per worker process) ---------------------------------------------------------
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 2
# A worker needs >= 2 connections: one for requests and one for /ready's SELECT 1, so a saturated pool
# doesn't make the readiness probe (and the next deploy) fail.
MIN_CONNECTIONS_PER_WORKER = 2
# Fail fast when the pool is exhausted: a 5 s wait returns a 503 the client can retry; piling requests
# up behind a 30 s wait turns a slow database into a full outage.
POOL_TIMEOUT_S = 5
# RDS/pgbouncer/NAT idle timeouts (350 s on NAT gateways) silently kill idle connections; recycling
# below 30 min plus pre-ping avoids "connection was closed" errors on the first query after idle.
POOL_RECYCLE_S = 1800
CONNECT_TIMEOUT_S = 3
READY_CHECK_TIMEOUT_S = 0.5

# --- request body limit (MAX_REQUEST_BODY_BYTES) ----------------------------------------------------
# The API takes small JSON documents and a login form; 1 MiB is generous. The app enforces it while the
# body streams in (app/bodylimit.py) on every platform - the ALB and Cloud Run's front end cannot limit
# bodies - and Caddy enforces the same number on the VPS (request_body max_size). Stack key:
# app.max_request_body_bytes (capped on Lambda at the 6 MB synchronous invocation payload).
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024

# --- gunicorn -------------------------------------------------------------------------------------
WORKER_SILENT_TIMEOUT_S = 30
# A leak guard, not a routine: each recycle resets the busy keep-alive connections of that worker (measured
# ~8 failed requests per recycle, 0.35 % of requests, 0.90x throughput at 1000/100 under load; 0 failures
# without recycling; worker RSS stayed flat in every sweep: BENCHMARKS.md section 4). At 100 req/s per worker
# 1000 recycles every 10 s; 10000 every ~2 min. Jitter 10 % so workers don't restart together.
# (The app's own default without a deployer stays 1000/100.)
# With ONE worker there is nothing to fail over to: gunicorn forks the replacement only after the old worker
# has exited, so each recycle left the task with no accepting worker (0.7-1.3 s without preload; measured
# with a 1-ms probe in BENCHMARKS.md "Deployed settings") and reset every keep-alive connection. A single
# worker therefore gets 0 (no recycling); the memory limit of the task/container stays the backstop.
MAX_REQUESTS = 10000
MAX_REQUESTS_JITTER = 1000
SINGLE_WORKER_MAX_REQUESTS = 0

# --- garbage collector (app/gctune.py; applied by app/gunicorn_conf.py) ----------------------------------
# gc.freeze() after the app is imported (in the preloading master, before the workers fork): the ~90k
# import-time objects leave the collector's generations, so full collections stop walking them (gen-2
# pauses of 40-82 ms before) and stop dirtying the pages shared with the master.
GC_FREEZE = True
# gc.set_threshold in each worker. None = Python's default (700, 10, 10). Chosen by measurement
# (BENCHMARKS.md "Deployed settings").
GC_THRESHOLD: tuple[int, int, int] | None = (7000, 10, 10)
# --- load balancers and stop grace -----------------------------------------------------------------
# (The platforms' own stop grace, idle timeouts and limits are in fastapi_deploy/<target>/tuning.py.)
ALB_IDLE_TIMEOUT_S = 60  # ALB default idle timeout
KEEPALIVE_MARGIN_S = 15  # keepalive = idle + 15 = 75: the server must never close first
GRACEFUL_MARGIN_S = 10  # graceful = stop grace - 10: time left to flush logs and exit before SIGKILL
DRAIN_MARGIN_S = 5
MAX_DEREGISTRATION_DELAY_S = 120

# --- trusted proxy (FORWARDED_ALLOW_IPS) ----------------------------------------------------------------
# gunicorn/uvicorn apply X-Forwarded-For only when the TCP peer is in FORWARDED_ALLOW_IPS (default
# loopback). Behind a proxy the peer is always the proxy, so without this every client shares the proxy's
# login limits (30 attempts/minute and 5 per username for the whole world) and the logs show its address.
# Not `*` on ECS/VPS: uvicorn (0.54) with `*` takes the LEFTMOST X-Forwarded-For entry, and the ALB
# APPENDS the client address to whatever the client sent, so a client sending its own header would get a
# fresh rate-limit key per attempt. With a list, uvicorn walks right to left and stops at the first
# untrusted hop: the address the ALB (whose nodes have VPC-private addresses) or Caddy (on the private
# Docker bridge; 172.16/12 or 192.168/16 pools) saw. Only the proxy can reach the container there (ECS
# tasks' security group admits only the ALB; the VPS app publishes no port), so trusting private ranges
# trusts the proxy and nothing a client controls.
PRIVATE_PROXY_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.1,::1"
# Each target's value: TuningRules.forwarded_allow_ips in fastapi_deploy/<target>/tuning.py. Cloud Run has
# none: its proxies' addresses are unknown, the app counts FORWARDED_TRUSTED_HOPS from the right instead
# (fastapi_deploy/cloudrun/tuning.py, app/forwarded.py).

# --- /metrics exposure (METRICS_ENABLED) -----------------------------------------------------------------
# Where a scraper can reach the container privately (a collector sidecar in the ECS task, on localhost:
# the task security group admits only the ALB; the VPS's Docker network) /metrics stays on and the public
# path is blocked at the proxy (an ALB listener rule, a Caddy `respond`).
# Where it cannot (Cloud Run and Lambda: every request arrives from the internet through the platform's
# front end, and per-instance counters are useless to an external scraper anyway) the endpoint is removed,
# unless the stack sets METRICS_ENABLED itself in app.env (a deliberate choice, e.g. a collector sidecar).
# (TuningRules.metrics_privately_scrapable.)
METRICS_PATHS = ("/metrics", "/metrics/*")
# Where nothing scrapes (ECS has no Prometheus by default, Lambda never can), the app writes the same
# figures as CloudWatch Embedded Metric Format log lines (METRICS_EMF, app/runtime_metrics.py): the awslogs
# driver / Lambda's log stream carry them to CloudWatch Logs, which extracts the metrics. Not on Cloud Run
# (Cloud Logging ignores the _aws key) nor the VPS (no CloudWatch). (TuningRules.metrics_emf.)
# Replicas that may run at once during a deployment, relative to scaling.max: TuningRules.deploy_surge.

#: Per-target names that used to live here, now in the target's package (still importable from here).
_MOVED = {
    "ECS_STOP_TIMEOUT_S": "fastapi_deploy.ecs.tuning",
    "ECS_MAX_REQUEST_TIMEOUT_S": "fastapi_deploy.ecs.tuning",
    "ECS_MAX_PERCENT": "fastapi_deploy.ecs.tuning",
    "ECS_MIN_HEALTHY_PERCENT": "fastapi_deploy.ecs.tuning",
    "CLOUDRUN_STOP_GRACE_S": "fastapi_deploy.cloudrun.tuning",
    "CLOUDRUN_STARTUP_BUDGET_S": "fastapi_deploy.cloudrun.tuning",
    "LAMBDA_MB_PER_VCPU": "fastapi_deploy.awslambda.tuning",
    "VPS_STOP_TIMEOUT_S": "fastapi_deploy.vps.tuning",
    "VPS_PROXY_IDLE_TIMEOUT_S": "fastapi_deploy.vps.tuning",
}


_TABLES = frozenset(
    {
        "DEPLOY_SURGE",
        "FORWARDED_ALLOW_IPS",
        "METRICS_PRIVATELY_SCRAPABLE",
        "METRICS_EMF_PLATFORMS",
        "GC_PLATFORMS",
    }
)


def __getattr__(name: str) -> Any:
    """Per-target tables built from the registry (``DEPLOY_SURGE``, ``FORWARDED_ALLOW_IPS``,
    ``METRICS_PRIVATELY_SCRAPABLE``, ``METRICS_EMF_PLATFORMS``, ``GC_PLATFORMS``) and the moved constants."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    if name not in _TABLES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fastapi_deploy import registry

    rules = {t.key: t.tuning for t in registry.all_targets()}
    if name == "DEPLOY_SURGE":
        return {k: r.deploy_surge for k, r in rules.items()}
    if name == "FORWARDED_ALLOW_IPS":
        return {k: r.forwarded_allow_ips for k, r in rules.items() if r.forwarded_allow_ips is not None}
    if name == "METRICS_PRIVATELY_SCRAPABLE":
        return {k: r.metrics_privately_scrapable for k, r in rules.items()}
    if name == "METRICS_EMF_PLATFORMS":
        return frozenset(k for k, r in rules.items() if r.metrics_emf)
    if name == "GC_PLATFORMS":
        return frozenset(k for k, r in rules.items() if r.gunicorn)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rules_for(platform: str) -> TuningRules:
    """The platform rules of a registered target (:class:`fastapi_deploy.registry.TuningRules`)."""
    from fastapi_deploy import registry

    return registry.get(platform).tuning


class TuningError(ValueError):
    """The requested size/scale cannot be tuned safely; the message names the config keys to change."""


# Interpreter + alembic import + gunicorn boot + first /health after the migration, on a cold 1-vCPU task.
MIGRATE_BOOT_MARGIN_S = 10


@dataclass(frozen=True)
class ContainerHealth:
    """Container (Docker/ECS) health check timings."""

    interval_s: int = 10
    timeout_s: int = 5
    retries: int = 3
    #: Failures during this window don't count; the app starts in a few seconds, 20 s covers cold CPU.
    start_period_s: int = 20


@dataclass(frozen=True)
class LbHealth:
    """Load balancer target health check timings."""

    interval_s: int = 15
    timeout_s: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    matcher: str = "200"


@dataclass(frozen=True)
class TuningInput:
    """Everything tuning needs, independent of the config model (for unit tests and the bench)."""

    platform: Platform
    vcpu: float
    memory_mib: int
    max_replicas: int
    db_budget: int
    request_timeout_s: int = 30
    app_env: str = "production"
    port: int = 8000
    workers: int | None = None
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout_s: float | None = None
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    #: Names of the config keys behind each input, used in error messages.
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeTuning:
    """Runtime settings for the container plus the platform numbers that must agree with them."""

    platform: Platform
    app_env: str
    port: int
    workers: int
    keepalive_s: int
    timeout_s: int
    graceful_timeout_s: int
    max_requests: int
    max_requests_jitter: int
    pool_class: Literal["queue", "null"]
    pool_size: int
    max_overflow: int
    pool_timeout_s: float
    pool_recycle_s: int
    pool_pre_ping: bool
    connect_timeout_s: int
    ready_check_timeout_s: float
    request_timeout_s: int
    #: Platform numbers.
    stop_timeout_s: int
    lb_idle_timeout_s: int | None
    deregistration_delay_s: int | None
    health_check_grace_s: int | None
    container_health: ContainerHealth | None
    lb_health: LbHealth | None
    container_concurrency: int | None
    lambda_timeout_s: int | None
    #: Connection budget accounting.
    max_replicas: int
    deploy_surge: float
    connection_budget: int
    vcpu: float
    memory_mib: int
    #: Largest request body the app (and Caddy on the VPS) accepts.
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    #: GC_FREEZE / GC_THRESHOLD (gunicorn platforms only).
    gc_freeze: bool = False
    gc_threshold: tuple[int, int, int] | None = None

    @property
    def replicas_during_deploy(self) -> int:
        """Upper bound of replicas alive at once (max replicas x deploy surge)."""
        return math.ceil(self.max_replicas * self.deploy_surge)

    @property
    def connections_per_replica(self) -> int:
        """Max DB connections one replica can open."""
        return self.workers * (self.pool_size + self.max_overflow)

    @property
    def max_total_connections(self) -> int:
        """Max DB connections the whole service can open during a deploy at max scale."""
        return self.replicas_during_deploy * self.connections_per_replica

    def env(self) -> dict[str, str]:
        """Container env with the exact names of contract section 1 (values are strings)."""
        env = {
            "APP_ENV": self.app_env,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.workers),
            "GUNICORN_KEEPALIVE": str(self.keepalive_s),
            "GUNICORN_TIMEOUT": str(self.timeout_s),
            "GUNICORN_GRACEFUL_TIMEOUT": str(self.graceful_timeout_s),
            "GUNICORN_MAX_REQUESTS": str(self.max_requests),
            "GUNICORN_MAX_REQUESTS_JITTER": str(self.max_requests_jitter),
            "DB_POOL_CLASS": self.pool_class,
            "DB_POOL_SIZE": str(self.pool_size),
            "DB_MAX_OVERFLOW": str(self.max_overflow),
            "DB_POOL_TIMEOUT": _num(self.pool_timeout_s),
            "DB_POOL_RECYCLE": str(self.pool_recycle_s),
            "DB_POOL_PRE_PING": "true" if self.pool_pre_ping else "false",
            "DB_CONNECT_TIMEOUT": str(self.connect_timeout_s),
            "READY_CHECK_TIMEOUT": _num(self.ready_check_timeout_s),
            "MAX_REQUEST_BODY_BYTES": str(self.max_request_body_bytes),
        }
        rules = rules_for(self.platform)
        if rules.forwarded_allow_ips is not None:
            env["FORWARDED_ALLOW_IPS"] = rules.forwarded_allow_ips
        if rules.metrics_emf:
            env["METRICS_EMF"] = "true"
        if rules.gunicorn:
            env["GC_FREEZE"] = "true" if self.gc_freeze else "false"
            env["GC_THRESHOLD"] = ",".join(map(str, self.gc_threshold)) if self.gc_threshold else ""
        return env

    def component_props(self) -> dict[str, Any]:
        """Props every target component registers with the engine, so the policy pack's
        `db-connection-budget` rule (which reads `dbConnectionBudget` off the `fastapi-deploy:*` component)
        can check pool x workers x max replicas x deploy surge under `pulumi preview --policy-pack policy`.
        The rule takes workers/pool/replicas from the real resources (env, autoscaling, deployment
        settings); the others are here so the engine's view of the component shows the arithmetic.
        Components register these plus their runtime facts (``fastapi_deploy.component.runtime_props``)."""
        return {
            "dbConnectionBudget": self.connection_budget,
            "maxReplicas": self.max_replicas,
            "deploySurge": self.deploy_surge,
            "workers": self.workers,
            "poolSize": self.pool_size,
            "maxOverflow": self.max_overflow,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (for `infra plan`), including the derived budget numbers."""
        d = asdict(self)
        d.update(
            replicas_during_deploy=self.replicas_during_deploy,
            connections_per_replica=self.connections_per_replica,
            max_total_connections=self.max_total_connections,
            env=self.env(),
        )
        return d

    def check(self) -> None:
        """Assert the timeout chain and the budget; raises TuningError."""
        if self.lb_idle_timeout_s is not None and self.keepalive_s <= self.lb_idle_timeout_s:
            raise TuningError(
                f"keepalive {self.keepalive_s}s must exceed the LB idle timeout {self.lb_idle_timeout_s}s"
            )
        if self.graceful_timeout_s >= self.stop_timeout_s:
            raise TuningError(
                f"graceful timeout {self.graceful_timeout_s}s must be below the stop grace "
                f"{self.stop_timeout_s}s"
            )
        if self.deregistration_delay_s is not None:
            if self.graceful_timeout_s > self.deregistration_delay_s:
                raise TuningError("graceful timeout must not exceed the deregistration delay")
            if self.deregistration_delay_s < self.request_timeout_s:
                raise TuningError("deregistration delay must cover the longest request")
        if self.max_total_connections > self.connection_budget:
            raise TuningError(
                f"{self.max_total_connections} connections exceed the budget of {self.connection_budget}"
            )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _workers(inp: TuningInput) -> int:
    k = inp.keys
    own = rules_for(inp.platform).workers
    if own is not None:
        return own(inp)
    by_cpu = max(1, int(inp.vcpu))
    by_mem = max(0, (inp.memory_mib - MEMORY_HEADROOM_MIB) // MEMORY_PER_WORKER_MIB)
    if by_mem < 1:
        raise TuningError(
            f"{k.get('memory', 'memory')}: {inp.memory_mib} MiB leaves no room for one worker "
            f"({MEMORY_HEADROOM_MIB} MiB headroom + {MEMORY_PER_WORKER_MIB} MiB per worker); raise it"
        )
    if inp.workers is not None:
        if inp.workers > by_mem:
            raise TuningError(
                f"{k.get('workers', 'app.tuning.workers')}: {inp.workers} workers need "
                f"{MEMORY_HEADROOM_MIB + inp.workers * MEMORY_PER_WORKER_MIB} MiB but "
                f"{k.get('memory', 'memory')} is {inp.memory_mib}; lower workers or raise memory"
            )
        return inp.workers
    return min(by_cpu, by_mem, MAX_WORKERS)


def _pool(inp: TuningInput, workers: int, replicas: int) -> tuple[int, int]:
    k = inp.keys
    rules = rules_for(inp.platform)
    if rules.pool is not None:
        return rules.pool(inp)
    per_worker = inp.db_budget // (replicas * workers)
    want_size = inp.pool_size if inp.pool_size is not None else DEFAULT_POOL_SIZE
    want_overflow = inp.max_overflow if inp.max_overflow is not None else DEFAULT_MAX_OVERFLOW
    explicit = inp.pool_size is not None or inp.max_overflow is not None
    change = ", ".join(
        [
            k.get("budget_max", "app.database.max_connections"),
            k.get("budget_reserved", "app.database.reserved_connections"),
            k.get("max_replicas", "app.scaling.max"),
            k.get("workers", "app.tuning.workers"),
            k.get("size", "the target's cpu"),
        ]
    )
    arithmetic = (
        f"{replicas} replicas during a deploy ({k.get('max_replicas', 'app.scaling.max')}={inp.max_replicas} "
        f"x surge {rules.deploy_surge:g}) x {workers} workers"
    )
    if explicit:
        need = replicas * workers * (want_size + want_overflow)
        if need > inp.db_budget:
            raise TuningError(
                f"app.tuning.db_pool_size/db_max_overflow: {arithmetic} x ({want_size}+{want_overflow}) "
                f"= {need} connections exceed the database budget of {inp.db_budget}; "
                f"lower them or change one of: {change}"
            )
        return want_size, want_overflow
    if per_worker < MIN_CONNECTIONS_PER_WORKER:
        raise TuningError(
            f"connection budget exceeded: {arithmetic} x {MIN_CONNECTIONS_PER_WORKER} connections minimum "
            f"= {replicas * workers * MIN_CONNECTIONS_PER_WORKER} > budget {inp.db_budget}; "
            f"change one of: {change}"
        )
    size = min(want_size, per_worker)
    overflow = min(want_overflow, per_worker - size)
    return size, overflow


def tune(inp: TuningInput) -> RuntimeTuning:
    """Compute the tuning for one platform. Raises :class:`TuningError` naming the keys to change."""
    if inp.max_replicas < 1:
        raise TuningError(f"{inp.keys.get('max_replicas', 'app.scaling.max')}: must be at least 1")
    rules = rules_for(inp.platform)
    workers = _workers(inp)
    surge = rules.deploy_surge
    replicas = math.ceil(inp.max_replicas * surge)
    pool_size, max_overflow = _pool(inp, workers, replicas)
    rt = inp.request_timeout_s
    common: dict[str, Any] = dict(
        platform=inp.platform,
        app_env=inp.app_env,
        port=inp.port,
        workers=workers,
        timeout_s=WORKER_SILENT_TIMEOUT_S,
        max_requests=MAX_REQUESTS if workers > 1 else SINGLE_WORKER_MAX_REQUESTS,
        max_requests_jitter=MAX_REQUESTS_JITTER if workers > 1 else 0,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout_s=inp.pool_timeout_s or POOL_TIMEOUT_S,
        pool_recycle_s=POOL_RECYCLE_S,
        pool_pre_ping=True,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        ready_check_timeout_s=READY_CHECK_TIMEOUT_S,
        request_timeout_s=rt,
        max_replicas=inp.max_replicas,
        deploy_surge=surge,
        connection_budget=inp.db_budget,
        vcpu=inp.vcpu,
        memory_mib=inp.memory_mib,
        max_request_body_bytes=inp.max_request_body_bytes,
        gc_freeze=GC_FREEZE if rules.gunicorn else False,
        gc_threshold=GC_THRESHOLD if rules.gunicorn else None,
    )
    # The platform's numbers: keepalive, graceful timeout, stop grace, LB and health timings
    # (fastapi_deploy/<target>/tuning.py).
    tuning = rules.platform(inp, common)
    tuning.check()
    return tuning


def input_for(cfg: StackConfigType) -> TuningInput:
    """Map a validated stack config onto :class:`TuningInput` (with config key names for errors)."""
    keys = {
        "workers": "app.tuning.workers",
        "budget_max": "app.database.max_connections",
        "budget_reserved": "app.database.reserved_connections",
        "max_replicas": "app.scaling.max",
        "budget": "app.database.max_connections - app.database.reserved_connections",
    }
    t = cfg.tuning
    extra: dict[str, Any] = dict(
        db_budget=cfg.database.budget,
        request_timeout_s=cfg.request_timeout_s,
        app_env=cfg.environment,
        port=cfg.port,
        workers=t.workers,
        pool_size=t.db_pool_size,
        max_overflow=t.db_max_overflow,
        pool_timeout_s=t.db_pool_timeout_s,
        max_request_body_bytes=cfg.max_request_body_bytes,
    )
    # The target maps its size (cpu, memory) and max replicas, naming its keys.
    return rules_for(cfg.target).input_for(cfg, keys, extra)


def for_platform(cfg: StackConfigType) -> RuntimeTuning:
    """Tuning for a validated stack config (the function the Pulumi program calls)."""
    tuning = tune(input_for(cfg))
    adjust = rules_for(cfg.target).adjust
    return adjust(cfg, tuning) if adjust is not None else tuning


def _replace(t: RuntimeTuning, **changes: Any) -> RuntimeTuning:
    from dataclasses import replace

    return replace(t, **changes)


def container_environment(cfg: StackConfigType, tuning: RuntimeTuning) -> dict[str, str]:
    """Plain (non-secret) env for the container: user env + CORS + tuning env (tuning wins; config
    validation already refuses user env that collides with tuning names)."""
    env = dict(cfg.env)
    if cfg.cors_origins:
        env["CORS_ORIGINS"] = ",".join(cfg.cors_origins)
    env.update(tuning.env())
    env.update(migrate_env(cfg.database.migrate_mode(cfg.target), tuning))
    rules = rules_for(cfg.target)
    if not rules.metrics_privately_scrapable:
        env.setdefault("METRICS_ENABLED", "false")  # the user's explicit app.env value stays
    if env.get("METRICS_EMF") == "true":
        # The EMF lines must carry exactly the namespace and Service dimension the stack's alarms read
        # (fastapi_deploy/ecs/component.py: Service=<component name>), or those alarms never get a data point.
        env["METRICS_EMF_SERVICE"] = f"{cfg.name}-{cfg.stack}"
    if rules.extra_env is not None:
        env.update(rules.extra_env(cfg))
    return dict(sorted(env.items()))


def migrate_env(mode: str, tuning: RuntimeTuning) -> dict[str, str]:
    """The migration switches of the container env for ``app.database.migrate`` (stack config and
    component Args alike): ``on_start`` migrates in each new container within its start window; ``release``
    turns that off, the deploy runs it once before traffic moves (fastapi_deploy/release_migrate.py);
    ``manual`` sets nothing."""
    if mode == "on_start":
        return {"MIGRATE_ON_START": "true", "MIGRATE_TIMEOUT": str(migrate_timeout_s(tuning))}
    if mode == "release":
        return {"MIGRATE_ON_START": "false"}
    return {}


def migrate_timeout_s(tuning: RuntimeTuning) -> int:
    """MIGRATE_TIMEOUT for migrate-on-start: the platform's start budget minus the app's boot.

    The migration runs before gunicorn listens, so it spends the window in which health checks don't yet
    count: ECS/VPS container health = startPeriod 20 s + 3 x 10 s = 50 s (the ALB grace is 60 s); Cloud
    Run's startup probe = 24 x 5 s = 120 s. Past that the platform kills the task mid-migration (PostgreSQL
    rolls the DDL transaction back and releases the lock, the next task retries) — so app.migrate gives
    up first with a readable error. Migrations longer than this belong in ``app.database.migrate: manual``.
    """
    own = rules_for(tuning.platform).startup_budget_s
    if own is not None:
        budget = own
    else:
        hc = tuning.container_health or ContainerHealth()
        budget = hc.start_period_s + hc.interval_s * hc.retries
    return max(10, budget - MIGRATE_BOOT_MARGIN_S)
