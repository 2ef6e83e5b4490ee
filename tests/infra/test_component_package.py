"""The components as a Pulumi source-based component package (``provider/``), for any Pulumi language.

What a TypeScript, Go or YAML program gets from ``pulumi package add provider`` is decided by the schema the
hosted provider serves, which the SDK's analyzer infers from the components' typed Args. So:

- ``PulumiPlugin.yaml`` is what the CLI reads to launch the plugin (runtime python, pip into ``venv``);
- the analyzer accepts each component in-process (a clear failure naming the component);
- the hosted provider, started exactly as the CLI's Python language host starts it (``python provider/
  <engine address>`` from the consumer's directory; it prints its port), answers ``GetSchema`` over gRPC,
  and every component ``fastapi-deploy:index:<Class>`` has every Args field (camelCase) with its type,
  required/optional, plain-ness where a consumer would notice it, and the declared outputs;
- ``Construct``, the path a hosted component is created on, runs under the recording mocks: inputs in the
  engine's shape (camelCase, numbers as floats) become the component's Args and its resources.
"""

from __future__ import annotations

import json
import queue
import runpy
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.util import camel_case
from pulumi.runtime.proto import engine_pb2_grpc, provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "provider"
PKG = "fastapi-deploy"
START_TIMEOUT_S = 120
RPC_TIMEOUT_S = 30


def _provider_main() -> dict[str, Any]:
    """provider/__main__.py's globals, without hosting (its host call is under ``__main__``)."""
    return runpy.run_path(str(PROVIDER / "__main__.py"), run_name="fastapi_deploy_provider")


# --------------------------------------------------------------------------------- the plugin manifest
def test_plugin_manifest_is_python_with_pip_into_its_own_venv() -> None:
    manifest = yaml.safe_load((PROVIDER / "PulumiPlugin.yaml").read_text())
    runtime = manifest["runtime"]
    assert runtime["name"] == "python"
    # toolchain auto would find the repository's uv.lock upward and sync the whole dev environment.
    assert runtime["options"] == {"toolchain": "pip", "virtualenv": "venv"}
    # The CLI runs `python provider/ ...`: the directory's __main__.py is the entry point.
    assert (PROVIDER / "__main__.py").is_file()
    reqs = [
        line.strip()
        for line in (PROVIDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # This repository's distribution with every cloud, editable from the repository root.
    assert "-e ..[all]" in reqs
    assert (PROVIDER / ".." / "pyproject.toml").resolve() == ROOT / "pyproject.toml"


# ------------------------------------------------------------------------------ the hosted provider
class _FakeEngine(engine_pb2_grpc.EngineServicer):
    """The engine endpoint a provider is given; records log messages."""

    def __init__(self) -> None:
        self.logs: list[tuple[int, str]] = []

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.logs.append((request.severity, request.message))
        return empty_pb2.Empty()


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The first stdout line of the provider (its port), or a failure with its stderr."""
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = b""
    if not line.strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"provider did not print its port (got {line!r}); stderr:\n{err.decode(errors='replace')}")
    return int(line)


class Hosted:
    """A running hosted provider: its schema, plugin info and the fake engine's log."""

    def __init__(self, schema: dict[str, Any], version: str, engine: _FakeEngine) -> None:
        self.schema = schema
        self.version = version
        self.engine = engine


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    engine = _FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
    engine_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The consumer's directory (the language host runs plugins there): nothing of this repository in it.
    cwd = tmp_path_factory.mktemp("consumer")
    proc = subprocess.Popen(
        [sys.executable, str(PROVIDER), f"127.0.0.1:{engine_port}"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = _read_port(proc, START_TIMEOUT_S)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
            resp = stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=RPC_TIMEOUT_S)
        yield Hosted(json.loads(resp.schema), info.version, engine)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        server.stop(grace=None)


def test_hosted_provider_serves_the_package_schema(hosted: Hosted) -> None:
    schema = hosted.schema
    assert schema["name"] == PKG
    # The schema (and every generated SDK) carries the distribution's version.
    from importlib.metadata import version

    assert schema["version"] == version("fastapi-deploy") == hosted.version
    assert sorted(schema["resources"]) == sorted(f"{PKG}:index:{c}" for c in EXPECTED)
    for token, res in schema["resources"].items():
        assert res["isComponent"] is True, token
        assert res.get("description"), f"{token}: the class docstring becomes the SDK's doc comment"
    # GetSchema needs nothing from the engine; the provider logged no error.
    assert not [m for sev, m in hosted.engine.logs if sev >= 3]
