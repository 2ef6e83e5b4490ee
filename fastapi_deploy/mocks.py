"""Run the real Pulumi program (``infra/__main__.py``) under Pulumi mocks and record what it registers.

Used by the tests and by ``infra plan``. Nothing here talks to a cloud: provider invokes get realistic
canned answers (account, region, AZs, registry auth, GCP project), and every registered resource is
recorded with its URN, type token, name, parent URN and inputs exactly as the engine receives them
(camelCase keys, secrets wrapped).

Public names: ``RecordedResource``, ``ProgramResult``, ``RecordingMocks``, ``run_program(...)``,
``run_stack_file(...)``, ``ACCOUNT_ID``, ``SECRET_MARK``, ``unwrap(value)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from fastapi_deploy import config as config_mod
from fastapi_deploy import contract, project

PROJECT = "fastapi-deploy"
ACCOUNT_ID = "123456789012"
#: How secret values appear in recorded inputs/outputs (never the value).
SECRET_MARK = contract.SECRET_MASK

_LOCK = threading.Lock()


@dataclass
class RecordedResource:
    """One resource as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    custom: bool
    provider: str | None = None
    # URNs the engine must create first: explicit depends_on plus every resource an input Output came from.
    dependencies: tuple[str, ...] = ()
    #: The URNs this resource's ``aliases`` resolve to (as the engine would compute them from the specs).
    aliases: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The plan's JSON shape, with secrets masked."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "inputs": mask_secrets(self.inputs),
        }


@dataclass
class ProgramResult:
    """Everything one mocked run produced."""

    stack: str
    resources: list[RecordedResource]
    #: Stack outputs; secret outputs are replaced by ``SECRET_MARK``.
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def by_type(self, type_token: str) -> list[RecordedResource]:
        """Resources with this type token (``aws:ecs/service:Service``)."""
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RecordedResource:
        """Exactly one resource of this type (AssertionError otherwise)."""
        found = self.by_type(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        """The resource with this URN."""
        return next(r for r in self.resources if r.urn == urn)


def is_secret(value: Any) -> bool:
    """True for a value the engine would treat as secret."""
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """Recursively unwrap secret markers (for assertions that need the plain structure)."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def mask_secrets(value: Any) -> Any:
    """Recursively replace secret values by ``SECRET_MARK`` (for printing)."""
    if rpc.is_rpc_secret(value):
        return SECRET_MARK
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _fake_hex(*parts: str, n: int = 64) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks with realistic answers for the invokes and computed outputs the targets use: the shared ones
    (AWS account/region/VPC/IAM/ECR/secrets, Docker images, GCP project/secrets/registry) here, each target's
    own in its package (``Target.mock_invokes`` / ``Target.mock_resources``)."""

    def __init__(
        self,
        region: str = "us-east-1",
        account: str = ACCOUNT_ID,
        gcp_project: str = "acme-prod",
        gcp_region: str = "europe-west1",
    ) -> None:
        self.region = region
        self.account = account
        self.gcp_project = gcp_project
        self.gcp_region = gcp_region
        self.calls: list[tuple[str, dict[str, Any]]] = []

    # ------------------------------------------------------------------------------------- invokes
    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        tok, a = args.token, dict(args.args or {})
        self.calls.append((tok, a))
        region = a.get("region") or self.region
        acct = self.account
        answers: dict[str, Any] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": acct,
                "arn": f"arn:aws:sts::{acct}:assumed-role/deployer/session",
                "userId": "AROAEXAMPLEID:session",
                "id": acct,
            },
            "aws:index/getRegion:getRegion": {
                "name": region,
                "region": region,
                "id": region,
                "endpoint": f"ec2.{region}.amazonaws.com",
                "description": region,
            },
            "aws:index/getPartition:getPartition": {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            },
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "names": [f"{region}a", f"{region}b", f"{region}c"],
                "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
                "groupNames": [region],
                "id": region,
                "state": "available",
            },
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "authorizationToken": "QVdTOm1vY2stdG9rZW4=",
                "expiresAt": "2030-01-01T00:00:00Z",
                "password": "mock-ecr-password",
                "proxyEndpoint": f"https://{acct}.dkr.ecr.{region}.amazonaws.com",
                "userName": "AWS",
                "id": region,
            },
            "aws:ec2/getVpc:getVpc": {
                "id": a.get("id") or "vpc-0a1b2c3d4e5f60718",
                "cidrBlock": "10.20.0.0/16",
                "arn": f"arn:aws:ec2:{region}:{acct}:vpc/{a.get('id') or 'vpc-0a1b2c3d4e5f60718'}",
            },
            "aws:ec2/getSubnets:getSubnets": {
                "ids": ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]
            },
            "aws:ec2/getSubnet:getSubnet": {
                "id": a.get("id") or "subnet-0a1b2c3d4e5f60011",
                "availabilityZone": f"{region}a",
                "cidrBlock": "10.20.1.0/24",
                "vpcId": "vpc-0a1b2c3d4e5f60718",
            },
            "aws:ssm/getParameter:getParameter": {
                "name": a.get("name", "/mock"),
                "value": "mock-parameter-value",
                "insecureValue": "mock-parameter-value",
                "type": "SecureString",
                "arn": f"arn:aws:ssm:{region}:{acct}:parameter{a.get('name', '/mock')}",
                "version": 1,
                "id": a.get("name", "/mock"),
            },
            "aws:secretsmanager/getSecretVersion:getSecretVersion": {
                "secretId": a.get("secretId", "mock"),
                "secretString": json.dumps({"url": "postgresql+asyncpg://mock", "value": "mock"}),
                "arn": f"arn:aws:secretsmanager:{region}:{acct}:secret:{a.get('secretId', 'mock')}-AbCdEf",
                "versionId": "00000000-0000-0000-0000-000000000000",
                "versionStages": ["AWSCURRENT"],
                "id": a.get("secretId", "mock"),
            },
            "aws:acm/getCertificate:getCertificate": {
                "arn": f"arn:aws:acm:{region}:{acct}:certificate/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b",
                "domain": a.get("domain", "api.example.com"),
                "status": "ISSUED",
                "id": "cert",
            },
            "aws:route53/getZone:getZone": {
                "zoneId": "Z0123456789ABCDEFGHIJ",
                "name": a.get("name", "example.com"),
            },
            "gcp:organizations/getClientConfig:getClientConfig": {
                "project": self.gcp_project,
                "region": self.gcp_region,
                "zone": f"{self.gcp_region}-b",
                "accessToken": "mock-access-token",
                "id": "client-config",
            },
            "gcp:organizations/getProject:getProject": {
                "projectId": a.get("projectId") or self.gcp_project,
                "number": "123456789012",
                "name": a.get("projectId") or self.gcp_project,
                "id": f"projects/{a.get('projectId') or self.gcp_project}",
            },
            "gcp:secretmanager/getSecretVersion:getSecretVersion": {
                "secret": a.get("secret", "mock"),
                "secretData": "mock-secret-value",
                "version": a.get("version", "latest"),
                "name": f"projects/{self.gcp_project}/secrets/{a.get('secret', 'mock')}/versions/1",
                "id": "mock",
            },
            "gcp:secretmanager/getSecretVersionAccess:getSecretVersionAccess": {
                "secret": a.get("secret", "mock"),
                "secretData": "mock-secret-value",
                "version": a.get("version", "latest"),
                "name": f"projects/{self.gcp_project}/secrets/{a.get('secret', 'mock')}/versions/1",
                "id": "mock",
            },
            "docker:index/getRegistryImage:getRegistryImage": {
                "name": a.get("name", "mock"),
                "sha256Digest": "sha256:" + _fake_hex(str(a.get("name"))),
                "id": "mock",
            },
        }
        if tok == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps(_policy_from_invoke(a)), "id": "policy"}, []
        if tok in answers:
            return dict(answers[tok]), []
        own = _target_answers()[0].get(tok)
        if own is not None:  # the target's own invokes (Target.mock_invokes)
            return own(self, a), []
        # Unknown invokes: fail loudly so a new invoke gets a realistic answer instead of {}.
        raise NotImplementedError(f"fastapi_deploy/mocks.py: no mock answer for invoke {tok!r}; add one")

    # ----------------------------------------------------------------------------------- resources
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        region, acct = self.region, self.account
        physical = inputs.get("name") or f"{name}-{_fake_hex(typ, name, n=7)}"
        rid = f"{name}-id"
        out: dict[str, Any] = {**inputs}
        service = typ.split(":")[0]
        if service == "aws":
            mod = typ.split(":")[1].split("/")[0]
            out.setdefault("arn", f"arn:aws:{mod}:{region}:{acct}:{name}")
            out.setdefault("tagsAll", inputs.get("tags", {}))
        if typ in _NAMED_AWS:
            out["name"] = physical
        own = _target_answers()[1].get(typ)
        if own is not None:
            # The target's own resource types (fastapi_deploy/<target>/mocks.py, Target.mock_resources).
            rid = own(self, name, inputs, out, physical) or rid
        elif typ == "aws:ec2/vpc:Vpc":
            rid = "vpc-0" + _fake_hex(name, n=16)
        elif typ == "aws:ec2/subnet:Subnet":
            rid = "subnet-0" + _fake_hex(name, n=16)
            out["arn"] = f"arn:aws:ec2:{region}:{acct}:subnet/{rid}"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = "sg-0" + _fake_hex(name, n=16)
            out["arn"] = f"arn:aws:ec2:{region}:{acct}:security-group/{rid}"
        elif typ == "aws:ec2/internetGateway:InternetGateway":
            rid = "igw-0" + _fake_hex(name, n=16)
        elif typ == "aws:ec2/natGateway:NatGateway":
            rid = "nat-0" + _fake_hex(name, n=16)
        elif typ == "aws:ec2/eip:Eip":
            rid = "eipalloc-0" + _fake_hex(name, n=16)
            out["publicIp"] = "203.0.113.10"
            out["allocationId"] = rid
        elif typ == "aws:ec2/routeTable:RouteTable":
            rid = "rtb-0" + _fake_hex(name, n=16)
        elif typ == "aws:iam/role:Role":
            out["arn"] = f"arn:aws:iam::{acct}:role/{physical}"
            out["uniqueId"] = "AROA" + _fake_hex(name, n=16).upper()
        elif typ == "aws:iam/policy:Policy":
            out["arn"] = f"arn:aws:iam::{acct}:policy/{physical}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            out["arn"] = f"arn:aws:logs:{region}:{acct}:log-group:{physical}"
        elif typ == "aws:ecr/repository:Repository":
            out["repositoryUrl"] = f"{acct}.dkr.ecr.{region}.amazonaws.com/{physical}"
            out["registryId"] = acct
            out["arn"] = f"arn:aws:ecr:{region}:{acct}:repository/{physical}"
        # -- custom domains (issue 15): what ACM and Route 53 return (shared by the AWS targets' domains)
        elif typ == "aws:acm/certificate:Certificate":
            cert_id = "-".join(
                _fake_hex(name, n=32)[i:j] for i, j in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
            )
            out["arn"] = f"arn:aws:acm:{region}:{acct}:certificate/{cert_id}"
            rid = out["arn"]
            domain = str(inputs.get("domainName", "api.example.com"))
            out["domainValidationOptions"] = [
                {
                    "domainName": domain,
                    "resourceRecordName": f"_{_fake_hex(name, 'n', n=32)}.{domain}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": f"_{_fake_hex(name, 'v', n=32)}.xlfgrmvvlj.acm-validations.aws.",
                }
            ]
            out["status"] = "PENDING_VALIDATION"
        elif typ == "aws:route53/record:Record":
            out["fqdn"] = str(inputs.get("name", name)).rstrip(".")
            rid = f"{inputs.get('zoneId')}_{out['fqdn']}_{inputs.get('type')}"
        elif typ == "docker:index/image:Image":
            image_name = str(inputs.get("imageName", name))
            repo = image_name.rsplit(":", 1)[0] if ":" in image_name.split("/")[-1] else image_name
            out["repoDigest"] = f"{repo}@sha256:{_fake_hex(image_name)}"
            out["imageName"] = image_name
            out["platform"] = (inputs.get("build") or {}).get("platform", "linux/amd64")
        elif typ == "docker:index/remoteImage:RemoteImage":
            out["repoDigest"] = inputs.get("name", name)
            out["imageId"] = "sha256:" + _fake_hex(name)
        elif typ == "gcp:secretmanager/secret:Secret":
            out["name"] = f"projects/123456789012/secrets/{inputs.get('secretId', name)}"
        return rid, out


#: AWS resources whose physical name the provider reports back as ``name`` (shared by the AWS targets).
_NAMED_AWS = frozenset(
    {
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:iam/role:Role",
        "aws:ecr/repository:Repository",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:iam/policy:Policy",
    }
)


def _target_answers() -> tuple[dict[str, Any], dict[str, Any]]:
    """(invoke token -> answer, resource type -> answer) of every registered target."""
    from fastapi_deploy import registry

    invokes: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    for target in registry.all_targets():
        invokes.update(target.mock_invokes)
        resources.update(target.mock_resources)
    return invokes, resources


#: Public name for target mocks (fastapi_deploy/<target>/mocks.py): a stable fake hex id.
fake_hex = _fake_hex


def _policy_from_invoke(a: Mapping[str, Any]) -> dict[str, Any]:
    statements = []
    for s in a.get("statements") or []:
        stmt: dict[str, Any] = {"Effect": s.get("effect", "Allow")}
        if s.get("actions"):
            stmt["Action"] = s["actions"]
        if s.get("resources"):
            stmt["Resource"] = s["resources"]
        for p in s.get("principals") or []:
            stmt.setdefault("Principal", {})[p["type"]] = p["identifiers"]
        statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


class _RecordingMonitor(_mocks.MockMonitor):
    """MockMonitor that also keeps the parent URN and the raw inputs of every registration."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine would give: the parent's whole qualified type chain (the SDK's mock keeps only
        its last link), without the root stack's type - so renamed or re-parented resources show here as
        they would in `pulumi preview`, as replacements unless aliased."""
        return engine_urn(pulumi.get_stack(), pulumi.get_project(), parent, type_, name)

    def alias_urns(self, request: Any) -> tuple[str, ...]:
        """The URNs of ``request.aliases``: full URNs as sent, specs resolved the engine's way (an empty
        field means the resource's own value; no parentUrn and no noParent means its current parent)."""
        out: list[str] = []
        for alias in request.aliases:
            if alias.urn:
                out.append(alias.urn)
                continue
            spec = alias.spec
            if spec.noParent:
                parent = ""
            elif spec.parentUrn:
                parent = spec.parentUrn
            else:
                parent = request.parent
            out.append(
                engine_urn(
                    spec.stack or pulumi.get_stack(),
                    spec.project or pulumi.get_project(),
                    parent,
                    spec.type or request.type,
                    spec.name or request.name,
                )
            )
        out.extend(getattr(request, "aliasURNs", ()) or ())
        return tuple(out)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        urn = response.urn
        outputs = self.resources[urn].state if urn in self.resources else {}
        self.recorded.append(
            RecordedResource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                inputs=dict(inputs),
                outputs=dict(outputs),
                id=response.id,
                custom=bool(request.custom),
                provider=request.provider or None,
                dependencies=tuple(request.dependencies),
                aliases=self.alias_urns(request),
            )
        )
        return response


def engine_urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """``urn:pulumi:STACK::PROJECT::<parent's qualified type chain>$TYPE::NAME`` (the root stack's type is
    not part of the chain)."""
    if parent:
        qualified = parent.split("::")[2]
        if qualified != "pulumi:pulumi:Stack":
            type_ = f"{qualified}${type_}"
    return "urn:pulumi:" + "::".join([stack, project, type_, name])


def _config_for_engine(raw: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Stack-file config -> the engine's flat ``ns:key -> string`` map (objects as JSON)."""
    flat: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            flat[key] = config_mod.SECRET_PLACEHOLDER
            secret_keys.append(key)
        elif isinstance(value, str):
            flat[key] = value
        else:
            flat[key] = json.dumps(value)
    return flat, secret_keys


def ensure_event_loop() -> asyncio.AbstractEventLoop:
    """Give this thread a usable default event loop and return it.

    Pulumi's mocks and ``_sync_await`` drive the program on ``asyncio.get_event_loop()``. Anything that ran
    earlier in the process may have closed that loop or unset it (pytest-asyncio does both after every async
    test), after which Python 3.11 raises "There is no current event loop" instead of creating one.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        policy.set_event_loop(loop)
    return loop


def _drain_failed_run() -> None:
    """Leave nothing of a failed run behind for the next one.

    A program that fails stops at its first error and leaves the rest of its work on the event loop: Output
    tasks and RPCs still pending, some of which fail later. Every run drives the same loop, so the next run
    would drive them and raise this run's error. Right after a run fails, every task still pending on the
    loop (this run's: the caller is blocked in it) is cancelled and awaited, its exception retrieved.
    Not done before a run: Outputs the caller made for that run (Output.from_input) are pending tasks too.
    """
    loop = asyncio.get_event_loop()
    if loop.is_running():  # called from inside a running program: leave its loop alone
        return
    for _ in range(10):  # a cancelled task may schedule more work before it ends: drain until none is left
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    with settings.SETTINGS.lock:
        settings.SETTINGS.outputs.clear()
    settings.SETTINGS.rpc_manager.clear()


def run_program(
    stack: str,
    raw_config: Mapping[str, Any],
    *,
    mocks: RecordingMocks | None = None,
    main: Path | None = None,
    preview: bool = False,
) -> ProgramResult:
    """Run ``infra/__main__.py`` (via runpy, like the CLI) for ``stack`` with ``raw_config`` under mocks.

    ``raw_config`` is the ``config:`` mapping of a stack file. Exceptions from the program (``ConfigError``,
    ``TuningError``) propagate; ``mocks`` (pass your own) then still holds what was recorded before the error.
    """
    if mocks is None:
        mocks = RecordingMocks(
            region=str(raw_config.get("aws:region") or "us-east-1"),
            gcp_project=str(raw_config.get("gcp:project") or "acme-prod"),
            gcp_region=str(raw_config.get("gcp:region") or "europe-west1"),
        )
    flat, secret_keys = _config_for_engine(raw_config)
    with _LOCK:
        ensure_event_loop()
        monitor = _RecordingMonitor(mocks)
        mocks.monitor = monitor  # type: ignore[attr-defined]
        settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
        pulumi.runtime.set_all_config(flat, secret_keys)
        settings.SETTINGS.rpc_manager.clear()
        root = settings.get_root_resource()

        program_main = main if main is not None else project.find().main

        def program() -> None:
            # The CLI runs the program DIRECTORY (Pulumi.yaml `main: infra/`), which puts infra/ first on
            # sys.path while it runs; do exactly the same.
            runpy.run_path(
                str(program_main.parent if program_main.name == "__main__.py" else program_main),
                run_name="__main__",
            )

        try:
            _sync_await(run_pulumi_func(program))
        except BaseException:
            _drain_failed_run()
            raise
        outputs: dict[str, Any] = {}
        secret_outputs: set[str] = set()
        for key, value in dict(getattr(root, "outputs", {}) or {}).items():
            out = pulumi.Output.from_input(value)
            resolved = _sync_await(out.future())
            if _sync_await(out.is_secret()):
                secret_outputs.add(key)
                resolved = SECRET_MARK
            outputs[key] = resolved
        return ProgramResult(
            stack=stack,
            resources=list(monitor.recorded),
            outputs=outputs,
            secret_outputs=secret_outputs,
            calls=list(mocks.calls),
        )


def run_callable(
    fn: Callable[[], Any],
    *,
    stack: str = "unit",
    mocks: RecordingMocks | None = None,
    config: Mapping[str, Any] | None = None,
) -> ProgramResult:
    """Run ``fn`` as a Pulumi program under the recording monitor (for components built directly from
    their Args, without a stack file). Exceptions from ``fn`` propagate; ``mocks.monitor.recorded`` then
    holds whatever registered before the error."""
    mocks = mocks or RecordingMocks()
    flat, secret_keys = _config_for_engine(dict(config or {}))
    with _LOCK:
        ensure_event_loop()
        monitor = _RecordingMonitor(mocks)
        mocks.monitor = monitor  # type: ignore[attr-defined]
        settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(flat, secret_keys)
        settings.SETTINGS.rpc_manager.clear()
        root = settings.get_root_resource()
        try:
            _sync_await(run_pulumi_func(fn))
        except BaseException:
            _drain_failed_run()
            raise
        outputs: dict[str, Any] = {}
        for key, value in dict(getattr(root, "outputs", {}) or {}).items():
            outputs[key] = _sync_await(pulumi.Output.from_input(value).future())
        return ProgramResult(
            stack=stack, resources=list(monitor.recorded), outputs=outputs, calls=list(mocks.calls)
        )


def run_stack_file(path: str | Path, *, mocks: RecordingMocks | None = None) -> ProgramResult:
    """:func:`run_program` for ``stacks/Pulumi.<stack>.yaml``."""
    p = Path(path)
    stack = p.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    # The program of the project the stack file belongs to (its Pulumi.yaml at or above the file).
    main = project.find(p.resolve().parent).main
    return run_program(stack, config_mod.stack_file_config(p), mocks=mocks, main=main)
