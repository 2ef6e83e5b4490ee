"""The awslambda target (AWS Lambda (container image)):
``from fastapi_deploy.awslambda import LambdaService, LambdaServiceArgs``.

The names load lazily, so importing the package (for its config section or checks) does not import the
cloud provider SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_deploy.awslambda.args import LambdaServiceArgs
    from fastapi_deploy.awslambda.component import LambdaService

__all__ = ["LambdaService", "LambdaServiceArgs"]

_WHERE = {"LambdaService": "component", "LambdaServiceArgs": "args"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
