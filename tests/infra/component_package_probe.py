"""Run by tests/infra/test_component_package.py in a subprocess: what the SDK's component host does with our
components, as JSON.

A subprocess because ``pulumi.provider.experimental`` imports ``pulumi.provider.server``, whose bundled
``status_pb2`` registers ``google.rpc.Status`` in protobuf's default descriptor pool; googleapis'
``google.rpc.status_pb2`` (imported by google-cloud-run, which other tests in the same pytest process use)
registers the same symbol, and whichever comes second fails to import. The plugin process itself never
imports the Google client libraries, so it is not affected.

Usage: ``python component_package_probe.py REQUEST.json RESULT.json``. The request names construct cases
(``{"cases": {id: {"component": ..., "inputs": {...camelCase...}}}}``); the result has the provider's
names, the analyzer's verdict per component and for all together, each case's outputs and recorded
resources (or its error), and how the SDK maps integer inputs.
"""

from __future__ import annotations

import json
import runpy
import sys
import traceback
import typing
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.errors import InputPropertyError
from pulumi.provider.experimental import host
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case
from pulumi.provider.server import ComponentInitError
from pulumi.runtime import rpc

from fastapi_deploy.mocks import RecordingMocks, run_callable, unwrap

PROVIDER_MAIN = Path(__file__).resolve().parents[2] / "provider" / "__main__.py"
CONFIG = {"aws:region": "eu-west-1", "gcp:project": "acme-orders", "gcp:region": "europe-west1"}


def _annotated_keys(typ: type) -> list[str]:
    keys: set[str] = set()
    for cls in reversed(typ.__mro__):
        keys |= {k for k in getattr(cls, "__annotations__", {}) if not k.startswith("_")}
    return sorted(camel_case(k) for k in keys)


def _analyze(components: list[type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in components:
        try:
            result = Analyzer("fastapi-deploy").analyze([cls])
            args_type = typing.get_type_hints(vars(cls)["__init__"])["args"]
            out[cls.__name__] = {
                "ok": True,
                "inputs": sorted(result["component_definitions"][cls.__name__].inputs),
                "annotated": _annotated_keys(args_type),
                "typeddict": typing.is_typeddict(args_type),
            }
        except Exception as exc:
            out[cls.__name__] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return out


def _construct(provider: ComponentProvider, component: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the hosted provider does on Construct: the engine's Struct (camelCase keys, numbers as floats)
    deserialized by the SDK's rpc layer, then ComponentProvider.construct, here under the recording mocks."""
    struct = struct_pb2.Struct()
    struct.update(inputs)
    engine_inputs = rpc.deserialize_properties(struct, keep_unknowns=True)
    mocks = RecordingMocks(region="eu-west-1", gcp_project="acme-orders", gcp_region="europe-west1")

    def program() -> None:
        host.is_hosting = True  # as in the plugin process (component_provider_host sets it before serving)
        try:
            result = provider.construct(
                "orders", f"fastapi-deploy:index:{component}", engine_inputs, pulumi.ResourceOptions()
            )
        finally:
            host.is_hosting = False
        pulumi.export("urn", result.urn)
        pulumi.export("state", result.state)

    try:
        res = run_callable(program, stack="dev", mocks=mocks, config=CONFIG)
    except ComponentInitError as exc:
        recorded = mocks.monitor.recorded  # type: ignore[attr-defined]
        return {"error": "ComponentInitError", "message": str(exc.inner), "recorded": len(recorded)}
    except InputPropertyError as exc:
        recorded = mocks.monitor.recorded  # type: ignore[attr-defined]
        return {
            "error": "InputPropertyError",
            "property_path": exc.property_path,
            "reason": exc.reason,
            "recorded": len(recorded),
        }
    return {
        "outputs": unwrap(res.outputs),
        "resources": [
            {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "inputs": unwrap(r.inputs)}
            for r in res.resources
        ],
    }


def _integer_mapping(provider: ComponentProvider) -> dict[str, Any]:
    definition = provider._component_defs["FargateService"]
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders@sha256:" + "ab" * 32
    mapped = provider.map_inputs(
        {"image": image, "port": 8080.0, "scaling": {"min": 1.0, "max": 2.0}}, definition
    )
    try:
        provider.map_inputs({"image": image, "port": pulumi.Output.from_input(8080)}, definition)
        output_error = None
    except TypeError as exc:
        output_error = f"TypeError: {exc}"
    return {"port": mapped["port"], "port_type": type(mapped["port"]).__name__, "output_error": output_error}


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    provider_main = runpy.run_path(str(PROVIDER_MAIN), run_name="fastapi_deploy_provider")
    components = provider_main["COMPONENTS"]
    result: dict[str, Any] = {
        "name": provider_main["NAME"],
        "components": [c.__name__ for c in components],
        "analyzer": _analyze(components),
    }
    try:
        together = Analyzer(provider_main["NAME"]).analyze(components)
        result["together"] = {
            "components": sorted(together["component_definitions"]),
            "types": sorted(together["type_definitions"]),
        }
    except Exception as exc:
        result["together"] = {"error": f"{type(exc).__name__}: {exc}"}
    provider = ComponentProvider(components, provider_main["NAME"], None, "0.0.0")
    result["integers"] = _integer_mapping(provider)
    result["cases"] = {}
    for case_id, case in request["cases"].items():
        try:
            result["cases"][case_id] = _construct(provider, case["component"], case["inputs"])
        except Exception:
            result["cases"][case_id] = {"error": "unexpected", "traceback": traceback.format_exc()}
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
