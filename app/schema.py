"""Is the database schema what this release's code needs? (the `schema` check of /ready)

The code's migration heads come from `app/migrations/versions/*.py`, read with `ast` (no Alembic import:
/ready must stay cheap, and a Lambda cold start must not pay for Alembic). The database's revision comes
from `alembic_version`. Expand/contract deployments mean old and new code share one database, so:

* database at a head of this code -> ready;
* database at a revision this code does not know -> ready: a newer release migrated ahead (expand
  migrations keep old code working; that is the point of expand/contract);
* database at an older revision this code knows, or never migrated -> NOT ready: this release would
  serve errors on a missing column. Under `migrate: manual` (Lambda, long migrations) this is what makes
  `infra verify`, Cloud Run's startup probe and the ECS/VPS release gates stop a rollout whose migration
  was forgotten, instead of serving 500s.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"


@dataclass(frozen=True)
class Revisions:
    known: frozenset[str]
    heads: frozenset[str]


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return None if node.value is None else ast.literal_eval(node.value)
    raise ValueError(f"no `{name} = ...` assignment")


def read_revisions(directory: Path = VERSIONS_DIR) -> Revisions:
    """Every revision in the migration scripts, and the heads (revisions nothing revises)."""
    known: set[str] = set()
    parents: set[str] = set()
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        try:
            revision = _assigned(tree, "revision")
            down = _assigned(tree, "down_revision")
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
        if not isinstance(revision, str):
            raise ValueError(f"{path.name}: revision must be a string")
        known.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):  # a merge revision
            parents.update(str(d) for d in down)
    return Revisions(known=frozenset(known), heads=frozenset(known - parents))


@functools.cache
def code_revisions() -> Revisions:
    return read_revisions()


def schema_problem(db_versions: Iterable[str] | None, revisions: Revisions | None = None) -> str | None:
    """None when this code can serve the database's schema, else why not (for /ready).

    ``db_versions`` is the content of ``alembic_version`` (None: the table does not exist).
    """
    revs = revisions or code_revisions()
    fix = f"this release needs {', '.join(sorted(revs.heads)) or 'none'}: run migrations"
    if db_versions is None:
        return f"database not migrated (no alembic_version table); {fix}"
    versions = set(db_versions)
    if not versions:
        return f"database not migrated (alembic_version is empty); {fix}"
    if versions & revs.heads or versions - revs.known:
        return None  # at this code's head, or migrated ahead by a newer release
    return f"schema behind this release: database at {', '.join(sorted(versions))}; {fix}"
