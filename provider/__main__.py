"""The fastapi-deploy component package: hosts the four target components for any Pulumi language.

The Pulumi CLI runs ``python provider/ <engine address>`` (PulumiPlugin.yaml, ``runtime: python``) in
``provider/venv``; ``component_provider_host`` infers the package schema from each component's typed
Args (``TypedDict``) and output annotations and serves ``GetSchema`` and ``Construct``. Hosted, the
engine constructs ``fastapi-deploy:index:<ClassName>``.

``COMPONENTS`` is the one list of what the package offers; tests import it from here.
"""

from importlib.metadata import PackageNotFoundError, version

from pulumi.provider.experimental import component_provider_host

from fastapi_deploy.awslambda import LambdaService
from fastapi_deploy.cloudrun import CloudRunService
from fastapi_deploy.ecs import FargateService
from fastapi_deploy.vps import VpsService

#: The package name: type tokens are ``fastapi-deploy:index:<ClassName>``.
NAME = "fastapi-deploy"
COMPONENTS = [FargateService, CloudRunService, LambdaService, VpsService]


def package_version() -> str:
    """The installed fastapi-deploy distribution's version (the schema's and generated SDKs' version)."""
    try:
        return version("fastapi-deploy")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout without installing
        return "0.0.0"


if __name__ == "__main__":
    component_provider_host(components=COMPONENTS, name=NAME, version=package_version())
