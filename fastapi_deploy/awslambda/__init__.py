"""The awslambda target (AWS Lambda (container image)):
``from fastapi_deploy.awslambda import LambdaService, LambdaServiceArgs``.

The names load lazily, so importing the package (for its config section or checks) does not import the
cloud provider SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi_deploy.targets import import_component_module

if TYPE_CHECKING:
    from fastapi_deploy.awslambda.args import LambdaServiceArgs
    from fastapi_deploy.awslambda.component import LambdaService

__all__ = ["LambdaService", "LambdaServiceArgs"]

_WHERE = {"LambdaService": "component", "LambdaServiceArgs": "args"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        # Without the extra (pip install "fastapi-deploy[...]"), an ImportError saying which one to install.
        return getattr(import_component_module(__name__, _WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
