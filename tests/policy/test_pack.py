"""The CrossGuard adapter: the pack the real CLI loads wraps exactly the rules the offline plan runs."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import rules

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"

PACK_DIR = Path(__file__).resolve().parents[2] / "policy"


def _policies() -> dict[str, Any]:
    module = runpy.run_path(str(PACK_DIR / "__main__.py"), run_name="policy_pack_under_test")
    return {p.name: p for p in module["build_policies"]()}


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        additional_secret_outputs=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        parent=None,
    )


def test_project_file_is_a_python_policy_pack() -> None:
    doc = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"]["name"] == "python"
    venv = PACK_DIR / doc["runtime"]["options"]["virtualenv"]
    assert (venv / "bin" / "python").exists(), "the pack's virtualenv must be the project's .venv"


def test_one_policy_per_rule_with_its_enforcement() -> None:
    policies = _policies()
    assert set(policies) == {r.name for r in rules.RULES}
    for rule in rules.RULES:
        policy = policies[rule.name]
        expected = (
            EnforcementLevel.MANDATORY if rule.enforcement == "mandatory" else EnforcementLevel.ADVISORY
        )
        assert policy.enforcement_level == expected
        assert isinstance(policy, ResourceValidationPolicy if rule.resource else StackValidationPolicy)


def test_resource_policy_reports_what_the_rule_finds() -> None:
    policy = _policies()["log-retention"]
    reported: list[tuple[str, Any]] = []
    for props, expected in (({"retentionInDays": 30}, 0), ({"name": "/ecs/api"}, 1)):
        reported.clear()
        args = ResourceValidationArgs(rules.LOG_GROUP, props, "urn:lg", "lg", _opts(), None)
        policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
        assert len(reported) == expected


def test_stack_policy_sees_the_graph_and_reports_on_the_task_definition() -> None:
    container = {
        "name": "app",
        "user": "10001",
        "environment": [
            {"name": "APP_ENV", "value": "production"},
            {"name": "GUNICORN_KEEPALIVE", "value": "30"},
        ],
    }
    graph = [
        PolicyResource(rules.LB, {"idleTimeout": 60}, "urn:alb", "alb", _opts(), None, None, [], {}),
        PolicyResource(
            rules.ECS_TASK_DEFINITION,
            {"containerDefinitions": json.dumps([container]), "cpu": "512", "memory": "1024"},
            "urn:task",
            "task",
            _opts(),
            None,
            None,
            [],
            {},
        ),
    ]
    reported: list[tuple[str, Any]] = []
    _policies()["keepalive-above-lb-idle"].validate(
        StackValidationArgs(graph), lambda message, urn=None: reported.append((message, urn))
    )
    assert [urn for _, urn in reported] == ["urn:task"]
    assert "GUNICORN_KEEPALIVE=30s" in reported[0][0]


def test_unknown_preview_values_do_not_hide_the_known_ones() -> None:
    # During `pulumi preview` the execution role ARN of a new role is unknown; the container definitions
    # are known. The root container must still be reported.
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    props = unknown_checking_proxy(
        {
            "executionRoleArn": UNKNOWN_STRING_VALUE,
            "containerDefinitions": json.dumps([{"name": "app", "user": "root", "environment": []}]),
        }
    )
    reported: list[str] = []
    args = ResourceValidationArgs(rules.ECS_TASK_DEFINITION, props, "urn:task", "task", _opts(), None)
    _policies()["containers-non-root"].validate(args, lambda message, urn=None: reported.append(message))
    assert len(reported) == 1
    assert "root" in reported[0]


def _servicer() -> Any:
    # The gRPC servicer that `PolicyPack(...)` serves to the Pulumi engine, built without the server loop.
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    return _PolicyAnalyzerServicer(
        "fastapi-deploy-production",
        "0.1.0",
        list(_policies().values()),
        EnforcementLevel.ADVISORY,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


def _struct(inputs: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    message.update(json.loads(json.dumps(inputs)))
    return message


def test_engine_protocol_reports_what_the_offline_plan_reports(tmp_path: Path) -> None:
    """Feed the engine's Analyze/AnalyzeStack requests for a recorded graph to the pack's servicer and
    compare with the offline plan's violations: the same rules, the same findings."""
    from pulumi.runtime.proto import analyzer_pb2

    from fastapi_deploy import mocks, plan

    doc = yaml.safe_load((STACKS_DIR / "Pulumi.staging-ecs.yaml").read_text())
    doc["config"]["fastapi-deploy:app"].setdefault("env", {})["PAYMENT_API_KEY"] = "plain-text-credential"
    path = tmp_path / "Pulumi.staging-ecs.yaml"
    path.write_text(yaml.safe_dump(doc))
    planned = plan.plan_stack(path)
    assert planned.error is None, planned.error
    expected = {(v["policy"], v["enforcement"]) for v in planned.violations}
    assert ("no-plaintext-secrets", "mandatory") in expected
    assert ("alb-https-only", "advisory") in expected  # staging has no certificate

    recorded = mocks.run_stack_file(path)
    servicer = _servicer()
    levels = {analyzer_pb2.MANDATORY: "mandatory", analyzer_pb2.ADVISORY: "advisory"}
    found: set[tuple[str, str]] = set()
    for r in recorded.resources:
        request = analyzer_pb2.AnalyzeRequest(
            type=r.type, properties=_struct(mocks.unwrap(r.inputs)), urn=r.urn, name=r.name
        )
        for d in servicer.Analyze(request, None).diagnostics:
            found.add((d.policyName, levels[d.enforcementLevel]))
    stack_request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=_struct(mocks.unwrap(r.inputs)),
                urn=r.urn,
                name=r.name,
                parent=r.parent or "",
            )
            for r in recorded.resources
        ]
    )
    for d in servicer.AnalyzeStack(stack_request, None).diagnostics:
        found.add((d.policyName, levels[d.enforcementLevel]))
    assert found == expected


def test_the_pack_starts_like_the_cli_starts_it_and_answers_over_grpc() -> None:
    """`pulumi-analyzer-policy-python` runs `python -m pulumi.policy ENGINE PROGRAM` in the pack directory;
    the pack prints its gRPC port. Start it that way and talk to it as the engine does."""
    import os
    import select
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    # Whatever the developer's shell exports: the engine does not promise an unbuffered interpreter, and a
    # port line stuck in a pipe buffer hangs `pulumi preview` for ever.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the pack printed no port within 60 s (stdout buffered?)"
        port = process.stdout.readline().strip() if process.stdout else ""
        assert port.isdigit(), (
            port,
            process.stderr.read() if process.poll() is not None and process.stderr else "",
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == "fastapi-deploy-production"
            assert {p.name for p in info.policies} == {r.name for r in rules.RULES}
            request = analyzer_pb2.AnalyzeRequest(
                type=rules.LOG_GROUP, properties=_struct({"name": "/ecs/api"}), urn="urn:lg", name="lg"
            )
            diagnostics = stub.Analyze(request, timeout=30).diagnostics
            assert [d.policyName for d in diagnostics] == ["log-retention"]
            assert diagnostics[0].enforcementLevel == analyzer_pb2.MANDATORY
    finally:
        process.kill()
        process.wait(timeout=10)
