"""The migration heads /ready compares the database with: read from the scripts, as Alembic reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from app import schema

ROOT = Path(__file__).resolve().parents[2]


def _script(directory: Path, name: str, revision: str, down: str) -> None:
    (directory / f"{name}.py").write_text(
        f'"""{name}"""\n\nrevision: str = "{revision}"\ndown_revision = {down}\n\n'
        "def upgrade() -> None: ...\n"
    )


def test_the_real_migrations_read_as_alembic_reads_them() -> None:
    alembic = ScriptDirectory.from_config(Config(str(ROOT / "app" / "alembic.ini")))
    revs = schema.read_revisions()
    assert revs.heads == frozenset(alembic.get_heads())
    assert revs.known == frozenset(s.revision for s in alembic.walk_revisions())


def test_heads_of_a_branched_and_merged_history(tmp_path: Path) -> None:
    _script(tmp_path, "a", "0001", "None")
    _script(tmp_path, "b", "0002", '"0001"')
    _script(tmp_path, "c1", "0003a", '"0002"')
    _script(tmp_path, "c2", "0003b", '"0002"')
    (tmp_path / "__init__.py").write_text("")
    revs = schema.read_revisions(tmp_path)
    assert revs.heads == {"0003a", "0003b"}  # two heads before the merge
    _script(tmp_path, "d", "0004", '("0003a", "0003b")')
    revs = schema.read_revisions(tmp_path)
    assert revs.known == {"0001", "0002", "0003a", "0003b", "0004"}
    assert revs.heads == {"0004"}


@pytest.mark.parametrize(
    ("db", "problem"),
    [
        (["0004"], None),  # at this release's head
        (["0099"], None),  # a newer release migrated ahead (expand/contract): still servable
        (["0002"], "schema behind this release: database at 0002; this release needs 0004: run migrations"),
        (None, "database not migrated (no alembic_version table); this release needs 0004: run migrations"),
        ([], "database not migrated (alembic_version is empty); this release needs 0004: run migrations"),
    ],
)
def test_schema_problem(db: list[str] | None, problem: str | None) -> None:
    revs = schema.Revisions(known=frozenset({"0001", "0002", "0004"}), heads=frozenset({"0004"}))
    assert schema.schema_problem(db, revs) == problem


def test_a_script_without_a_revision_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("down_revision = None\n")
    with pytest.raises(ValueError, match=r"broken\.py: no `revision = \.\.\.` assignment"):
        schema.read_revisions(tmp_path)
