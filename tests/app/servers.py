"""Run the service under real gunicorn as a bounded subprocess, and read its JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.observability import JsonLineHandler
from devenv.services import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
STARTUP_S = 45.0
LOG_SETTLE_S = 3 * JsonLineHandler.MAX_DELAY_S


@dataclass
class Server:
    """A running gunicorn: its base URL and the file its stderr (our JSON logs) goes to."""

    url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def logs(self) -> list[dict[str, Any]]:
        # The workers write their lines in batches, at the latest MAX_DELAY_S after a line (app.observability
        # .JsonLineHandler): whatever the server logged before this call is in the file after that.
        time.sleep(LOG_SETTLE_S)
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def pids_for(self, request_ids: set[str]) -> dict[str, int]:
        return {
            r["request_id"]: r["pid"]
            for r in self.logs()
            if r.get("msg") == "request" and r.get("request_id") in request_ids
        }


@contextlib.contextmanager
def gunicorn(
    cmd: list[str], env: dict[str, str], cwd: Path, user: str | None = None, port: int | None = None
) -> Iterator[Server]:
    """Start `cmd` (a gunicorn command line) with PORT set; wait for /health; stop it on exit."""
    port = port or free_port()
    full_env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "PORT": str(port),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    argv = [runuser, "-u", user, "--", *cmd] if user else cmd
    with tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False) as logf:
        log_path = Path(logf.name)
        proc = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"gunicorn not healthy after {STARTUP_S}s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        yield Server(url, log_path, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log_path.unlink(missing_ok=True)


def fresh_get(url: str, **kw: Any) -> httpx.Response:
    """One request on a new TCP connection, so consecutive requests can land on different workers."""
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as c:
        return c.get(url, **kw)


def fresh_post(url: str, **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as c:
        return c.post(url, **kw)
