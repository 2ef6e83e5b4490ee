"""A component whose provider SDK is not installed (only another extra is) says which extra to install.

`fastapi-deploy[aws]` alone has no pulumi_gcp or pulumi_docker: importing the Cloud Run or VPS component
must not end in a bare ``No module named 'pulumi_gcp'``. Each case runs in a fresh interpreter where the
SDK is made unimportable (``sys.modules[name] = None``, what Python does for a module it cannot find).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("package", "name", "sdk", "extra"),
    [
        ("fastapi_deploy.cloudrun", "CloudRunService", "pulumi_gcp", "gcp"),
        ("fastapi_deploy.vps", "VpsService", "pulumi_docker", "docker"),
        ("fastapi_deploy.ecs", "FargateService", "pulumi_aws", "aws"),
        ("fastapi_deploy.awslambda", "LambdaService", "pulumi_aws", "aws"),
    ],
)
def test_a_component_of_a_missing_extra_says_which_extra_to_install(
    package: str, name: str, sdk: str, extra: str
) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{sdk!r}] = None  # not installed\n"
        "try:\n"
        f"    from {package} import {name}\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc, sep=': ')\n"
        "else:\n"
        "    print('imported')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"ImportError: {package} needs {sdk}, which is not installed: "
        f'pip install "fastapi-deploy[{extra}]" (or [all])'
    )


def test_an_installed_extra_imports_as_before() -> None:
    from fastapi_deploy.cloudrun import CloudRunService
    from fastapi_deploy.vps import VpsService

    assert CloudRunService.__name__ == "CloudRunService"
    assert VpsService.__name__ == "VpsService"
