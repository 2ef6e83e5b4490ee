"""The fastapi-deploy component package: hosts the four target components for any Pulumi language.

The Pulumi CLI runs ``python provider/ <engine address>`` (PulumiPlugin.yaml, ``runtime: python``) in
``provider/venv``; ``component_provider_host`` infers the package schema from each component's typed
Args (``TypedDict``) and output annotations and serves ``GetSchema`` and ``Construct``. Hosted, the
engine constructs ``fastapi-deploy:index:<ClassName>``.

``COMPONENTS`` is the one list of what the package offers, taken from the built-in targets' registrations
(``Target.component_doc``: the package exporting each component); tests import it from here.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pulumi.provider.experimental import component_provider_host

from fastapi_deploy import registry

#: The package name: type tokens are ``fastapi-deploy:index:<ClassName>``.
NAME = "fastapi-deploy"


def _components() -> list[Any]:
    out = []
    for target in registry.all_targets():
        doc = target.component_doc
        if target.key in registry.BUILTIN and doc is not None:
            out.append(getattr(import_module(doc.package), doc.component))
    return out


COMPONENTS = _components()


def package_version() -> str:
    """The installed fastapi-deploy distribution's version (the schema's and generated SDKs' version)."""
    try:
        return version("fastapi-deploy")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout without installing
        return "0.0.0"


if __name__ == "__main__":
    component_provider_host(components=COMPONENTS, name=NAME, version=package_version())
