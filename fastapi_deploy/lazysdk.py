"""Load provider SDK sub-packages on demand, for the offline plan only.

Every generated Pulumi provider SDK (``pulumi_aws``, ``pulumi_gcp``) already
imports its sub-packages lazily (``pulumi_aws.ec2`` is loaded on first use),
but each sub-package's ``__init__`` then star-imports *every* module in it:
touching ``aws.ec2.SecurityGroup`` executes all ~180 EC2 modules and their
typing-heavy class bodies (about 0.9 s on a 2-vCPU machine), to use three of
them.

This module installs an import finder that gives such a sub-package a
module whose attributes resolve on first access, from the same names the
eager ``__init__`` would export: the index is each star-imported module's
``__all__``, read as text in the ``__init__``'s order (a later module wins,
as with star imports), and ``outputs`` is a submodule. The classes that come
back are the SDK's own, unchanged, from their own modules.

Only packages whose ``__init__`` star-imports modules that all declare
``__all__`` (every generated sub-package except ``config``, and
``pulumi_docker``) are touched; the rest of such an ``__init__`` runs as
written, and anything else is imported the ordinary way. ``pulumi up`` and ``pulumi preview`` never
install the finder: it is used by ``infra plan`` (and tests of it), and a
test proves that the plan of every stack is identical with and without it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path

#: SDKs whose sub-packages (``pulumi_aws.ec2``) load on demand; their root already imports them lazily.
ROOTS = ("pulumi_aws", "pulumi_gcp")
#: SDKs whose root package itself is one flat star-import list (``pulumi_docker``).
FLAT_ROOTS = ("pulumi_docker",)

_STAR = re.compile(r"from \.([A-Za-z_][A-Za-z_0-9]*) import \*")
_ALL = re.compile(r"^__all__ = (\[.*?\])", re.MULTILINE | re.DOTALL)


def _split_init(init: Path) -> tuple[list[str], str] | None:
    """The modules ``init`` star-imports (in order) and the rest of its source.

    None when the file is not the generated shape (no star imports at all).
    """
    modules: list[str] = []
    rest: list[str] = []
    for line in init.read_text(encoding="utf-8").splitlines():
        match = _STAR.fullmatch(line.strip())
        if match is not None:
            modules.append(match.group(1))
            rest.append("")  # keep line numbers for tracebacks
        elif line.strip() == "from . import outputs":
            rest.append("")
        else:
            rest.append(line)
    if not modules:
        return None
    return modules, "\n".join(rest) + "\n"


def _exported(path: Path) -> list[str] | None:
    """A module's ``__all__`` read from its text, or None if it has none."""
    match = _ALL.search(path.read_text(encoding="utf-8"))
    if match is None:
        return None
    names = ast.literal_eval(match.group(1))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


class _LazyPackage(types.ModuleType):
    """A generated SDK package whose star-imported names and submodules load on first access."""

    _lazysdk_index: dict[str, str]  # exported name -> the submodule it comes from
    _lazysdk_submodules: frozenset[str]

    def __getattr__(self, attr: str) -> object:
        if attr == "__all__":  # `from pulumi_aws.ec2 import *`: every exported name, as eagerly
            return sorted(name for name in self._lazysdk_index if not name.startswith("_"))
        source = self._lazysdk_index.get(attr)
        if source is not None:
            value = getattr(importlib.import_module(f"{self.__name__}.{source}"), attr)
            types.ModuleType.__setattr__(self, attr, value)
            return value
        if attr in self._lazysdk_submodules:
            return importlib.import_module(f"{self.__name__}.{attr}")
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __setattr__(self, name: str, value: object) -> None:
        # The import system binds each newly loaded submodule on its package. With star imports an
        # exported name spelled like a module wins (``ecs.get_cluster`` is the function, not the module
        # ``ecs/get_cluster.py``), so keep that meaning here too.
        index = self.__dict__.get("_lazysdk_index")
        if (
            index is not None
            and name in index
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            if index[name] != name:
                return  # exported by another module: resolved from there on first access
            value = getattr(value, name)
        types.ModuleType.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self._lazysdk_index) | self._lazysdk_submodules)


class _LazyPackageLoader(importlib.abc.Loader):
    """Runs a package's ``__init__`` without its star imports; their names resolve on first access."""

    def __init__(self, init: Path) -> None:
        self._init = init

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object; exec_module gives it the lazy class

    def exec_module(self, module: types.ModuleType) -> None:
        split = _split_init(self._init)
        index: dict[str, str] = {}
        for name in split[0] if split else ():
            exported = _exported(self._init.parent / f"{name}.py")
            if exported is None:
                split = None
                break
            for symbol in exported:
                index[symbol] = name  # a later star import wins, as it does eagerly
        if split is None:  # not the generated shape: run the real __init__ as written
            exec(_compile(self._init, self._init.read_text(encoding="utf-8")), module.__dict__)  # noqa: S102
            return
        module.__dict__["_lazysdk_index"] = index
        module.__dict__["_lazysdk_submodules"] = frozenset({*split[0], "outputs"})
        module.__class__ = _LazyPackage
        # The rest of the __init__ (resource-module registration, lazy `config`) runs as written.
        exec(_compile(self._init, split[1]), module.__dict__)  # noqa: S102


def _compile(init: Path, source: str) -> types.CodeType:
    return compile(source, str(init), "exec")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        root, _, sub = fullname.partition(".")
        if "." in sub or (sub == "" and root not in FLAT_ROOTS) or (sub and root not in ROOTS):
            return None
        if sub == "config":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.submodule_search_locations:
            return None
        spec.loader = _LazyPackageLoader(Path(spec.origin))
        return spec


_FINDER = _Finder()


def install() -> None:
    """Make provider sub-packages load on demand from now on (idempotent).

    Packages already imported stay as they are.
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Import provider packages eagerly again."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
