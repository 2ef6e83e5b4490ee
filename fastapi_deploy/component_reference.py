"""Generate ``docs/components.md``, the component API reference, from the Args TypedDicts and the
components' Output annotations (the same annotations and field docstrings the Pulumi component-provider
analyzer turns into a schema).

``python -m fastapi_deploy.component_reference`` writes the file; ``--check`` exits 1 when it is stale
(tests/infra/test_components_doc.py fails until it is regenerated).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import itertools
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, NotRequired, Required

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "components.md"

#: target -> (package, component class, Args class, main child attributes, example).
COMPONENTS: dict[str, tuple[str, str, str, str, str]] = {
    "ecs": (
        "fastapi_deploy.ecs",
        "FargateService",
        "FargateServiceArgs",
        "`.service`, `.task_definition`, `.load_balancer`, `.target_group`, `.listeners`, `.cluster` "
        "(None with `cluster_arn`), `.logs`, `.execution_role`, `.task_role`, `.alb_security_group`, "
        "`.listener_rule` (`.load_balancer`/`.alb_security_group` None, `.listeners` empty and "
        "`.listener_rule` the forwarding rule with `listener_arn`), `.metrics_block`, "
        "`.task_security_group`, `.vpc` (only when created), `.scaling_target`, `.alarm_5xx`, `.alarm_p95`, "
        "`.alarm_unhealthy`, `.alarm_memory`, `.alarm_db_pool`, `.alarm_restarts`, `.tuning`, `.outputs`",
        """svc = FargateService(
    "shop",
    {
        "image": image.repo_digest,
        "port": 9000,
        "scaling": {"min": 2, "max": 6},
        "database": {"max_connections": 200},
        "secrets": {"DATABASE_URL": "secretsmanager:shop/db:url"},
        "health": {"liveness_path": "/livez", "readiness_path": "/readyz"},
        "vpc_id": vpc.id,
        "public_subnet_ids": vpc.public_subnet_ids,
        "private_subnet_ids": vpc.private_subnet_ids,
        "certificate_arn": cert.arn,
    },
)
pulumi.export("url", svc.url)""",
    ),
    "cloudrun": (
        "fastapi_deploy.cloudrun",
        "CloudRunService",
        "CloudRunServiceArgs",
        "`.service`, `.account` (None with `service_account_email`), `.secret_access`, `.invoker`, "
        "`.alert_5xx`, `.alert_latency`, `.alert_instances`, `.tuning`, `.outputs`",
        """svc = CloudRunService(
    "shop",
    {
        "image": "europe-west1-docker.pkg.dev/acme/shop/shop@sha256:...",
        "project": "acme",
        "region": "europe-west1",
        "scaling": {"min": 0, "max": 10},
        "secrets": {"DATABASE_URL": "gcp:shop-db"},
        "public": True,
    },
)""",
    ),
    "lambda": (
        "fastapi_deploy.awslambda",
        "LambdaService",
        "LambdaServiceArgs",
        "`.function`, `.alias` (with provisioned concurrency), `.role` (None with `role_arn`), `.logs`, "
        "`.api` / `.function_url`, `.alarm_errors`, `.alarm_throttles`, `.alarm_duration`, `.tuning`, "
        "`.outputs`",
        """svc = LambdaService(
    "shop",
    {
        "image": image.repo_digest,
        "reserved_concurrency": 20,
        "database": {"max_connections": 100},
        "secrets": {"DATABASE_URL": "ssm:/shop/db"},
        "subnet_ids": private_subnet_ids,
        "security_group_ids": [sg.id],
    },
)""",
    ),
    "vps": (
        "fastapi_deploy.vps",
        "VpsService",
        "VpsServiceArgs",
        "`.provider` (docker over SSH), `.network`, `.remote_image`, `.gate` (release gate), `.app`, "
        "`.proxy` (Caddy), `.tuning`, `.outputs`",
        """svc = VpsService(
    "shop",
    {
        "image": "ghcr.io/acme/shop@sha256:...",
        "host": "203.0.113.10",
        "domain": "shop.example.org",
        "registry": {"server": "ghcr.io", "username": "acme", "password_secret": "ssm:/ghcr/token"},
    },
)""",
    ),
}


def type_text(tp: Any) -> str:
    """``pulumi.Input[str]`` -> ``Input[str]``, ``list[pulumi.Input[str]]`` -> ``list[Input[str]]``..."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        names = {getattr(a, "__name__", "") for a in args}
        if {"Awaitable", "Output"} & names or any(typing.get_origin(a) is not None for a in args[1:]):
            plain = [a for a in args if typing.get_origin(a) is None and a is not type(None)]
            return f"Input[{type_text(plain[0])}]" if plain else repr(tp)
        return " | ".join(type_text(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_text(a) for a in args)}]"
    if typing.is_typeddict(tp):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    return getattr(tp, "__name__", repr(tp))


class Docstrings:
    """Field docstrings (the string literal under an annotated field), read from the source with ast —
    the rule the Pulumi analyzer uses for schema descriptions. (Importing the analyzer here would import
    the provider host's protobufs, which clash with googleapis' ``google.rpc.Status`` in one process.)"""

    def __init__(self) -> None:
        self._cache: dict[type, dict[str, str]] = {}

    def get_docstring(self, cls: type, name: str) -> str | None:
        if cls not in self._cache:
            docs: dict[str, str] = {}
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
            body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
            for node, after in itertools.pairwise(body):
                if (
                    isinstance(node, ast.AnnAssign)
                    and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                ):
                    docs[node.target.id] = after.value.value
            self._cache[cls] = docs
        return self._cache[cls].get(name)


def own_annotations(cls: type) -> dict[str, Any]:
    """The class's own annotations (real types: the Args modules do not defer them), NotRequired unwrapped."""
    out: dict[str, Any] = {}
    for key, tp in inspect.get_annotations(cls).items():
        if typing.get_origin(tp) in (NotRequired, Required):
            tp = typing.get_args(tp)[0]
        out[key] = tp
    return out


def _rows(cls: type, analyzer: Docstrings) -> list[str]:
    hints = own_annotations(cls)
    optional: frozenset[str] = getattr(cls, "__optional_keys__", frozenset())
    rows = ["| Arg | Type | Required | Description |", "|---|---|---|---|"]
    for key, tp in hints.items():
        doc = (analyzer.get_docstring(cls, key) or "").replace("\n", " ").replace("|", "\\|")
        doc = " ".join(doc.split())
        rows.append(f"| `{key}` | {type_text(tp)} | {'no' if key in optional else '**yes**'} | {doc} |")
    return rows


def _nested(cls: type, seen: set[str]) -> list[type]:
    out: list[type] = []
    for tp in own_annotations(cls).values():
        for t in (tp, *typing.get_args(tp)):
            if typing.is_typeddict(t) and t.__name__ not in seen:
                seen.add(t.__name__)
                out.append(t)
                out.extend(_nested(t, seen))
    return out


def render() -> str:
    """The whole of docs/components.md."""
    analyzer = Docstrings()
    lines = [
        "# Components",
        "",
        "<!-- Generated by `python -m fastapi_deploy.component_reference` from the Args TypedDicts and the",
        "     components' annotations; do not edit by hand (tests/infra/test_components_doc.py). -->",
        "",
        "One Pulumi component per target, usable from any Python Pulumi program. Each takes",
        "`(name, args, opts=None, *, tuning=None)`: `args` is a plain dict typed by the `...Args` TypedDict",
        "below; the runtime tuning (workers, DB pool, timeouts) is computed from it unless you pass",
        "`tuning=`. A bad Arg raises `fastapi_deploy.component.ArgsError` naming it (`FargateServiceArgs.cpu:"
        " ...`)",
        "before any resource is registered. Every child is named `<name>-...` (enforced). The outputs are",
        "registered once from one dict, `component.outputs`, which is also what this repository's program",
        "exports. Args typed `Input[...]` may come from other resources; the others must be known at",
        "construction (the tuning needs them).",
        "",
    ]
    seen: set[str] = set()
    nested: list[type] = []
    for target, (package, comp_name, args_name, children, example) in COMPONENTS.items():
        module = importlib.import_module(package)
        comp = getattr(module, comp_name)
        args_cls = getattr(module, args_name)
        comp_module = importlib.import_module(f"{package}.component")
        lines += [
            f"## `{comp_name}` ({target})",
            "",
            f"`from {package} import {comp_name}, {args_name}` — type token `{comp_module.COMPONENT_TYPE}`.",
            "",
            " ".join((comp.__doc__ or "").split()),
            "",
            f"### `{args_name}`",
            "",
            *_rows(args_cls, analyzer),
            "",
            "### Outputs",
            "",
            "| Output | Description |",
            "|---|---|",
        ]
        hints = own_annotations(comp)
        for key in hints:
            if key.startswith("_"):
                continue
            doc = " ".join((analyzer.get_docstring(comp, key) or "").split())
            lines.append(f"| `{key}` | {doc} |")
        lines += ["", f"Attributes (children, not outputs): {children}.", "", "```python", example, "```", ""]
        nested += _nested(args_cls, seen)
    lines += ["## Nested Arg types", ""]
    for cls in nested:
        lines += [
            f"### {cls.__name__}",
            "",
            " ".join((cls.__doc__ or "").split()),
            "",
            *_rows(cls, analyzer),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/components.md (``--check``: exit 1 when it differs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    ns = parser.parse_args(argv)
    text = render()
    if ns.check:
        current = ns.output.read_text() if ns.output.exists() else ""
        if current != text:
            print(f"{ns.output} is stale; run python -m fastapi_deploy.component_reference", file=sys.stderr)
            return 1
        return 0
    ns.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
