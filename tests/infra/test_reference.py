"""docs/stack-config.md is generated from the stack config's JSON schema and must match the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastapi_deploy import config as config_mod
from fastapi_deploy import reference


def test_stack_config_doc_is_up_to_date() -> None:
    """Regenerates in memory; a model change without `make docs` fails here."""
    current = reference.OUTPUT.read_text(encoding="utf-8")
    assert current == reference.render(), (
        "docs/stack-config.md is stale (the stack config models changed): run `make docs` and commit it"
    )


def _rows(text: str) -> dict[str, list[str]]:
    """key -> cells for every table row of one section, by section heading."""
    rows: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[f"{section}:{cells[0].strip('`')}"] = cells
    return rows


def test_every_key_has_a_type_and_a_description() -> None:
    """A key added without a docstring (the description) is refused: the reference would be empty."""
    rows = _rows(reference.render())
    assert len(rows) > 100
    undocumented = [key for key, cells in rows.items() if not cells[1] or not cells[4]]
    assert not undocumented, f"add a docstring under these fields in fastapi_deploy/config.py: {undocumented}"


def test_reference_shows_defaults_bounds_enums_and_targets() -> None:
    text = reference.render()
    rows = _rows(text)
    for target in config_mod.TARGETS:
        assert f"## `target: {target}`" in text
    common = "Every target"
    assert rows[f"{common}:name"][2] == "**required**"
    assert rows[f"{common}:database.max_connections"][2:4] == ["`100`", "≥ 1, ≤ 100000"]
    assert rows[f"{common}:database.migrate"][1] == "`on_start` \\| `release` \\| `manual`, or `null`"
    assert rows[f"{common}:tuning.db_pool_timeout_s"][3] == "> 0, ≤ 60"
    assert rows[f"{common}:image.build.args"][2] == "`{}`"  # a default_factory default
    # Keys whose schema differs per target are listed per target, with the target's own default.
    assert f"{common}:port" not in rows
    assert rows["`target: cloudrun`:port"][2] == "`8080`"
    assert rows["`target: ecs`:port"][2] == "`8000`"
    assert rows["`target: ecs`:scaling"][2] == "**required**"
    assert rows["`target: vps`:scaling"][2] == '`{"min": 1, "max": 1, "desired": 1}`'
    assert "`target: lambda`:scaling" not in rows
    assert "lambda.reserved_concurrency" in "".join(rows)
    # Allowed values that live in validators are in the schema as enums, from the same constants.
    assert rows["`target: ecs`:ecs.cpu"][3] == "one of " + ", ".join(map(str, config_mod.FARGATE_COMBOS))
    assert "3653" in rows["`target: lambda`:lambda.log_retention_days"][3]
    assert rows["`target: cloudrun`:cloudrun.memory"][1] == "integer or string"
    # The existing-VPC alternative of the ECS vpc union is documented too.
    assert rows["`target: ecs`:ecs.vpc.(ExistingVpc).vpc_id"][2] == "**required**"
    # Loader-filled fields are not user keys.
    assert not [k for k in rows if k.endswith((":stack", ":providers"))]


def test_every_model_field_is_in_the_reference() -> None:
    """The walk reaches every field of every model in the union (by its config key)."""
    rows = _rows(reference.render())
    keys = {k.rsplit(":", 1)[1].replace("(NewVpc).", "").replace("(ExistingVpc).", "") for k in rows}
    for model in (
        config_mod.EcsConfig,
        config_mod.CloudRunConfig,
        config_mod.LambdaConfig,
        config_mod.VpsConfig,
    ):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert (field.alias or name) in keys, f"{model.__name__}.{name} missing from the reference"
    for section, model in (("ecs", config_mod.EcsSettings), ("vps", config_mod.VpsSettings)):
        for name in model.model_fields:
            assert f"{section}.{name}" in keys


def test_main_writes_and_check_detects_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stack-config.md"
    assert reference.main(["--check", "--output", str(out)]) == 1
    assert "run `make docs`" in capsys.readouterr().err
    assert reference.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == reference.render()
    assert reference.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("`100`", "`200`"), encoding="utf-8")
    assert reference.main(["--check", "--output", str(out)]) == 1
