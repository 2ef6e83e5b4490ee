"""The VPS target under Pulumi mocks: Docker over SSH, Caddy in front, secrets as Pulumi secrets, and the
parts of the zero-downtime redeploy that a mock run can prove (see docs/targets.md for the rest).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from fastapi_deploy import config as config_mod
from fastapi_deploy import mocks as mocks_mod
from fastapi_deploy.config import ConfigError, VpsConfig
from fastapi_deploy.mocks import ProgramResult, RecordingMocks, mask_secrets, run_program, unwrap
from fastapi_deploy.tuning import TuningError
from fastapi_deploy.vps import component as vps
from tests.infra.conftest import edited_config

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "stacks" / "Pulumi.prod-vps.yaml"
COMPONENT = "items-api-prod-vps"
RECOGNISABLE = "s3cr3t-VALUE-must-not-leak-91ab"
CONTAINER = "docker:index/container:Container"
OTHER_DIGEST = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/items-api@sha256:" + "e" * 64


class Mocks(RecordingMocks):
    """Core mocks; secret stores answer a recognisable value; docker resources get engine-style names."""

    gate_exit_code = 0

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        a = dict(args.args or {})
        if args.token == "aws:ssm/getParameter:getParameter":
            self.calls.append((args.token, a))
            return {
                "name": a["name"],
                "value": f"{RECOGNISABLE}{a['name']}",
                "type": "SecureString",
                "id": a["name"],
            }
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            self.calls.append((args.token, a))
            return {
                "secretId": a["secretId"],
                "secretString": json.dumps({"url": f"{RECOGNISABLE}-db"}),
                "id": "x",
            }
        if args.token == "gcp:secretmanager/getSecretVersionAccess:getSecretVersionAccess":
            self.calls.append((args.token, a))
            return {"secret": a["secret"], "secretData": f"{RECOGNISABLE}-gcp", "version": "1", "id": "x"}
        res = super().call(args)
        return res if isinstance(res, dict) else res[0]

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, out = super().new_resource(args)
        digest = hashlib.sha256(json.dumps(unwrap(dict(args.inputs)), sort_keys=True, default=str).encode())
        if args.typ.startswith("docker:index/") and not args.inputs.get("name"):
            out["name"] = f"{args.name}-{digest.hexdigest()[:7]}"  # the engine's auto-name
        if args.typ == "docker:index/remoteImage:RemoteImage":
            out["imageId"] = "sha256:" + digest.hexdigest()  # the image id follows what was pulled
        if args.typ == CONTAINER and args.inputs.get("attach"):
            out["exitCode"] = self.gate_exit_code  # what the release gate script exited with
        return rid, out


def raw_config(**app_changes: Any) -> dict[str, Any]:
    return edited_config(STACK, **app_changes)


def run(raw: dict[str, Any] | None = None, **app_changes: Any) -> ProgramResult:
    raw = raw or raw_config(**app_changes)
    return run_program("prod-vps", raw, mocks=Mocks(region=str(raw.get("aws:region") or "us-east-1")))


@pytest.fixture(scope="module")
def prod() -> ProgramResult:
    return run()


def containers(result: ProgramResult) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix(f"{COMPONENT}-"): r.inputs for r in result.by_type(CONTAINER)}


def provider_input(result: ProgramResult, key: str) -> Any:
    """A docker provider input, unwrapped (the engine passes provider config as JSON strings)."""
    (provider,) = [r for r in result.resources if r.type == "pulumi:providers:docker"]
    value = unwrap(provider.inputs[key])
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def app_env(result: ProgramResult) -> dict[str, str]:
    return dict(e.split("=", 1) for e in unwrap(containers(result)["app"]["envs"]))


# ---------------------------------------------------------------------------------- provider + image
def test_provider_talks_to_the_host_over_ssh_with_registry_auth(prod: ProgramResult) -> None:
    (provider,) = [r for r in prod.resources if r.type == "pulumi:providers:docker"]
    assert provider.inputs["host"] == "ssh://deploy@203.0.113.10:22"
    assert "BatchMode=yes" in provider_input(prod, "sshOpts")  # never hang on a prompt in CI
    assert mocks_mod.is_secret(provider.inputs["registryAuth"])
    (entry,) = provider_input(prod, "registryAuth")
    assert entry["address"] == "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
    assert entry["username"] == "AWS"
    token_call = next(a for t, a in prod.calls if t.endswith("getAuthorizationToken"))
    assert (token_call["registryId"], token_call["region"]) == ("123456789012", "eu-central-1")
    assert "mock-ecr-password" not in json.dumps(mask_secrets(provider.inputs), default=str)
    # Every container runs on that host, not on the machine running `pulumi up`.
    for r in prod.by_type(CONTAINER):
        assert r.provider
        assert r.provider.startswith(provider.urn)


def test_image_pulled_by_digest_and_kept(prod: ProgramResult) -> None:
    (image,) = [
        r for r in prod.by_type("docker:index/remoteImage:RemoteImage") if r.name == f"{COMPONENT}-image"
    ]
    assert image.inputs["name"] == prod.outputs["image"]
    assert "@sha256:" in image.inputs["name"]
    assert image.inputs["keepLocally"] is True
    assert containers(prod)["app"]["image"] == image.outputs["imageId"]


# ------------------------------------------------------------------------------------- app container
def test_app_container_is_private_limited_and_hardened(prod: ProgramResult) -> None:
    app = containers(prod)["app"]
    assert "ports" not in app or not app["ports"], "the app must only be reachable through Caddy"
    (net,) = app["networksAdvanced"]
    assert net["aliases"] == [vps.APP_ALIAS]
    assert net["name"] == prod.one("docker:index/network:Network").outputs["name"]
    assert app["restart"] == "unless-stopped"
    assert app["cpus"] == "2"
    assert app["memory"] == 2048
    assert app["memorySwap"] == 2048
    assert app["user"] == vps.IMAGE_USER
    assert f"USER {vps.IMAGE_USER}" in (ROOT / "Dockerfile").read_text()
    assert app["readOnly"] is True
    assert app["capabilities"] == {"drops": ["ALL"]}
    assert app["securityOpts"] == ["no-new-privileges:true"]
    assert app["logOpts"] == {"max-size": "10m", "max-file": "5"}


def test_workers_come_from_the_hosts_cpus(prod: ProgramResult) -> None:
    env = app_env(prod)
    assert env["WEB_CONCURRENCY"] == "2"  # app.vps.cpus: 2 -> two async workers, not 2x2+1
    assert env["APP_ENV"] == "production"
    assert env["PORT"] == "8000"


def test_health_check_on_readiness_gates_the_deploy(prod: ProgramResult) -> None:
    app = containers(prod)["app"]
    hc = app["healthcheck"]
    assert hc["tests"][:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/ready" in hc["tests"][3]
    assert app["wait"] is True
    start = int(hc["startPeriod"].removesuffix("s"))
    interval = int(hc["interval"].removesuffix("s"))
    assert app["waitTimeout"] >= start + interval * hc["retries"]


def test_health_check_command_fails_when_not_ready(tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = vps.healthcheck_command(9, "/ready", 1)  # port 9 (discard) refuses connections
    code = subprocess.run([sys.executable, "-c", cmd[3]], timeout=20, check=False).returncode
    assert code == 1


def test_stop_timeout_outlasts_the_graceful_drain(prod: ProgramResult) -> None:
    app = containers(prod)["app"]
    graceful = int(app_env(prod)["GUNICORN_GRACEFUL_TIMEOUT"])
    assert app["stopSignal"] == "SIGTERM"
    assert app["stopTimeout"] > graceful
    assert app["destroyGraceSeconds"] == app["stopTimeout"]


# -------------------------------------------------------------------------------------------- secrets
def test_secrets_read_at_deploy_time_stay_pulumi_secrets(prod: ProgramResult) -> None:
    reads = {(t.split("/")[-1].split(":")[0], a.get("name") or a.get("secretId")) for t, a in prod.calls}
    assert ("getParameter", "/prod/items-api-vps/redis-url") in reads
    assert ("getParameter", "/prod/items-api-vps/jwt-secret-key") in reads
    assert ("getSecretVersion", "prod/items-api-vps/db") in reads
    assert all(a.get("withDecryption") for t, a in prod.calls if t.endswith("getParameter"))
    app = next(r for r in prod.by_type(CONTAINER) if r.name == f"{COMPONENT}-app")
    assert mocks_mod.is_secret(app.inputs["envs"])
    env = app_env(prod)
    assert env["DATABASE_URL"] == f"{RECOGNISABLE}-db"  # the JSON key was extracted
    assert env["REDIS_URL"] == f"{RECOGNISABLE}/prod/items-api-vps/redis-url"
    # ... and nowhere in plain sight: not in any input outside a secret, not in the outputs.
    visible = json.dumps([mask_secrets(r.inputs) for r in prod.resources], default=str)
    assert RECOGNISABLE not in visible
    assert RECOGNISABLE in json.dumps([unwrap(r.inputs) for r in prod.resources], default=str)
    assert RECOGNISABLE not in json.dumps(prod.outputs, default=str)


def test_gcp_secret_and_registry_password_references() -> None:
    result = run(
        secrets={
            "DATABASE_URL": "gcp:projects/items-vault/secrets/db-url/versions/4",
            "REDIS_URL": "ssm:/prod/items-api-vps/redis-url",
            "JWT_SECRET_KEY": "ssm:/prod/items-api-vps/jwt-secret-key",
        },
        vps={
            "registry": {
                "server": "ghcr.io",
                "username": "deploy-bot",
                "password_secret": "ssm:/prod/ghcr-token",
            }
        },
        image={"digest": "ghcr.io/acme/items-api@sha256:" + "c" * 64},
    )
    call = next(a for t, a in result.calls if t.endswith("getSecretVersionAccess"))
    assert (call["secret"], call["project"], call["version"]) == ("db-url", "items-vault", "4")
    assert app_env(result)["DATABASE_URL"] == f"{RECOGNISABLE}-gcp"
    (provider,) = [r for r in result.resources if r.type == "pulumi:providers:docker"]
    (entry,) = provider_input(result, "registryAuth")
    assert (entry["address"], entry["username"]) == ("ghcr.io", "deploy-bot")
    assert entry["password"] == f"{RECOGNISABLE}/prod/ghcr-token"
    assert RECOGNISABLE not in json.dumps(mask_secrets(provider.inputs), default=str)


def test_ssh_key_from_a_secret_is_written_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run(vps={"ssh_key_secret": "ssm:/prod/vps-deploy-key"})
    opts = provider_input(result, "sshOpts")
    key_path = opts[opts.index("-i") + 1]
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(key_path).parent).st_mode) == 0o700
    assert Path(key_path).read_text().startswith(RECOGNISABLE)


def test_ssh_key_file_outlives_the_program_and_its_path_is_stable(tmp_path: Path) -> None:
    """Pulumi deletes the replaced app container (every release) only after the program has exited, and
    `pulumi destroy`/`refresh` reuse the provider's stored ssh_opts without running it: a key file removed
    at exit makes ssh fail there (old container left serving under the `app` alias). A path that changes
    every run also diffs the provider on every preview."""
    code = "import sys; from fastapi_deploy.vps import component as vps; print(vps._write_key(sys.argv[1]))"
    env = {**os.environ, "HOME": str(tmp_path)}

    def write(material: str) -> Path:
        out = subprocess.run(
            [sys.executable, "-c", code, material],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return Path(out.stdout.strip())

    first = write("-----KEY A-----")
    assert first.read_text() == "-----KEY A-----\n"  # still there after that process exited
    assert write("-----KEY A-----") == first  # same key, same ssh_opts: no provider diff
    assert write("-----KEY B-----") != first  # a rotated key is a visible provider change


# ------------------------------------------------------------------------------------------ caddy
def test_caddy_terminates_tls_and_is_the_only_public_container(prod: ProgramResult) -> None:
    caddy = containers(prod)["caddy"]
    assert {(p["internal"], p["external"], p.get("protocol", "tcp")) for p in caddy["ports"]} == {
        (80, 80, "tcp"),
        (443, 443, "tcp"),
        (443, 443, "udp"),
    }
    (upload,) = caddy["uploads"]
    assert upload["file"] == "/etc/caddy/Caddyfile"
    text = upload["content"]
    assert "api.example.net {" in text
    assert "email ops@example.net" in text
    assert f"name {vps.APP_ALIAS}" in text
    assert "port 8000" in text
    assert {v["containerPath"] for v in caddy["volumes"]} == {"/data", "/config"}  # certificates persist


def _caddy() -> str:
    found = shutil.which("caddy")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("caddy is not installed (.ci/run installs the Debian package)")
        pytest.skip("caddy is not installed (apt-get install caddy)")
    return found


def test_caddyfile_is_accepted_by_caddy_and_answers_metrics_itself(
    prod: ProgramResult, tmp_path: Path
) -> None:
    # The real Caddy (Debian's 2.6) parses and provisions the generated file: syntax, directive names,
    # the dynamic upstream module and the TLS automation. Offline; nothing listens.
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(containers(prod)["caddy"]["uploads"][0]["content"])
    out = subprocess.run(
        [_caddy(), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile", "--validate"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads(out.stdout.splitlines()[0])
    assert config["admin"] == {"disabled": True}
    (site,) = config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert site["match"] == [{"host": [prod.outputs["url"].removeprefix("https://").rstrip("/")]}]
    routes = site["handle"][0]["routes"]
    handlers = [route["handle"][0]["handler"] for route in routes]
    # /metrics gets Caddy's own 404 BEFORE anything is proxied to the app.
    blocked = handlers.index("static_response")
    assert routes[blocked]["match"] == [{"path": ["/metrics", "/metrics/*"]}]
    assert routes[blocked]["handle"][0]["status_code"] == 404
    proxy = handlers.index("reverse_proxy")
    assert blocked < proxy
    assert routes[proxy]["handle"][0]["dynamic_upstreams"]["name"] == "app"
    # Bodies over the app's own limit are refused (413) by Caddy before anything is proxied: the same
    # number the app gets as MAX_REQUEST_BODY_BYTES.
    limit = handlers.index("request_body")
    assert limit < proxy
    assert routes[limit]["handle"][0]["max_size"] == int(app_env(prod)["MAX_REQUEST_BODY_BYTES"])


def test_the_stack_body_limit_is_enforced_by_caddy_and_the_app_alike() -> None:
    result = run(max_request_body_bytes=2_000_000)
    assert "\t\tmax_size 2000000\n" in containers(result)["caddy"]["uploads"][0]["content"]
    assert app_env(result)["MAX_REQUEST_BODY_BYTES"] == "2000000"


def test_proxy_keepalive_is_below_the_servers(prod: ProgramResult) -> None:
    text = containers(prod)["caddy"]["uploads"][0]["content"]
    keepalive = int(text.split("keepalive ")[1].split("s")[0])
    assert keepalive < int(app_env(prod)["GUNICORN_KEEPALIVE"])


# ------------------------------------------------------------------------------ zero-downtime redeploy
def test_redeploy_changes_only_the_app_container() -> None:
    """A new digest must not touch Caddy, the network or the volumes (so TLS and routing stay up)."""
    before = run()
    after = run(image={"digest": OTHER_DIGEST})
    a, b = ({r.name: r.inputs for r in res.resources if r.custom} for res in (before, after))
    assert a.keys() == b.keys()
    changed = {
        n for n in a if json.dumps(unwrap(a[n]), sort_keys=True) != json.dumps(unwrap(b[n]), sort_keys=True)
    }
    assert changed == {f"{COMPONENT}-image", f"{COMPONENT}-gate", f"{COMPONENT}-app"}


def test_new_container_is_created_before_the_old_one_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, tuple[bool, bool]] = {}
    original = mocks_mod._RecordingMonitor.RegisterResource

    def spy(self: Any, request: Any) -> Any:
        seen[request.name] = (request.deleteBeforeReplace, request.deleteBeforeReplaceDefined)
        return original(self, request)

    monkeypatch.setattr(mocks_mod._RecordingMonitor, "RegisterResource", spy)
    result = run()
    app = containers(result)["app"]
    # Explicitly create-before-delete (the option is sent as "defined", overriding any provider default) ...
    assert seen[f"{COMPONENT}-app"] == (False, True)
    # ... which only works because the container has no fixed name (the engine auto-names it) and
    # publishes no host port: two generations can run side by side.
    assert "name" not in app
    assert not app.get("ports")
    # Caddy binds 80/443, so it cannot overlap with itself: delete-first (only on Caddy changes).
    assert seen[f"{COMPONENT}-caddy"] == (True, True)
    # Caddy routes to the alias, never to a container name, so both generations get traffic.
    text = containers(result)["caddy"]["uploads"][0]["content"]
    assert "dynamic a" in text
    assert result.outputs["container_name"] not in text
    assert "lb_try_duration" in text


def test_release_gate_runs_the_new_release_off_the_traffic_path(prod: ProgramResult) -> None:
    gate, app = containers(prod)["gate"], containers(prod)["app"]
    assert gate["image"] == app["image"]
    assert unwrap(gate["envs"]) == unwrap(app["envs"])
    assert mocks_mod.is_secret(gate["envs"])
    (net,) = gate["networksAdvanced"]
    assert not net.get("aliases"), "the gate must never be a Caddy upstream"
    assert not gate.get("ports")
    assert (gate["attach"], gate["mustRun"], gate["logs"]) == (True, False, False)
    assert gate["command"][:2] == ["sh", "-c"]
    assert "http://127.0.0.1:8000/ready" in gate["command"][2]
    # The gate starts exactly the image's server command.
    cmd_line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    assert json.loads(cmd_line.removeprefix("CMD ")) == vps.SERVER_COMMAND


def _quiet_gate_failures() -> None:
    # Every Output that waited on the failed gate holds the same exception; asyncio reports each one as
    # "never retrieved" when it is collected. Drop exactly those reports, pass everything else on.
    import asyncio

    from fastapi_deploy.mocks import ensure_event_loop

    loop = ensure_event_loop()
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "release gate failed" in str(context.get("exception", "")):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


def test_failed_release_gate_never_touches_the_running_container() -> None:
    mocks = Mocks(region="eu-central-1")
    mocks.gate_exit_code = 1
    _quiet_gate_failures()
    with pytest.raises(Exception, match="release gate failed"):
        run_program("prod-vps", raw_config(), mocks=mocks)
    names = {r.name for r in mocks.monitor.recorded}  # type: ignore[attr-defined]
    assert f"{COMPONENT}-gate" in names
    assert (
        f"{COMPONENT}-app" not in names
    )  # no new app container, so the old one is neither replaced nor joined


def _stub_server(tmp_path: Path, status: int, exit_immediately: bool = False) -> list[str]:
    script = tmp_path / "stub.py"
    script.write_text(
        "import http.server, sys\n"
        + ("sys.exit(3)\n" if exit_immediately else "")
        + "class H(http.server.BaseHTTPRequestHandler):\n"
        f"    def do_GET(self): self.send_response({status}); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    return [sys.executable, str(script)]


@pytest.mark.parametrize(
    ("status", "dies", "expected"),
    [(200, False, 0), (503, False, 1), (200, True, 1)],
    ids=["ready", "not-ready", "dies"],
)
def test_release_gate_script(tmp_path: Path, status: int, dies: bool, expected: int) -> None:
    """Run the real gate script against a loopback stub server (bounded: 2 polls x 2 s)."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = [*_stub_server(tmp_path, status, dies), str(port)]
    script = vps.gate_script(port, "/ready", 1, attempts=3, server=server)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True, check=False
    )
    assert proc.returncode == expected, proc.stderr


def test_caddyfile_is_stable_text() -> None:
    text = vps.render_caddyfile("api.example.net", 8000, 60, None)
    assert "email" not in text
    assert "\t\tmax_size 1048576\n" in text  # the default body limit, 1 MiB
    assert text.count("{") == text.count("}")
    assert "admin off" in text


# -------------------------------------------------------------------------------- graph and outputs
def test_outputs_follow_the_contract(prod: ProgramResult) -> None:
    out = prod.outputs
    app = next(r for r in prod.by_type(CONTAINER) if r.name == f"{COMPONENT}-app")
    assert out["target"] == "vps"
    assert out["url"] == "https://api.example.net"
    assert out["host"] == "203.0.113.10"
    assert out["domain"] == "api.example.net"
    assert out["container_name"] == app.outputs["name"]
    assert out["container_name"].startswith(f"{COMPONENT}-app-")
    assert (out["health_path"], out["ready_path"]) == ("/health", "/ready")
    assert not prod.secret_outputs


def test_children_carry_the_component_name(prod: ProgramResult) -> None:
    comp = prod.one(vps.COMPONENT_TYPE)
    children = [r for r in prod.resources if r.parent == comp.urn]
    assert len(children) == 9
    for r in children:
        assert r.name.startswith(f"{COMPONENT}-"), r.name


def test_component_outputs_resolve_under_runtime_test() -> None:
    cfg = config_mod.load_stack_file(STACK)
    assert isinstance(cfg, VpsConfig)
    pulumi.runtime.set_mocks(
        Mocks(region="eu-central-1"), project="fastapi-deploy", stack="unit", preview=False
    )

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        assert cfg.domain
        args: vps.VpsServiceArgs = {
            "image": pulumi.Output.from_input(OTHER_DIGEST),
            "host": cfg.vps.host,
            "domain": cfg.domain,
            "database": {"max_connections": cfg.database.max_connections},
        }
        svc = vps.VpsService("unit", args)

        def verify(values: list[Any]) -> None:
            url, name, envs_secret = values
            assert url == "https://api.example.net"
            assert name.startswith("unit-app-")
            assert envs_secret is True

        return pulumi.Output.all(
            svc.url, svc.container_name, pulumi.Output.from_input(svc.app.envs).is_secret()
        ).apply(verify)

    check()


# ---------------------------------------------------------------------------------------- bad config
BAD = [
    ({"scaling": {"min": 1, "max": 2}}, ConfigError, "app.scaling"),
    ({"domain": None}, ConfigError, "app.domain"),
    ({"vps": {"host": "bad host!"}}, ConfigError, "app.vps.host"),
    ({"vps": {"ssh_port": 0}}, ConfigError, "app.vps.ssh_port"),
    ({"vps": {"memory": "256Mi"}}, TuningError, "app.vps.memory"),
    ({"vps": {"ssh_key_secret": "file:/home/me/.ssh/id"}}, ConfigError, "app.vps.ssh_key_secret"),
    (
        {"vps": {"registry": {"server": "ghcr.io", "username": "u", "password_secret": "plain"}}},
        ConfigError,
        "password_secret",
    ),
    ({"tuning": {"workers": 20}}, TuningError, "app.tuning.workers"),
    ({"image": {"digest": "items-api:latest"}}, ConfigError, "app.image.digest"),
]


@pytest.mark.parametrize(("changes", "error", "field"), BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_invalid_config_names_the_field_and_registers_nothing(
    changes: dict[str, Any], error: type[Exception], field: str
) -> None:
    mocks = Mocks()
    with pytest.raises(error) as exc:
        run_program("prod-vps", raw_config(**changes), mocks=mocks)
    assert field in str(exc.value)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]
    assert not [t for t, _ in mocks.calls if "Secret" in t or "Parameter" in t], (
        "no secret read for a bad config"
    )


def test_container_migrates_on_start(prod: ProgramResult) -> None:
    assert app_env(prod)["MIGRATE_ON_START"] == "true"
