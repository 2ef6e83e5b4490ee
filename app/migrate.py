"""`python -m app.migrate`: `alembic upgrade head` under a PostgreSQL advisory lock, bounded in time.

Run by the gunicorn master before it forks workers when MIGRATE_ON_START=true (app/gunicorn_conf.py), by
the deploy itself before traffic moves when app.database.migrate is ``release`` (an ECS one-off task, a Cloud
Run Job, the Lambda migrate event in app/lambda_handler.py, the VPS release gate), and by hand where it is
``manual``. N replicas starting
together all call it: the first takes the session-level advisory lock and migrates, the others block on
the lock and then find the schema already at head, so the migration runs exactly once.

Exit 0 when the schema is at head; exit 1 with ONE JSON line on stderr otherwise (the platform's release
gate — ECS circuit breaker, Cloud Run startup probe, VPS release check — then stops the rollout instead
of serving on a missing or half-migrated schema). DATABASE_URL and its password never appear in output.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# Fixed 64-bit advisory lock key ("fastapi\x01" as a big-endian signed bigint); every replica uses it.
LOCK_KEY = 0x6661737461706901
DEFAULT_TIMEOUT_S = 120.0
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
# A new connection must fail in seconds, not after the OS TCP timeout (~2 min) on a black-holed host.
CONNECT_TIMEOUT_S = 5.0


def _log(level: str, msg: str, **fields: Any) -> None:
    line = {"ts": round(time.time(), 3), "level": level, "logger": "app.migrate", "msg": msg}
    line.update(fields, pid=os.getpid())
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


def _redact(message: str, url: str) -> str:
    """Remove the URL and its password from an error message (SQLAlchemy quotes unparsable URLs)."""
    if url:
        message = message.replace(url, "<DATABASE_URL>")
    m = re.match(r"^[^:/]+://[^:@/]*:([^@]*)@", url)
    if m and m.group(1):
        message = message.replace(m.group(1), "***")
    return re.sub(r"(://[^:@/\s]*:)[^@\s]*@", r"\1***@", message)


def timeout_from_env() -> float:
    raw = os.environ.get("MIGRATE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"MIGRATE_TIMEOUT={raw!r} is not a number of seconds (e.g. 120)") from None
    if value <= 0:
        raise ValueError(f"MIGRATE_TIMEOUT={raw!r} must be > 0")
    return value


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection) -> None:
    cfg = Config(str(ALEMBIC_INI))
    cfg.attributes["connection"] = conn  # env.py migrates on this connection (the one holding the lock)
    cfg.attributes["configure_logger"] = False  # keep stderr JSON-only
    command.upgrade(cfg, "head")


async def migrate(url: str) -> tuple[str | None, str | None]:
    """Upgrade to head holding the advisory lock; return (revision before, revision after)."""
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_S})
    try:
        async with engine.connect() as conn:
            # Session-level: held across the migration's own transactions, released on unlock/disconnect
            # (so a killed migrator never leaves the lock behind).
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            await conn.commit()
            try:
                before = await conn.run_sync(_current)
                await conn.run_sync(_upgrade)
                await conn.commit()
                after = await conn.run_sync(_current)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                await conn.commit()
        return before, after
    finally:
        await engine.dispose()


def run(timeout: float | None = None) -> dict[str, Any]:
    """One bounded migration of DATABASE_URL; logs ONE JSON line and returns its fields plus ``ok``.

    ``timeout`` overrides MIGRATE_TIMEOUT (the Lambda migrate event passes what the invocation has left).
    The result never contains the URL or its password.
    """
    url = os.environ.get("DATABASE_URL", "")
    start = time.monotonic()
    fields: dict[str, Any]
    try:
        timeout = timeout_from_env() if timeout is None else timeout
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError("DATABASE_URL must be set to postgresql+asyncpg://user:password@host:5432/db")
        before, after = asyncio.run(asyncio.wait_for(migrate(url), timeout))
    except TimeoutError:
        fields = {
            "error": f"timed out after {timeout:g}s (MIGRATE_TIMEOUT, lock wait "
            "included); for long migrations set app.database.migrate: manual and run them as a one-off"
        }
        _log("error", "migration failed", **fields)
        return {"ok": False, "msg": "migration failed", **fields}
    except Exception as exc:  # any failure must become one readable line and exit 1
        fields = {"error": _redact(f"{type(exc).__name__}: {exc}", url)}
        _log("error", "migration failed", **fields)
        return {"ok": False, "msg": "migration failed", **fields}
    msg = "migrations applied" if before != after else "schema already at head"
    fields = {"from": before, "to": after, "seconds": round(time.monotonic() - start, 2)}
    _log("info", msg, **fields)
    return {"ok": True, "msg": msg, **fields}


def main() -> int:
    return 0 if run()["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
