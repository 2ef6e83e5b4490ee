"""A VPS: Docker over SSH, the app behind Caddy (automatic TLS), redeploys without dropping requests.

What a user gets from :class:`VpsService`:

- a ``pulumi_docker.Provider`` talking to ``ssh://user@host:port`` (ssh-agent, or a key read from a
  secret reference), with registry credentials for the image's registry (ECR token, Artifact Registry
  access token, or ``app.vps.registry`` username + password reference);
- the image pulled BY DIGEST (``RemoteImage``) and kept on the host (the previous one too: rollback is a
  re-deploy of the old digest without a download);
- a private bridge network; the app container joins it under the alias ``app`` and publishes NO port —
  only Caddy (80/443, TLS for ``app.domain`` from Let's Encrypt) is reachable from the internet;
- the app container with a restart policy, CPU/memory limits (no swap), read-only root filesystem,
  all capabilities dropped, rotated json-file logs, the tuning module's worker count for the host's
  CPUs, and a Docker health check on the READINESS path;
- secrets read at deploy time from Parameter Store / Secrets Manager / Secret Manager and passed only
  as Pulumi secrets (encrypted in state, shown as ``[secret]``) — the env list is one secret value.

Zero-downtime redeploy (details and limits in docs/targets.md):

0. A one-shot ``gate`` container runs the new image + env on the private network WITHOUT the ``app``
   alias, starts the server and polls readiness; the app container's image waits for its exit code, so
   a release that never becomes ready fails ``pulumi up`` before anything that serves traffic changes.
1. The app container has no fixed ``name`` (Pulumi auto-names it) and ``delete_before_replace=False``,
   so a new digest or env creates the NEW container next to the old one first.
2. ``wait=True``: the create only succeeds once Docker reports the new container healthy, i.e. its
   ``/ready`` answers 200 (database reachable, secrets valid). Until then the old one keeps serving;
   a bad release fails ``pulumi up`` and the old container is never removed.
3. Both containers carry the network alias ``app``; Caddy resolves it every second (``dynamic a``) and
   load-balances across all addresses, retrying a failed dial on the other one for up to 5 s.
4. Only then does Pulumi delete the old container: ``docker stop`` sends SIGTERM with
   ``stop_timeout`` (> gunicorn's graceful timeout) so in-flight requests finish; new connections to
   it are refused and Caddy retries them on the new container.

Caddy's configuration names the alias, not a container, so an app redeploy never touches Caddy.
"""

import hashlib
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker

from fastapi_deploy import component as cargs
from fastapi_deploy.component import ArgsError, NamedComponent
from fastapi_deploy.config import (
    AppConfigBase,
    ConfigError,
    Database,
    Health,
    TuningOverrides,
    VpsSettings,
    route53_zone_problem,
)
from fastapi_deploy.secret_refs import SCHEMES, SecretRef
from fastapi_deploy.tuning import (
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    METRICS_PATHS,
    METRICS_PRIVATELY_SCRAPABLE,
    RuntimeTuning,
    TuningInput,
    migrate_env,
    tune,
)
from fastapi_deploy.vps.args import VpsServiceArgs
from fastapi_deploy.vps.domain import VpsDomain, VpsDomainArgs

COMPONENT_TYPE = "fastapi-deploy:vps:VpsService"
OWNER = "VpsServiceArgs"

#: Caddy 2 terminates TLS (ACME HTTP-01/TLS-ALPN-01 on 80/443) and proxies to the app alias.
CADDY_IMAGE = "caddy:2.10-alpine"
#: The image's non-root user (Dockerfile ``USER 10001:10001``), stated explicitly so a base-image change
#: can't silently make the app root on a host that also runs other things.
IMAGE_USER = "10001:10001"
#: The image's server command (Dockerfile ``CMD``); the release gate starts exactly this.
SERVER_COMMAND = ["gunicorn", "--config", "app/gunicorn_conf.py", "app.main:create_app()"]
#: Seconds between the release gate's readiness polls.
GATE_POLL_S = 2
#: The DNS name every app container answers to on the private network (Caddy's upstream).
APP_ALIAS = "app"
#: Docker label marking the one-shot release gate; the policy pack (policy/rules.py RELEASE_GATE_LABEL)
#: reads it so the gate is not counted as a serving instance (it would double every stack finding).
GATE_ROLE_LABEL = ("fastapi-deploy.role", "release-gate")
#: Caddy re-resolves the alias this often, so a new container gets traffic within ~1 s of joining.
CADDY_REFRESH = "1s"
#: How long Caddy keeps retrying a request whose upstream dial failed (old container stopping).
CADDY_TRY_DURATION = "5s"


# ----------------------------------------------------------------------------------------- secrets
def read_secret(
    ref: SecretRef, *, gcp_project: str | None, opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[str]:
    """Read a secret's value at deploy time as a Pulumi secret (never printed, encrypted in state)."""
    if ref.scheme == "ssm":
        import pulumi_aws as aws

        value = aws.ssm.get_parameter_output(
            name=ref.given_arn or ref.name, with_decryption=True, opts=opts
        ).value
    elif ref.scheme == "secretsmanager":
        import pulumi_aws as aws

        raw = aws.secretsmanager.get_secret_version_output(
            secret_id=ref.given_arn or ref.name, opts=opts
        ).secret_string
        key = ref.json_key
        value = raw.apply(lambda s: str(json.loads(s)[key])) if key else raw
    else:
        import pulumi_gcp as gcp

        project = ref.project or gcp_project
        if not project:
            raise ConfigError(f"{ref}: no project in the reference and no gcp:project in the stack config")
        value = gcp.secretmanager.get_secret_version_access_output(
            secret=ref.name, project=project, version=ref.version or "latest", opts=opts
        ).secret_data
    return pulumi.Output.secret(value)


# ----------------------------------------------------------------------------------------- caddy
def render_caddyfile(
    domain: str,
    port: int,
    upstream_keepalive_s: int,
    acme_email: str | None,
    max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES,
) -> str:
    """The Caddyfile: TLS for ``domain``, proxy to every container answering to the ``app`` alias,
    refusing request bodies over ``max_body_bytes`` (413) before they reach the app."""
    global_opts = [
        "\t# no admin API: nothing on the host or network can reconfigure the proxy",
        "\tadmin off",
    ]
    if acme_email:
        global_opts.insert(0, f"\temail {acme_email}")
    return "\n".join(
        [
            "{",
            *global_opts,
            "}",
            "",
            f"{domain} {{",
            "\tencode zstd gzip",
            "\t# the app's own MAX_REQUEST_BODY_BYTES (app.max_request_body_bytes): refused at the edge too",
            "\trequest_body {",
            f"\t\tmax_size {max_body_bytes}",
            "\t}",
            "\t# /metrics is for scrapers on the Docker network; from the internet Caddy answers 404 itself",
            f"\t@metrics path {' '.join(METRICS_PATHS)}",
            "\trespond @metrics 404",
            "\treverse_proxy {",
            "\t\t# every container with the alias; both old and new during a redeploy",
            "\t\tdynamic a {",
            f"\t\t\tname {APP_ALIAS}",
            f"\t\t\tport {port}",
            f"\t\t\trefresh {CADDY_REFRESH}",
            "\t\t}",
            "\t\tlb_policy round_robin",
            "\t\t# a refused dial (container stopping) is retried on the other address",
            f"\t\tlb_try_duration {CADDY_TRY_DURATION}",
            "\t\tlb_try_interval 250ms",
            "\t\tfail_duration 10s",
            "\t\ttransport http {",
            "\t\t\tdial_timeout 2s",
            # Caddy's default upstream keepalive (2 min) outlives gunicorn's (75 s): the server would close
            # connections Caddy is about to reuse -> 502. Proxy idle < server keepalive, as with the ALB.
            f"\t\t\tkeepalive {upstream_keepalive_s}s",
            "\t\t}",
            "\t}",
            "}",
            "",
        ]
    )


def healthcheck_command(port: int, path: str, timeout_s: int) -> list[str]:
    """Docker health check: GET the readiness path with the image's own Python (no curl in the image)."""
    code = (
        "import sys,urllib.request\n"
        f"try: urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout={timeout_s})\n"
        "except Exception: sys.exit(1)"
    )
    return ["CMD", "python", "-c", code]


def gate_script(
    port: int,
    path: str,
    timeout_s: int,
    attempts: int,
    server: list[str] | None = None,
    migrate: list[str] | None = None,
) -> str:
    """Shell script of the release gate: start the server, poll readiness, stop it, exit 0 only if ready.

    Exits 1 as soon as the server process dies (a settings error such as a placeholder JWT secret) or
    when readiness never answers 200 within ``attempts x GATE_POLL_S`` seconds (wrong DATABASE_URL).
    With ``migrate`` (``app.database.migrate: release``: :func:`release_gate_migrate_command`) that command
    runs first and a non-zero exit fails the gate before the server is even started.
    """
    probe = shlex.join(healthcheck_command(port, path, timeout_s)[1:])
    first = (
        [f"if ! {shlex.join(migrate)}; then echo 'release gate: migration failed' >&2; exit 1; fi"]
        if migrate
        else []
    )
    return "\n".join(
        [
            *first,
            f"{shlex.join(server or SERVER_COMMAND)} &",
            "pid=$!",
            "i=0",
            f"while [ $i -lt {attempts} ]; do",
            f"  if {probe}; then kill -TERM $pid; wait $pid; echo 'release gate: ready'; exit 0; fi",
            "  if ! kill -0 $pid 2>/dev/null; then echo 'release gate: server exited' >&2; exit 1; fi",
            f"  i=$((i+1)); sleep {GATE_POLL_S}",
            "done",
            "kill -TERM $pid; wait $pid",
            f"echo 'release gate: {path} not ready in time' >&2",
            "exit 1",
        ]
    )


def release_gate_migrate_command() -> list[str]:
    """The release gate's migration (``app.database.migrate: release``): ``python -m app.migrate`` bounded
    like the other targets' release step (MIGRATE_ON_START is off in the env, so gunicorn won't repeat it)."""
    from fastapi_deploy.release_migrate import DEFAULT_TIMEOUT_S, MIGRATE_COMMAND, app_migrate_timeout_s

    return ["env", f"MIGRATE_TIMEOUT={app_migrate_timeout_s(DEFAULT_TIMEOUT_S)}", *MIGRATE_COMMAND]


def require_gate_passed(values: list[Any]) -> str:
    """The app container's image id, but only once the release gate exited 0 (unknown in a preview)."""
    exit_code, image_id, gate_name = values
    if exit_code is not None and int(exit_code) != 0:
        raise RuntimeError(
            f"release gate failed (exit {int(exit_code)}): the migration failed or the new image/env never "
            "became ready, so the "
            f"running container was left in place; see `docker logs {gate_name}` on the host"
        )
    return str(image_id)


def _write_key(material: str) -> str:
    # The docker provider shells out to `ssh`, which needs the key in a file (0600, in a 0700 dir under
    # ~/.ssh). The file must OUTLIVE this program: Pulumi deletes the replaced app container (every
    # release) only after the program has exited, and `pulumi destroy`/`refresh` reuse the provider's
    # stored ssh_opts without running it. A temp dir removed at exit made those ssh calls fail and left
    # the old container serving. The name derives from the key, so an unchanged key gives unchanged
    # ssh_opts (no provider diff on every preview) and a rotated key a visible one.
    body = material if material.endswith("\n") else material + "\n"
    ssh_dir = Path.home() / ".ssh"
    key_dir = ssh_dir / "fastapi-deploy"
    for d in (ssh_dir, key_dir):
        d.mkdir(mode=0o700, exist_ok=True)
    os.chmod(key_dir, 0o700)
    path = key_dir / f"id-{hashlib.sha256(body.encode()).hexdigest()[:16]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    return str(path)


def _env_line(key: str) -> Callable[[str], str]:
    return lambda value: f"{key}={value}"


def _registry_host(image: str) -> str:
    return image.split("/", 1)[0]


@dataclass(frozen=True)
class VpsInputs:
    """The Args after validation."""

    image: pulumi.Input[str]
    domain: str
    settings: VpsSettings
    port: int
    app_env: str
    env: dict[str, pulumi.Input[str]]
    secrets: dict[str, SecretRef]
    health: Health
    database: Database
    request_timeout_s: int
    max_request_body_bytes: int
    overrides: TuningOverrides
    repository_url: pulumi.Input[str] | None
    gcp_project: str | None
    tags: dict[str, str]


_SETTINGS_KEYS = (
    "host",
    "ssh_port",
    "ssh_user",
    "ssh_key_secret",
    "cpus",
    "memory",
    "registry",
    "acme_email",
    "zone",
    "zone_provider",
)


def inputs_from_args(args: VpsServiceArgs) -> VpsInputs:
    """Validate the Args (raises :class:`ArgsError` naming the Arg); registers nothing."""
    a = cargs.known_args(OWNER, args, VpsServiceArgs)
    image = cargs.image(OWNER, a)
    domain = cargs.required(OWNER, a, "domain")
    cargs.required(OWNER, a, "host")
    settings = cargs.settings(OWNER, a, VpsSettings, _SETTINGS_KEYS)
    if (settings.zone is None) != (settings.zone_provider is None):
        raise ArgsError(f"{OWNER}.zone_provider: set zone and zone_provider together (route53 or clouddns)")
    if settings.zone is not None and settings.zone_provider == "route53":
        problem = route53_zone_problem(settings.zone, domain, f"{OWNER}.zone")
        if problem:
            raise ArgsError(problem.replace("app.domain", f"{OWNER}.domain"))
    if settings.zone_provider == "clouddns" and not a.get("gcp_project"):
        raise ArgsError(f"{OWNER}.gcp_project: a Cloud DNS zone needs the project it lives in")
    return VpsInputs(
        image=image,
        domain=domain,
        settings=settings,
        port=cargs.field(OWNER, "port", AppConfigBase, "port", a.get("port", 8000)),
        app_env=cargs.field(
            OWNER, "environment", AppConfigBase, "environment", a.get("environment", "production")
        ),
        env=cargs.env(OWNER, a.get("env")),
        secrets=cargs.secret_refs(OWNER, a.get("secrets"), SCHEMES),
        health=cargs.section(OWNER, "health", Health, a.get("health")),
        database=cargs.section(OWNER, "database", Database, a.get("database")),
        request_timeout_s=cargs.field(
            OWNER, "request_timeout_s", AppConfigBase, "request_timeout_s", a.get("request_timeout_s", 30)
        ),
        max_request_body_bytes=cargs.field(
            OWNER,
            "max_request_body_bytes",
            AppConfigBase,
            "max_request_body_bytes",
            a.get("max_request_body_bytes", DEFAULT_MAX_REQUEST_BODY_BYTES),
        ),
        overrides=cargs.section(OWNER, "overrides", TuningOverrides, a.get("overrides")),
        repository_url=a.get("repository_url"),
        gcp_project=a.get("gcp_project"),
        tags=cargs.tags(OWNER, a.get("tags")),
    )


def tuning_for(inp: VpsInputs) -> RuntimeTuning:
    """The runtime tuning computed from the Args (one container: max replicas 1)."""
    o = inp.overrides
    return tune(
        TuningInput(
            "vps",
            inp.settings.cpus,
            inp.settings.memory,
            1,
            db_budget=inp.database.budget,
            request_timeout_s=inp.request_timeout_s,
            app_env=inp.app_env,
            port=inp.port,
            workers=o.workers,
            pool_size=o.db_pool_size,
            max_overflow=o.db_max_overflow,
            pool_timeout_s=o.db_pool_timeout_s,
            max_request_body_bytes=inp.max_request_body_bytes,
            keys=cargs.tuning_keys(
                OWNER, max_replicas=f"{OWNER} (one container)", size=f"{OWNER}.cpus", memory=f"{OWNER}.memory"
            ),
        )
    )


def final_env(inp: VpsInputs, tuning: RuntimeTuning) -> dict[str, pulumi.Input[str]]:
    """The Args' env, then the tuning's variables (they win) and the migrate/metrics switches."""
    env: dict[str, pulumi.Input[str]] = {**inp.env, **tuning.env()}
    env.update(migrate_env(inp.database.migrate_mode("vps"), tuning))
    if not METRICS_PRIVATELY_SCRAPABLE["vps"]:
        env.setdefault("METRICS_ENABLED", "false")
    return dict(sorted(env.items()))


class VpsService(NamedComponent):
    """The app and Caddy on one Docker host over SSH (see the module docstring)."""

    target: pulumi.Output[str]
    """Always ``vps``."""
    url: pulumi.Output[str]
    """``https://<domain>``."""
    image: pulumi.Output[str]
    """The image reference the container runs."""
    health_path: pulumi.Output[str]
    """Liveness path."""
    ready_path: pulumi.Output[str]
    """Readiness path."""
    host: pulumi.Output[str]
    """The Docker host."""
    container_name: pulumi.Output[str]
    """Name of the serving app container."""
    domain: pulumi.Output[str]
    """The domain Caddy serves."""

    def __init__(
        self,
        name: str,
        args: VpsServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        tuning: RuntimeTuning | None = None,
    ) -> None:
        inp = inputs_from_args(args)
        vps = inp.settings
        tuning = tuning if tuning is not None else tuning_for(inp)
        health = tuning.container_health
        if health is None:
            raise ArgsError(f"{OWNER}: the VPS tuning must define container health timings")
        if tuning.graceful_timeout_s >= tuning.stop_timeout_s:
            raise ArgsError(
                f"{OWNER}.request_timeout_s: GUNICORN_GRACEFUL_TIMEOUT {tuning.graceful_timeout_s}s must be "
                "below "
                f"the stop timeout {tuning.stop_timeout_s}s, or `docker stop` kills requests mid-drain"
            )
        env = final_env(inp, tuning)
        domain = inp.domain
        # The runtime facts (contract.RUNTIME_FACTS): one container. Its plain env only (no credential by
        # construction, as on the other targets); the secrets' values join it in the container's env list.
        props = cargs.runtime_props(tuning, env, min_replicas=1)
        super().__init__(COMPONENT_TYPE, name, props, opts)
        self.tuning = tuning
        gcp_project = inp.gcp_project
        invoke = self.invoke_opts()

        # --- provider: ssh + registry credentials ---------------------------------------------------
        ssh_opts: pulumi.Input[list[str]] = ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=15"]
        if vps.ssh_key_secret:
            key = read_secret(SecretRef.parse(vps.ssh_key_secret), gcp_project=gcp_project, opts=invoke)
            ssh_opts = key.apply(
                lambda k: ["-i", _write_key(k), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            )
        self.provider = docker.Provider(
            f"{name}-docker",
            host=f"ssh://{vps.ssh_user}@{vps.host}:{vps.ssh_port}",
            ssh_opts=ssh_opts,
            registry_auth=self._registry_auth(inp, gcp_project, invoke),
            opts=self.child_opts(),
        )
        on_host = pulumi.ResourceOptions(parent=self, provider=self.provider)
        labels = [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(inp.tags.items())]

        self.network = docker.Network(
            f"{name}-net",
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(inp.tags.items())],
            opts=on_host,
        )

        # --- the app --------------------------------------------------------------------------------
        self.remote_image = docker.RemoteImage(
            f"{name}-image",
            name=inp.image,
            # Keep the previous image on the host: rolling back is a redeploy without a pull, and the old
            # container still references it while the new one starts.
            keep_locally=True,
            opts=on_host,
        )
        plain = [pulumi.Output.from_input(v).apply(_env_line(k)) for k, v in env.items()]
        secret_values: list[pulumi.Output[str]] = [
            read_secret(ref, gcp_project=gcp_project, opts=invoke).apply(_env_line(k))
            for k, ref in sorted(inp.secrets.items())
        ]
        # One secret Output for the whole list: plain values ride along encrypted, no secret leaks out.
        all_lines: pulumi.Output[list[str]] = pulumi.Output.all(*plain, *secret_values).apply(list)
        envs: pulumi.Output[list[str]] = pulumi.Output.secret(all_lines)

        interval, timeout, retries, start = (
            health.interval_s,
            health.timeout_s,
            health.retries,
            health.start_period_s,
        )
        healthcheck = docker.ContainerHealthcheckArgs(
            tests=healthcheck_command(inp.port, inp.health.readiness_path, timeout),
            interval=f"{interval}s",
            timeout=f"{timeout}s",
            retries=retries,
            start_period=f"{start}s",
            start_interval="2s",
        )

        # --- release gate: the new image + env must reach readiness BEFORE anything serves traffic -----
        # A one-shot container on the private network WITHOUT the `app` alias (Caddy never routes to it)
        # starts the server and polls readiness. The app container's image input waits for its exit code,
        # so a bad release fails `pulumi up` before the running container is touched.
        gate_health = health.start_period_s + health.interval_s * health.retries
        attempts = max(1, -(-gate_health // GATE_POLL_S))
        self.gate = docker.Container(
            f"{name}-gate",
            image=self.remote_image.image_id,
            user=IMAGE_USER,
            envs=envs,
            command=[
                "sh",
                "-c",
                gate_script(
                    inp.port,
                    inp.health.readiness_path,
                    health.timeout_s,
                    attempts,
                    # migrate: release - the gate runs `python -m app.migrate` first; a failure fails it.
                    migrate=release_gate_migrate_command()
                    if inp.database.migrate_mode("vps") == "release"
                    else None,
                ),
            ],
            # attach: the create returns when the script exits; must_run=False keeps the exited container
            # (and its exit code) instead of treating the exit as a failure. Logs stay on the host, not in
            # state (logs=False): they could echo configuration.
            attach=True,
            must_run=False,
            logs=False,
            # While it runs it is an app like the others: same health check and SIGTERM drain.
            healthcheck=healthcheck,
            stop_signal="SIGTERM",
            stop_timeout=tuning.stop_timeout_s,
            destroy_grace_seconds=tuning.stop_timeout_s,
            cpus=f"{vps.cpus:g}",
            memory=vps.memory,
            memory_swap=vps.memory,
            read_only=True,
            tmpfs={"/tmp": "rw,noexec,nosuid,size=64m"},  # noqa: S108 - a tmpfs inside the container
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self.network.name)],
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "2"},
            labels=[*labels, docker.ContainerLabelArgs(label=GATE_ROLE_LABEL[0], value=GATE_ROLE_LABEL[1])],
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, delete_before_replace=True),
        )
        gated_image: pulumi.Output[str] = pulumi.Output.all(
            self.gate.exit_code, self.remote_image.image_id, self.gate.name
        ).apply(require_gate_passed)
        self.app = docker.Container(
            f"{name}-app",
            # No `name`: Pulumi auto-names it, so the replacement can be created while the old one runs.
            image=gated_image,
            user=IMAGE_USER,
            envs=envs,
            restart="unless-stopped",
            cpus=f"{vps.cpus:g}",
            memory=vps.memory,
            memory_swap=vps.memory,  # no swap: a leaking worker is OOM-killed and restarted, not thrashed
            read_only=True,
            tmpfs={"/tmp": "rw,noexec,nosuid,size=64m"},  # noqa: S108 - a tmpfs inside the container
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=[APP_ALIAS])
            ],
            healthcheck=healthcheck,
            # Gate the deploy on readiness: the create fails (and the old container stays) unless the new
            # one turns healthy within start period + 3 more intervals than the retries need.
            wait=True,
            wait_timeout=start + interval * (retries + 3),
            stop_signal="SIGTERM",
            stop_timeout=tuning.stop_timeout_s,
            destroy_grace_seconds=tuning.stop_timeout_s,
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "5"},  # unrotated logs fill a small VPS disk
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, delete_before_replace=False),
        )

        # --- the optional DNS record domain -> host (vps/domain.py; Caddy does the certificate) ---------
        self.custom_domain = None
        if vps.zone and vps.zone_provider:
            self.custom_domain = VpsDomain(
                f"{name}-domain",
                VpsDomainArgs(
                    domain=domain,
                    zone=vps.zone,
                    provider=vps.zone_provider,
                    host=vps.host,
                    record_type=vps.dns_record_type,
                    project=str(gcp_project) if gcp_project else None,
                ),
                opts=self.child_opts(),
            )

        # --- the proxy ------------------------------------------------------------------------------
        caddy_image = docker.RemoteImage(
            f"{name}-caddy-image", name=CADDY_IMAGE, keep_locally=True, opts=on_host
        )
        caddy_data = docker.Volume(f"{name}-caddy-data", opts=on_host)  # certificates survive a replace
        caddy_config = docker.Volume(f"{name}-caddy-config", opts=on_host)
        caddyfile = render_caddyfile(
            domain,
            inp.port,
            tuning.lb_idle_timeout_s or 60,
            vps.acme_email,
            max_body_bytes=tuning.max_request_body_bytes,
        )
        self.proxy = docker.Container(
            f"{name}-caddy",
            image=caddy_image.image_id,
            restart="unless-stopped",
            ports=[
                docker.ContainerPortArgs(internal=80, external=80),
                docker.ContainerPortArgs(internal=443, external=443),
                docker.ContainerPortArgs(internal=443, external=443, protocol="udp"),  # HTTP/3
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self.network.name)],
            uploads=[docker.ContainerUploadArgs(file="/etc/caddy/Caddyfile", content=caddyfile)],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=caddy_data.name, container_path="/data"),
                docker.ContainerVolumeArgs(volume_name=caddy_config.name, container_path="/config"),
            ],
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "5"},
            labels=labels,
            # Host ports 80/443 cannot be bound twice: a Caddy change (rare: new domain or Caddy version)
            # replaces it delete-first, a few seconds of downtime. App redeploys never touch it.
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, delete_before_replace=True),
        )

        self.outputs = self.finish(
            {
                "target": "vps",
                "url": f"https://{domain}",
                "image": inp.image,
                "health_path": inp.health.liveness_path,
                "ready_path": inp.health.readiness_path,
                "host": vps.host,
                "container_name": self.app.name,
                "domain": domain,
            }
        )

    def _registry_auth(
        self, inp: VpsInputs, gcp_project: Any, invoke: pulumi.InvokeOptions
    ) -> list[docker.ProviderRegistryAuthArgs] | None:
        reg = inp.settings.registry
        if reg is not None:
            password = (
                read_secret(SecretRef.parse(reg.password_secret), gcp_project=gcp_project, opts=invoke)
                if reg.password_secret
                else None
            )
            return [
                docker.ProviderRegistryAuthArgs(address=reg.server, username=reg.username, password=password)
            ]
        # The registry host is known when the image is a plain reference; an Output image was built here
        # and pushed to ``repository_url`` (ECR).
        host = _registry_host(inp.image) if isinstance(inp.image, str) else None
        built_here = host is None and inp.repository_url is not None
        if built_here or (host and ".dkr.ecr." in host):
            import pulumi_aws as aws

            # ECR: a 12-hour token from the deployer's AWS credentials; nothing long-lived on the host.
            # Tokens are per registry and region: ask for the ones in the image's host name.
            m = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?", host or "")
            token = aws.ecr.get_authorization_token_output(
                registry_id=m.group(1) if m else None, region=m.group(2) if m else None, opts=invoke
            )
            address: pulumi.Input[str] = host or (
                pulumi.Output.from_input(inp.repository_url).apply(_registry_host)
                if inp.repository_url is not None
                else token.proxy_endpoint.apply(lambda e: e.removeprefix("https://"))
            )
            return [
                docker.ProviderRegistryAuthArgs(
                    address=address, username=token.user_name, password=pulumi.Output.secret(token.password)
                )
            ]
        if host and host.endswith("-docker.pkg.dev"):
            import pulumi_gcp as gcp

            access = gcp.organizations.get_client_config_output(opts=invoke).access_token
            return [
                docker.ProviderRegistryAuthArgs(
                    address=host, username="oauth2accesstoken", password=pulumi.Output.secret(access)
                )
            ]
        return None  # a public registry
