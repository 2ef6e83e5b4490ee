"""FASTAPI_TELEMETRY: FastAPI's native OpenTelemetry is on when the process has somewhere to send it.

FastAPI >= 0.165 checks the global OpenTelemetry providers on every request. The image has the API but no
SDK, so with nothing configured that check only costs time (BENCHMARKS.md §10); "auto" turns it off then,
and keeps it on when an OTEL_* variable is set or a provider is configured before the app is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.main import TELEMETRY_OFF, fastapi_telemetry
from app.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("opentelemetry.sdk")  # the deploy group brings it (pulumi); the image does not


def _settings(**overrides: str) -> object:
    return load_settings(
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/db",
        redis_url="redis://127.0.0.1:1/0",
        app_env="development",
        **overrides,
    )


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_SERVICE_NAME": "api"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
        {"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"},
        {"FASTAPI_OTEL_AUTO_CONFIGURE": "true"},
    ],
)
def test_auto_keeps_fastapi_telemetry_when_opentelemetry_is_configured(environ: dict[str, str]) -> None:
    assert fastapi_telemetry(_settings(), environ) is None  # type: ignore[arg-type]


def test_auto_turns_it_off_with_nothing_configured_and_the_switch_decides_regardless() -> None:
    bare = {"PATH": "/usr/bin", "HOME": "/tmp", "FASTAPI_OTEL_AUTO_CONFIGURE": "false"}
    assert fastapi_telemetry(_settings(), bare) == TELEMETRY_OFF  # type: ignore[arg-type]
    assert fastapi_telemetry(_settings(fastapi_telemetry="on"), bare) is None  # type: ignore[arg-type]
    off = _settings(fastapi_telemetry="off")
    assert fastapi_telemetry(off, {"OTEL_SERVICE_NAME": "api"}) == TELEMETRY_OFF  # type: ignore[arg-type]


def test_a_misspelled_mode_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as err:
        _settings(fastapi_telemetry="yes")
    assert "FASTAPI_TELEMETRY" in str(err.value)


# One process per case: a global OpenTelemetry provider can be set once per process.
_CASE = r"""
import asyncio, json, os, sys
import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from app.main import create_app
from app.settings import load_settings

when = sys.argv[1]  # "before": the provider exists when the app is built; "after": set once it is built
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
if when == "before":
    trace.set_tracer_provider(provider)
app = create_app(load_settings(), eager_db=False)
if when == "after":
    trace.set_tracer_provider(provider)

async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        status = (await c.get("/health")).status_code
    await app.state.resources.close()
    return status

status = asyncio.run(main())
print(json.dumps({"status": status, "spans": [s.name for s in exporter.get_finished_spans()]}))
"""


def _run_case(when: str, **env: str) -> dict[str, object]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:1/db",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "APP_ENV": "development",
        "METRICS_ENABLED": "false",
    }
    out = subprocess.run(
        [sys.executable, "-c", _CASE, when],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200, out.stderr
    return result


def test_a_provider_configured_before_the_app_gets_fastapis_spans() -> None:
    assert _run_case("before")["spans"], "auto with an SDK provider must keep FastAPI's request spans"


def test_off_gets_no_spans_even_with_a_provider() -> None:
    assert _run_case("before", FASTAPI_TELEMETRY="off")["spans"] == []


def test_auto_with_nothing_configured_at_build_time_gets_none_and_on_keeps_them() -> None:
    # What the deployer's env gives (no OTEL_*): off, decided when the app is built.
    assert _run_case("after")["spans"] == []
    # FASTAPI_TELEMETRY=on: FastAPI's default, which follows a provider set at any time.
    assert _run_case("after", FASTAPI_TELEMETRY="on")["spans"]
