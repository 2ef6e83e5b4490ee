"""docs/components.md is generated from the Args TypedDicts and the components' annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastapi_deploy import component_reference as ref
from fastapi_deploy import registry


def test_components_doc_is_up_to_date() -> None:
    assert ref.OUTPUT.read_text() == ref.render(), "run: python -m fastapi_deploy.component_reference"


def test_every_arg_and_output_is_documented() -> None:
    """A field without a docstring would show an empty description (in the doc and the schema)."""
    text = ref.render()
    for line in text.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line
    documented = [t for t in registry.all_targets() if t.component_doc is not None]
    assert [t.key for t in documented] == ["ecs", "cloudrun", "lambda", "vps"]
    for target in documented:
        assert target.component_doc is not None
        assert f"### `{target.component_doc.args}`" in text
        assert f"## `{target.component_doc.component}` ({target.key})" in text


def test_check_detects_a_stale_doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "components.md"
    assert ref.main(["--output", str(out)]) == 0
    assert ref.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited\n")
    assert ref.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_a_registered_targets_component_doc_is_rendered_from_its_registration() -> None:
    """The doc's sections come from the registry, so a target registered with a ComponentDoc gets one."""
    from dataclasses import replace

    ecs = registry.get("ecs")
    assert ecs.component_doc is not None
    extra = replace(ecs, key="ecs-copy", component_doc=replace(ecs.component_doc, children="`.copy_only`"))
    registry.TARGETS["ecs-copy"] = extra  # bypasses register()'s config checks: only the doc is under test
    try:
        text = ref.render()
    finally:
        del registry.TARGETS["ecs-copy"]
    assert "## `FargateService` (ecs-copy)" in text
    assert "Attributes (children, not outputs): `.copy_only`." in text
    assert ref.render() == ref.OUTPUT.read_text()


def test_input_types_read_as_the_args_declare_them() -> None:
    """pulumi.Input[T] is Union[T, Awaitable[T], Output[T]] with Output[T] a forward reference: the doc shows
    Input[T] whatever T is (a list type included), never the forward reference."""
    from collections.abc import Sequence

    import pulumi

    from fastapi_deploy.component_reference import type_text

    assert type_text(pulumi.Input[str]) == "Input[str]"
    assert type_text(pulumi.Input[Sequence[pulumi.Input[str]]]) == "Input[Sequence[Input[str]]]"
    assert type_text(list[pulumi.Input[str]]) == "list[Input[str]]"
    assert type_text(int | None) == "int | None"
    assert "ForwardRef" not in ref.render()
