"""Generate ``docs/stack-config.md``, the stack config reference, from the config models' JSON schema.

``python -m fastapi_deploy.reference`` (``make docs``) writes the file; ``--check`` exits 1 when it is stale.
Everything comes from :data:`fastapi_deploy.config.StackConfig`'s JSON schema: types, defaults
(``default_factory``
ones included), bounds, enums and the field docstrings (``use_attribute_docstrings``), so a key added to a
model shows up here after ``make docs`` and a test fails until it does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from fastapi_deploy import config as config_mod
from fastapi_deploy import registry

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "stack-config.md"
JsonNode = Mapping[str, Any]


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also show defaults that come from a ``default_factory`` (pydantic leaves them out)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def stack_config_schema() -> JsonSchemaValue:
    """The JSON schema of the ``fastapi-deploy:app`` object (the discriminated union on ``target``)."""
    return TypeAdapter(config_mod.StackConfig).json_schema(schema_generator=_WithFactoryDefaults)


# ------------------------------------------------------------------------------------------- rendering
def _text(description: str | None) -> str:
    """One table cell: RST literals to Markdown, whitespace collapsed, pipes escaped."""
    text = re.sub(r"\s+", " ", description or "").strip()
    return text.replace("``", "`").replace("|", "\\|")


def _literal(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


class _Schema:
    def __init__(self, root: JsonNode) -> None:
        self.root = root
        self.defs: Mapping[str, JsonNode] = root.get("$defs", {})

    def resolve(self, node: JsonNode) -> JsonNode:
        ref = node.get("$ref")
        return self.defs[ref.rsplit("/", 1)[-1]] if ref else node

    def models(self, node: JsonNode) -> list[JsonNode]:
        """The object models a property may hold (``X``, ``X | None``, a union of models)."""
        alternatives = node.get("anyOf") or node.get("oneOf") or [node]
        return [self.resolve(a) for a in alternatives if self.resolve(a).get("properties") is not None]

    def type_of(self, node: JsonNode) -> str:
        if "$ref" in node:
            return "object"
        if "const" in node:
            return _literal(node["const"])
        if "enum" in node and node.get("type") == "string":
            return " \\| ".join(_literal(v) for v in node["enum"])
        alternatives = node.get("anyOf") or node.get("oneOf")
        if alternatives:
            kinds = [self.type_of(a) for a in alternatives if a.get("type") != "null"]
            optional = ", or `null`" if any(a.get("type") == "null" for a in alternatives) else ""
            return " or ".join(dict.fromkeys(kinds)) + optional
        kind = node.get("type")
        if kind == "array":
            return f"list of {self.type_of(node.get('items', {}))}"
        if kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
            return f"map of string to {self.type_of(node['additionalProperties'])}"
        return {"integer": "integer", "number": "number", "boolean": "boolean", "string": "string"}.get(
            str(kind), str(kind or "any")
        )

    def constraints(self, node: JsonNode) -> str:
        parts = []
        for alt in [node, *(node.get("anyOf") or [])]:
            for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
                if key in alt:
                    parts.append(f"{sign} {alt[key]}")
            if "exclusiveMaximum" in alt:
                parts.append(f"< {alt['exclusiveMaximum']}")
            if "enum" in alt and alt.get("type") != "string":
                parts.append("one of " + ", ".join(str(v) for v in alt["enum"]))
            if "pattern" in alt and alt is node:
                parts.append(f"pattern `{alt['pattern']}`")
            if "minItems" in alt:
                parts.append(f"at least {alt['minItems']} items")
        return ", ".join(parts)

    def default_of(self, node: JsonNode, required: bool, has_children: bool) -> str:
        if required:
            return "**required**"
        if "default" not in node:
            return ""
        default = node["default"]
        if isinstance(default, Mapping) and default and has_children:
            # Each key's default is in its own row, unless the object's default differs from them.
            return _literal(default) if self._fills_required(node) else "(per key)"
        return _literal(default)

    def _fills_required(self, node: JsonNode) -> bool:
        return any(m.get("required") for m in self.models(node))

    def rows(self, model: JsonNode, prefix: str, skip: frozenset[str] = frozenset()) -> Iterator[list[str]]:
        """One row per key of ``model`` and, depth first, of every nested model."""
        required = set(model.get("required", []))
        for name, prop in model.get("properties", {}).items():
            if name in skip:
                continue
            key = f"{prefix}{name}"
            nested = self.models(prop)
            description = prop.get("description") or ""
            if nested and not description:
                description = " / ".join(m.get("description", "") for m in nested)
            elif nested and len(nested) == 1 and nested[0].get("description"):
                description = f"{description} {nested[0]['description']}"
            type_text = (
                " or ".join(f"object ({m.get('title')})" for m in nested)
                + (", or `null`" if any(a.get("type") == "null" for a in prop.get("anyOf", [])) else "")
                if nested
                else self.type_of(prop)
            )
            yield [
                f"`{key}`",
                type_text,
                self.default_of(prop, name in required, bool(nested)),
                self.constraints(prop) if not nested else "",
                _text(description),
            ]
            for sub in nested:
                label = f"{key}." if len(nested) == 1 else f"{key}.({sub.get('title')})."
                yield from self.rows(sub, label)


HEADER = ["key", "type", "default", "bounds", "description"]


def _table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return lines


def render(schema: JsonNode | None = None) -> str:
    """The whole of docs/stack-config.md."""
    s = _Schema(schema if schema is not None else stack_config_schema())
    mapping: dict[str, str] = s.root["discriminator"]["mapping"]
    targets = {tag: s.resolve({"$ref": ref}) for tag, ref in mapping.items()}
    ordered = [t for t in registry.names() if t in targets]
    # Keys every target has with the same schema are common; the rest belong to a target.
    first = targets[ordered[0]]["properties"]
    common = [
        k
        for k in first
        if k != "target"
        and all(targets[t]["properties"].get(k) == first[k] for t in ordered)
        and all(
            (k in targets[t].get("required", [])) == (k in targets[ordered[0]].get("required", []))
            for t in ordered
        )
    ]
    out = [
        "# Stack config reference (`fastapi-deploy:app`)",
        "",
        "<!-- Generated by `make docs` (python -m fastapi_deploy.reference) from the JSON schema of "
        "fastapi_deploy/config.py",
        "     StackConfig. Do not edit: change the models (field docstrings, bounds) and regenerate. -->",
        "",
        "The object under `fastapi-deploy:app` in `stacks/Pulumi.<stack>.yaml`. `target` selects one of the",
        "models below; unknown keys are errors everywhere. Keys are dotted paths into the object",
        "(`database.max_connections` is `app.database.max_connections` in error messages). Cross-key rules",
        "(exactly one of `image.build`/`image.digest`, `scaling.min ≤ desired ≤ max`, the connection budget,",
        "per-target secret schemes) are checked too and named in the descriptions; the prose is in",
        "[deployer.md](deployer.md).",
        "",
        "## Every target",
        "",
        *_table(
            [
                [
                    "`target`",
                    " \\| ".join(_literal(t) for t in ordered),
                    "**required**",
                    "",
                    "Selects the model and the component (one section below each).",
                ],
                *s.rows(targets[ordered[0]], "", skip=frozenset(k for k in first if k not in common)),
            ]
        ),
    ]
    for target in ordered:
        model = targets[target]
        out += [
            "",
            f"## `target: {target}`",
            "",
            _text(model.get("description")),
            "",
            *_table(list(s.rows(model, "", skip=frozenset({"target", *common})))),
        ]
        extra = registry.get(target).reference_extra
        if extra is not None:
            out += ["", *extra()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/stack-config.md (or, with ``--check``, exit 1 when it is not up to date)."""
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_deploy.reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale; write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
