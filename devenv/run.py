"""`make run`: the service locally exactly as the container runs it.

Starts throwaway PostgreSQL and Redis, applies the Alembic migrations, creates a demo user with a random
password (printed), then runs the Dockerfile's own CMD (gunicorn + app/gunicorn_conf.py) in the
foreground until Ctrl-C. Nothing here is part of the image.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from devenv.services import postgres, redis

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        buf += line
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def _exec_form(args: str, what: str) -> list[str]:
    try:
        cmd = json.loads(args)
    except ValueError:
        raise ValueError(f"Dockerfile {what} must use the JSON exec form, got: {args}") from None
    if not (isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd)):
        raise ValueError(f"Dockerfile {what} must be a non-empty JSON list of strings, got: {args}")
    return cmd


def final_stage(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    instrs = dockerfile_instructions(path)
    last_from = max(i for i, (name, _) in enumerate(instrs) if name == "FROM")
    return instrs[last_from:]


def dockerfile_cmd(path: Path = DOCKERFILE) -> list[str]:
    """The final stage's CMD (exec form)."""
    cmds = [args for name, args in final_stage(path) if name == "CMD"]
    if not cmds:
        raise ValueError("Dockerfile final stage has no CMD")
    return _exec_form(cmds[-1], "CMD")


def dockerfile_healthcheck(path: Path = DOCKERFILE) -> list[str]:
    """The final stage's HEALTHCHECK command (exec form, options stripped)."""
    checks = [args for name, args in final_stage(path) if name == "HEALTHCHECK"]
    if not checks:
        raise ValueError("Dockerfile final stage has no HEALTHCHECK")
    _, sep, rest = checks[-1].partition("CMD ")
    if not sep:
        raise ValueError(f"HEALTHCHECK without CMD: {checks[-1]}")
    return _exec_form(rest.strip(), "HEALTHCHECK CMD")


def main() -> int:
    port = os.environ.get("PORT", "8000")
    print("starting throwaway PostgreSQL and Redis ...", flush=True)
    with postgres() as pg, redis() as rd:
        env = {
            **os.environ,
            "APP_ENV": os.environ.get("APP_ENV", "development"),
            "DATABASE_URL": pg.url,
            "REDIS_URL": rd.url,
            "PORT": port,
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
            # The venv's gunicorn even when started as `.venv/bin/python -m devenv.run` (not via `uv run`).
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ROOT / "app" / "alembic.ini"), "upgrade", "head"],
            env=env,
            check=True,
            timeout=120,
        )
        password = secrets.token_urlsafe(12)
        subprocess.run(
            [sys.executable, "-m", "app.manage", "create-user", "demo"],
            env={**env, "NEW_USER_PASSWORD": password},
            check=True,
            timeout=60,
            cwd=ROOT,
        )
        cmd = dockerfile_cmd()
        print(
            f"\nservice on http://127.0.0.1:{port}  (/health, /ready, /metrics, /docs)\n"
            f'demo login: POST /api/auth/login {{"username": "demo", "password": "{password}"}}\n'
            f"running the image's CMD: {' '.join(cmd)}   (Ctrl-C to stop)\n",
            flush=True,
        )
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)  # gunicorn drains within GUNICORN_GRACEFUL_TIMEOUT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
