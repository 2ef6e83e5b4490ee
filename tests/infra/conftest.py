"""Shared fixtures for deployer tests: run the real Pulumi program under mocks for a stack or a config."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy.mocks import ProgramResult, RecordingMocks, ensure_event_loop, run_program

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
TEST_IMAGE_TAG = "test-0123456789ab"


@pytest.fixture(autouse=True)
def _event_loop_for_pulumi() -> None:
    # Tests that call pulumi.runtime.set_mocks directly need a default loop even after async app tests
    # (pytest-asyncio unsets it) ran earlier in the same session.
    ensure_event_loop()


@pytest.fixture(autouse=True, scope="session")
def _image_tag() -> Iterator[None]:
    # The default tag comes from git; pin it so recorded inputs are deterministic.
    old = os.environ.get("IMAGE_TAG")
    os.environ["IMAGE_TAG"] = TEST_IMAGE_TAG
    yield
    if old is None:
        os.environ.pop("IMAGE_TAG", None)
    else:
        os.environ["IMAGE_TAG"] = old


def stack_config(stack: str) -> dict[str, Any]:
    """The raw ``config:`` mapping of ``stacks/Pulumi.<stack>.yaml`` (a deep copy, safe to edit)."""
    doc = yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())
    return copy.deepcopy(doc["config"])


#: Keys an edit replaces whole instead of merging into (a partial secrets/env/image map is its own value).
REPLACED_WHOLE = ("secrets", "env", "image")


def edited_config(stack: str | Path, **app_changes: Any) -> dict[str, Any]:
    """A stack file's raw ``config:`` mapping with its ``fastapi-deploy:app`` object edited.

    ``stack`` is a stack name or a stack file. A dict value is merged into the existing sub-object
    (except :data:`REPLACED_WHOLE`), ``None`` removes the key, anything else replaces it.
    """
    path = stack if isinstance(stack, Path) else STACKS / f"Pulumi.{stack}.yaml"
    raw = copy.deepcopy(yaml.safe_load(path.read_text())["config"])
    app = raw["fastapi-deploy:app"]
    for key, value in app_changes.items():
        if isinstance(value, dict) and isinstance(app.get(key), dict) and key not in REPLACED_WHOLE:
            app[key] = {**app[key], **value}
        elif value is None:
            app.pop(key, None)
        else:
            app[key] = value
    return raw


@pytest.fixture(scope="session")
def run_stack() -> Callable[..., ProgramResult]:
    """Run the program for a stack file, optionally with edits to its ``fastapi-deploy:app`` object."""
    cache: dict[str, ProgramResult] = {}

    def run(stack: str, edit: Callable[[dict[str, Any]], None] | None = None) -> ProgramResult:
        if edit is None and stack in cache:
            return cache[stack]
        raw = stack_config(stack)
        if edit is not None:
            edit(raw["fastapi-deploy:app"])
        result = run_program(stack, raw)
        if edit is None:
            cache[stack] = result
        return result

    return run


def run_raw(stack: str, raw: dict[str, Any]) -> tuple[RecordingMocks, Exception | None, ProgramResult | None]:
    """Run the program and return (mocks, error, result): for tests that expect the program to refuse."""
    mocks = RecordingMocks(region=str(raw.get("aws:region", "us-east-1")))
    try:
        return mocks, None, run_program(stack, raw, mocks=mocks)
    except Exception as exc:  # the refusal under test
        return mocks, exc, None
