"""The `infra` console script: dispatch, usage errors, and the exit-code contract."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from fastapi_deploy import cli

ROOT = Path(__file__).resolve().parents[2]


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "plan" in capsys.readouterr().out


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("plan", "doctor", "verify"))


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deploy"]) == 2
    assert "unknown command 'deploy'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["doctor", "verify"])
def test_dispatches_argv_and_returns_the_exit_code(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_cli(argv: list[str]) -> int:
        seen.append(argv)
        return 1

    module = types.ModuleType(f"fastapi_deploy.{command}")
    module.cli = fake_cli  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"fastapi_deploy.{command}", module)
    assert cli.main([command, "--stack", "prod-ecs"]) == 1
    assert seen == [["--stack", "prod-ecs"]]


def test_missing_subcommand_module_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "doctor", "fastapi_deploy.not_landed_yet")
    assert cli.main(["doctor"]) == 2
    assert "fastapi_deploy/not_landed_yet.py is missing" in capsys.readouterr().err


def test_plan_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan"]) == 2
    assert "--stack is required" in capsys.readouterr().err
    assert cli.main(["plan", "--format", "yaml"]) == 2


def test_console_script_is_installed_and_lists_stacks_without_importing_pulumi() -> None:
    script = Path(sys.executable).with_name("infra")
    assert script.exists(), "uv sync installs the `infra` console script ([project.scripts])"
    probe = (
        "import sys; from fastapi_deploy import cli; code = cli.main(['plan', '--list']); "
        "assert 'pulumi' not in sys.modules, 'listing stacks must stay fast'; sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"include"' in result.stdout


def test_plan_caches_bytecode_outside_the_source_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # PYTHONDONTWRITEBYTECODE doubles a plan's time (SDK imports from source); the cache goes to XDG.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("INFRA_NO_BYTECODE_CACHE", raising=False)
    assert cli.main(["plan", "--list"]) == 0
    assert sys.pycache_prefix == str(tmp_path / "fastapi-deploy" / "pycache")
    assert sys.dont_write_bytecode is False


def test_bytecode_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("INFRA_NO_BYTECODE_CACHE", "1")
    assert cli.main(["plan", "--list"]) == 0
    assert sys.pycache_prefix is None
    assert sys.dont_write_bytecode is True


def test_plan_gives_the_interpreter_back_as_it_was(capsys: pytest.CaptureFixture[str]) -> None:
    # `infra plan` pauses the GC and loads provider SDKs on demand for its own run only: a caller running
    # it in-process (as these tests do) must not be left with either.
    import gc
    import sys

    from fastapi_deploy import lazysdk

    assert gc.isenabled()
    assert cli.main(["plan", "--list"]) == 0
    assert cli.main(["plan", "--stack", "no-such-stack"]) == 2
    capsys.readouterr()
    assert gc.isenabled()
    assert lazysdk._FINDER not in sys.meta_path
