"""`infra plan` loads provider SDK modules on demand (fastapi_deploy/lazysdk.py) without changing the plan.

The speed-up is measured in bench/bench_plan.py, never asserted here. What is asserted: the plan of every
stack is byte-identical with and without on-demand loading, names resolve to the SDK's own classes, only
the touched modules are imported, and a package that is not in the generated shape is imported as written.
Each check that needs a fresh interpreter (the finder must be in place before `import pulumi_aws`) runs
in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fastapi_deploy import lazysdk
from fastapi_deploy import plan as plan_mod

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_PLAN_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _python(code: str, **env: str) -> Any:
    """Run `code` in a fresh interpreter; it prints one JSON document as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plan_all(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastapi_deploy.cli", "plan", "--stack", "all", "--format", "json"],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_stack_plans_byte_identical_with_and_without_on_demand_loading() -> None:
    lazy = _plan_all()
    eager = _plan_all(INFRA_PLAN_EAGER_SDK="1")
    assert lazy.returncode == eager.returncode, (lazy.stderr[-2000:], eager.stderr[-2000:])
    assert lazy.returncode in (plan_mod.EXIT_OK, plan_mod.EXIT_FINDINGS), lazy.stderr[-2000:]
    plans = json.loads(lazy.stdout)
    assert {p["stack"] for p in plans} == {plan_mod.stack_name(p) for p in plan_mod.stack_files()}
    assert all(p["resources"] for p in plans)
    # The whole document, resources in order: the same process-to-process and mode-to-mode.
    assert lazy.stdout == eager.stdout


def test_a_plan_touches_only_the_modules_it_uses_and_gets_the_sdks_own_classes() -> None:
    probe = _python(
        """
        import json, sys
        from fastapi_deploy import lazysdk
        lazysdk.install()
        import pulumi_aws as aws
        sg = aws.ec2.SecurityGroup
        args = aws.ec2.SecurityGroupIngressArgs
        import pulumi_aws.ec2.security_group as sg_module
        import pulumi_aws.ec2._inputs as inputs_module
        loaded = sorted(m for m in sys.modules if m.startswith("pulumi_aws.ec2."))
        print(json.dumps({
            "same_class": sg is sg_module.SecurityGroup,
            "same_args": args is inputs_module.SecurityGroupIngressArgs,
            "loaded": loaded,
            "outputs": aws.ec2.outputs.__name__,
            "dir_has_vpn": "VpnGateway" in dir(aws.ec2),
        }))
        """
    )
    assert probe["same_class"]
    assert probe["same_args"]
    assert probe["outputs"] == "pulumi_aws.ec2.outputs"
    assert probe["dir_has_vpn"]  # every name the eager package has is still listed
    # The eager package imports ~180 modules; on demand it is the one used plus its shared types.
    assert "pulumi_aws.ec2.vpn_gateway" not in probe["loaded"]
    assert set(probe["loaded"]) <= {
        "pulumi_aws.ec2._enums",
        "pulumi_aws.ec2._inputs",
        "pulumi_aws.ec2.outputs",
        "pulumi_aws.ec2.security_group",
    }


# Every public name of these packages, eager vs on demand: same set, same defining module and qualname.
_NAMES = """
import importlib, inspect, json, os, sys, types
if os.environ.get("LAZY"):
    from fastapi_deploy import lazysdk
    lazysdk.install()
result = {}
for name in ("pulumi_aws.ecs", "pulumi_aws.lb", "pulumi_gcp.cloudrunv2", "pulumi_docker"):
    mod = importlib.import_module(name)
    getattr(mod, "no_such_name", None)  # an SDK's own lazy_import loads on first attribute access
    public = {}
    for attr in dir(mod):
        if attr.startswith("_"):
            continue
        value = getattr(mod, attr)
        if isinstance(value, types.ModuleType) and attr != "outputs":
            continue  # submodules are attributes once imported: eager has all, on demand the used ones
        public[attr] = f"{getattr(value, '__module__', '')}:{getattr(value, '__qualname__', attr)}"
    result[name] = public
print(json.dumps(result))
"""


def test_every_public_name_resolves_to_the_same_object_as_when_imported_eagerly() -> None:
    eager = _python(_NAMES)
    lazy = _python(_NAMES, LAZY="1")
    for package, names in eager.items():
        assert len(names) > 20, package
        assert lazy[package] == names, package


def test_a_function_spelled_like_its_module_stays_the_function() -> None:
    # `ec2.get_vpc` is the function from `ec2/get_vpc.py`; loading that module (here through
    # `get_vpc_output`, or by importing it directly) must not turn the package attribute into the module.
    probe = _python(
        """
        import json, types
        from fastapi_deploy import lazysdk
        lazysdk.install()
        import pulumi_aws as aws
        aws.ec2.get_vpc_output
        import pulumi_aws.ecs.get_cluster
        print(json.dumps({
            "get_vpc": type(aws.ec2.get_vpc).__name__,
            "get_cluster": type(aws.ecs.get_cluster).__name__,
            "after_direct_import": isinstance(pulumi_aws.ecs.get_cluster, types.FunctionType),
            "submodule": type(aws.ec2.security_group).__name__,
        }))
        """
    )
    assert probe == {
        "get_vpc": "function",
        "get_cluster": "function",
        "after_direct_import": True,
        "submodule": "module",
    }


def test_a_star_import_gets_every_exported_name() -> None:
    probe = _python(
        """
        import json
        from fastapi_deploy import lazysdk
        lazysdk.install()
        namespace = {}
        exec("from pulumi_aws.ecs import *", namespace)
        print(json.dumps({
            "cluster": namespace["Cluster"].__module__,
            "get_cluster": type(namespace["get_cluster"]).__name__,
            "count": len(namespace),
        }))
        """
    )
    assert probe["cluster"] == "pulumi_aws.ecs.cluster"
    assert probe["get_cluster"] == "function"
    assert probe["count"] > 100


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    probe = _python(
        """
        import json
        from fastapi_deploy import lazysdk
        lazysdk.install()
        import pulumi_aws as aws
        try:
            aws.ecs.NoSuchResource
        except AttributeError as exc:
            print(json.dumps({"error": str(exc), "has": hasattr(aws.ecs, "Cluster")}))
        """
    )
    assert probe == {
        "error": "module 'pulumi_aws.ecs' has no attribute 'NoSuchResource'",
        "has": True,
    }


def _load(tmp_path: Path, name: str, files: dict[str, str]) -> Any:
    pkg = tmp_path / name
    pkg.mkdir()
    for fname, text in files.items():
        (pkg / fname).write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location(
            name, pkg / "__init__.py", submodule_search_locations=[str(pkg)]
        )
        assert spec is not None
        spec.loader = lazysdk._LazyPackageLoader(pkg / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(tmp_path))


@pytest.fixture
def cleanup_modules() -> Any:
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_a_generated_package_defers_its_star_imports_and_runs_the_rest(
    tmp_path: Path, cleanup_modules: None
) -> None:
    mod = _load(
        tmp_path,
        "genpkg_ok",
        {
            "__init__.py": """
                import builtins as _builtins
                from .alpha import *
                from .beta import *
                from . import outputs
                REGISTERED = ["done"]
            """,
            "alpha.py": "__all__ = ['Alpha', 'Shared']\nclass Alpha: ...\nclass Shared: origin = 'alpha'\n",
            "beta.py": "__all__ = ['Beta', 'Shared']\nclass Beta: ...\nclass Shared: origin = 'beta'\n",
            "outputs.py": "X = 1\n",
        },
    )
    assert mod.REGISTERED == ["done"]  # the rest of the __init__ ran
    assert "genpkg_ok.alpha" not in sys.modules
    assert "genpkg_ok.beta" not in sys.modules
    assert mod.Alpha.__module__ == "genpkg_ok.alpha"
    assert "genpkg_ok.beta" not in sys.modules  # only what was asked for
    assert mod.Shared.origin == "beta"  # the later star import wins, as it does eagerly
    assert mod.outputs.X == 1
    with pytest.raises(AttributeError, match="genpkg_ok"):
        _ = mod.Gamma


def test_a_package_not_in_the_generated_shape_is_imported_as_written(
    tmp_path: Path, cleanup_modules: None
) -> None:
    mod = _load(
        tmp_path,
        "genpkg_odd",
        {
            "__init__.py": "from .alpha import *\nfrom .plain import *\n",
            "alpha.py": "__all__ = ['Alpha']\nclass Alpha: ...\n",
            "plain.py": "def helper():\n    return 42\n",  # no __all__: star import semantics differ
        },
    )
    # Executed eagerly: both modules are loaded and every star-imported name is there.
    assert "genpkg_odd.alpha" in sys.modules
    assert "genpkg_odd.plain" in sys.modules
    assert mod.helper() == 42
    assert mod.Alpha.__name__ == "Alpha"
