"""8. Runtime footprint: what the image's Python environment weighs, and what dominates it.

No Docker engine here, so we reproduce the image's install step: export exactly the runtime
dependencies from uv.lock (`uv export --no-dev --no-default-groups`), install them into an empty
target directory with bytecode compiled (as the Dockerfile's `uv sync` does), and measure the
on-disk size per distribution. The base image (python:3.12-slim, ~120-150 MB) comes on top.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import harness as h


def _du(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def _owner_map(target: Path) -> dict[str, str]:
    """Top-level entry (package dir / module file) -> distribution name, from each RECORD."""
    owners: dict[str, str] = {}
    for info in target.glob("*.dist-info"):
        dist = info.name.rsplit("-", 1)[0].split("-")[0]
        record = info / "RECORD"
        owners[info.name] = dist
        if not record.exists():
            continue
        for line in record.read_text().splitlines():
            top = line.split(",", 1)[0].split("/", 1)[0]
            if top and top not in owners and not top.startswith(".."):
                owners[top] = dist
    return owners


def run(quick: bool = False) -> dict[str, Any]:
    uv = shutil.which("uv")
    if not uv:
        raise RuntimeError("uv not found on PATH")
    export_cmd = [
        uv,
        "export",
        "--frozen",
        "--no-dev",
        "--no-default-groups",
        "--no-hashes",
        "--no-emit-project",
    ]
    reqs = subprocess.run(
        export_cmd, cwd=h.REPO, check=True, capture_output=True, text=True, timeout=120
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    try:
        (tmp / "requirements.txt").write_text(reqs)
        target = tmp / "site"
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--python",
                h.PY,
                "--compile-bytecode",
                "-r",
                str(tmp / "requirements.txt"),
            ],
            check=True,
            timeout=600,
        )
        owners = _owner_map(target)
        per_dist: dict[str, int] = {}
        for entry in target.iterdir():
            dist = owners.get(entry.name, "(unowned: " + entry.name + ")")
            per_dist[dist] = per_dist.get(dist, 0) + _du(entry)
        total = sum(per_dist.values())
        rows = [
            {"distribution": d, "mib": round(b / 2**20, 1), "share_pct": round(100 * b / total, 1)}
            for d, b in sorted(per_dist.items(), key=lambda kv: -kv[1])
        ]
        aws = sum(
            b for d, b in per_dist.items() if d.lower() in ("botocore", "boto3", "s3transfer", "awslambdaric")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {total / 2**20:.1f} MiB in {len(rows)} distributions")
    print(h.table(rows[:15], ["distribution", "mib", "share_pct"]))
    data = {
        "machine": h.machine_info(),
        "command": " ".join(export_cmd) + " | uv pip install --target DIR --compile-bytecode -r -",
        "distributions": len(rows),
        "total_mib": round(total / 2**20, 1),
        "aws_sdk_and_lambda_ric_mib": round(aws / 2**20, 1),
        "requirements": [ln for ln in reqs.splitlines() if ln and not ln.startswith((" ", "#"))],
        "rows": rows,
    }
    h.save_json("footprint", data)
    h.save_csv("footprint", rows)
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
