"""The Pulumi project the CLI works on: the nearest ``Pulumi.yaml`` at or above the working directory.

The library ships no program of its own: ``infra plan`` runs the project's program (``main:`` in
Pulumi.yaml, default the project directory) under mocks, and reads stack files from ``stackConfigDir``
(default the project directory), exactly where the Pulumi CLI would: every command finds a stack file
with :func:`stack_path`.

The project's own settings for the deployer are the ``[tool.fastapi-deploy]`` table of the nearest
``pyproject.toml`` (:func:`tool_table`): ``service-settings`` (fastapi_deploy/service_env.py) and
``targets`` (the project's own targets, fastapi_deploy/registry.py :func:`load_project_targets`).
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ProjectNotFound(RuntimeError):
    """No Pulumi.yaml at or above the working directory."""


@dataclass(frozen=True)
class Project:
    root: Path
    #: The program's ``__main__.py`` (``main:`` may name a directory or a file).
    main: Path
    stacks_dir: Path


def _candidates(start: Path | None) -> list[Path]:
    # ``start`` first (a stack file's folder: the project it belongs to), then the working directory (the
    # CLI runs `infra` there; the engine runs the program in `main:`), then the directory of the program
    # being run (a test or `infra plan` running it from elsewhere).
    found = [start.resolve()] if start is not None else []
    found.append(Path.cwd().resolve())
    program = getattr(sys.modules.get("__main__"), "__file__", None)
    if program:
        found.append(Path(program).resolve().parent)
    return found


def find(start: Path | None = None) -> Project:
    for here in _candidates(start):
        found = _find_from(here)
        if found is not None:
            return found
    raise ProjectNotFound(
        f"no Pulumi.yaml in {Path.cwd()} or above: run infra from your Pulumi project's directory"
    )


def _find_from(here: Path) -> Project | None:
    for folder in (here, *here.parents):
        path = folder / "Pulumi.yaml"
        if path.is_file():
            doc = yaml.safe_load(path.read_text()) or {}
            main = folder / str(doc.get("main") or ".")
            if main.is_dir():
                main = main / "__main__.py"
            return Project(root=folder, main=main, stacks_dir=folder / str(doc.get("stackConfigDir") or "."))
    return None


def stack_path(stack: str, stacks_dir: str | Path | None = None) -> Path:
    """``Pulumi.<stack>.yaml`` in ``stacks_dir`` when given (``--stacks-dir``), else in the project's
    ``stackConfigDir`` — where `infra plan` and the Pulumi CLI read it. Raises :class:`ProjectNotFound`."""
    folder = Path(stacks_dir) if stacks_dir is not None else find().stacks_dir
    return folder / f"Pulumi.{stack}.yaml"


def pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def tool_table(start: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """The nearest pyproject.toml and its ``[tool.fastapi-deploy]`` table (empty when there is none)."""
    found = pyproject(start)
    if found is None:
        return None, {}
    with found.open("rb") as fh:
        table = tomllib.load(fh).get("tool", {}).get("fastapi-deploy", {})
    return found, table if isinstance(table, dict) else {}
