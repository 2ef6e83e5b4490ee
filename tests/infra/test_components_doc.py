"""docs/components.md is generated from the Args TypedDicts and the components' annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastapi_deploy import component_reference as ref


def test_components_doc_is_up_to_date() -> None:
    assert ref.OUTPUT.read_text() == ref.render(), "run: python -m fastapi_deploy.component_reference"


def test_every_arg_and_output_is_documented() -> None:
    """A field without a docstring would show an empty description (in the doc and the schema)."""
    text = ref.render()
    for line in text.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line
    for _package, comp, args, _children, _example in ref.COMPONENTS.values():
        assert f"### `{args}`" in text
        assert f"## `{comp}`" in text


def test_check_detects_a_stale_doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "components.md"
    assert ref.main(["--output", str(out)]) == 0
    assert ref.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited\n")
    assert ref.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
