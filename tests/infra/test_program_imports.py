"""The program's directory on sys.path shadows nothing: the Pulumi CLI runs ``main: infra/`` with runpy.

runpy puts the program directory (``infra/``) first on sys.path while the program runs, so every module
in it is then also importable under its bare name. A module named like a stdlib module
(``fastapi_deploy/secrets.py``
was one) would replace it for every library that imports it while the program runs (uuid, http and
botocore import ``secrets``). No module may carry such a name, so the program needs no sys.path surgery.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ROOT

#: Directories whose modules could be imported under a bare name: infra/ (the Pulumi program directory),
#: policy/ (the policy pack directory; its __main__ falls back to putting itself on sys.path) and app/.
PACKAGES = ("infra", "policy", "app", "fastapi_deploy")


def _module_names(root: Path) -> list[tuple[str, str]]:
    """(bare module name, path relative to ``root``'s parent) for every module and package below ``root``."""
    found = []
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        if path.is_file() and path.suffix == ".py" and path.stem != "__init__":
            found.append((path.stem, str(path.relative_to(root.parent))))
        elif path.is_dir() and (path / "__init__.py").is_file():
            found.append((path.name, str(path.relative_to(root.parent))))
    return found


def _stdlib_shadows(root: Path) -> list[str]:
    stdlib = sys.stdlib_module_names
    return [rel for name, rel in _module_names(root) if name in stdlib and name != "__main__"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_named_like_a_stdlib_module(package: str) -> None:
    assert _module_names(ROOT / package), f"no modules found under {package}/"
    shadowing = _stdlib_shadows(ROOT / package)
    assert not shadowing, f"these shadow the standard library when {package}/ is on sys.path: {shadowing}"


@pytest.mark.parametrize("package", ["infra", "policy", "fastapi_deploy"])
def test_no_top_level_module_is_named_like_an_installed_package(package: str) -> None:
    """The same hazard for third-party top-level packages (a ``pulumi.py`` or ``yaml.py`` in infra/)."""
    installed = set(importlib.metadata.packages_distributions()) - set(PACKAGES)
    top_level = [p for p in (ROOT / package).iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()]
    shadowing = [p.name for p in top_level if (p.stem if p.suffix == ".py" else p.name) in installed]
    assert not shadowing, f"{package}/ on sys.path would shadow installed packages: {shadowing}"


def test_shadow_check_catches_the_old_secrets_module(tmp_path: Path) -> None:
    """The name check is not vacuous: ``infra/secrets.py`` (and a package named like one) is caught."""
    pkg = tmp_path / "infra"
    (pkg / "targets" / "uuid").mkdir(parents=True)
    for rel in ("__init__.py", "__main__.py", "secrets.py", "secret_refs.py", "targets/__init__.py"):
        (pkg / rel).write_text("")
    (pkg / "targets" / "uuid" / "__init__.py").write_text("")
    assert _stdlib_shadows(pkg) == ["infra/secrets.py", "infra/targets/uuid"]


# While the ECS target deploys (infra/ first on sys.path, as under the CLI), import `secrets` afresh; after
# the program ran, import `secrets` and `uuid` again. Also report what was left on sys.path and any module
# loaded from infra/ (the program directory) under any name but __main__ (imported through the bare dir).
PROBE = """
import importlib, json, os, sys
import fastapi_deploy.mocks as m
import fastapi_deploy.ecs.adapter as ecs

infra_dir = os.path.join(sys.argv[2], "infra")
orig, during = ecs.deploy, {}

def deploy(ctx):
    during["infra_first_on_path"] = os.path.abspath(sys.path[0]) == infra_dir
    sys.modules.pop("secrets", None)
    during["secrets"] = importlib.import_module("secrets").__file__
    return orig(ctx)

ecs.deploy = deploy
result = m.run_stack_file(sys.argv[1])
sys.modules.pop("secrets", None)
sys.modules.pop("uuid", None)
import secrets, uuid
uuid.uuid4(); secrets.token_hex(8)
bare = sorted(
    name for name, mod in list(sys.modules.items())
    if (getattr(mod, "__file__", None) or "").startswith(infra_dir + os.sep)
    and name != "__main__"
)
print(json.dumps({
    "resources": len(result.resources),
    "during": during,
    "after": {"secrets": secrets.__file__, "uuid": uuid.__file__},
    "infra_left_on_path": any(p and os.path.abspath(p) == infra_dir for p in sys.path),
    "bare_infra_modules": bare,
}))
"""


def test_program_run_as_the_cli_runs_it_leaves_the_stdlib_alone(tmp_path: Any) -> None:
    """Run the real program for prod-ecs the way ``pulumi up`` does: runpy.run_path of the infra/ DIRECTORY
    (fastapi_deploy.mocks.run_program), from another cwd and without PYTHONPATH, so ``fastapi_deploy``
    resolves only through the installed distribution. ``secrets`` imported while infra/ is first on sys.path,
    and ``secrets``/``uuid`` imported after the program ran, are the stdlib's."""
    import sysconfig

    env = {**os.environ, "IMAGE_TAG": "probe"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "stacks" / "Pulumi.prod-ecs.yaml"), str(ROOT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()

    assert report["resources"] > 40
    assert report["during"]["infra_first_on_path"], "the probe did not run with infra/ first on sys.path"
    for when, files in (("during", {"secrets": report["during"]["secrets"]}), ("after", report["after"])):
        for name, file in files.items():
            assert Path(file).resolve().parent == stdlib, f"{name} {when} the program came from {file}"
    assert not report["infra_left_on_path"]
    assert report["bare_infra_modules"] == []


def test_main_has_no_sys_path_surgery() -> None:
    """The rename made the guard unnecessary; it must not come back as a workaround."""
    source = (ROOT / "infra" / "__main__.py").read_text()
    assert "sys.path" not in source.split('"""', 2)[2]
    assert "sys.modules" not in source
