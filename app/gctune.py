"""Garbage-collector settings for long-running server processes, read from the env the deployer sets.

Two knobs (both measured in BENCHMARKS.md, "Deployed settings"):

* ``GC_FREEZE=true``: after the app is imported, ``gc.freeze()`` moves every object that exists into the
  permanent generation. The imported modules, classes, pydantic/SQLAlchemy metadata (~90k tracked
  objects) are never garbage, yet each full (gen-2) collection traversed all of them, pausing requests for
  tens of milliseconds. Frozen, they are skipped. Under a preloading gunicorn master the freeze happens
  once before the workers fork (and keeps the collector from writing to the shared pages, which
  preserves copy-on-write sharing).
* ``GC_THRESHOLD=g0,g1,g2``: ``gc.set_threshold``. Empty/unset = Python's default.

Unset variables change nothing, so tests, scripts and the Lambda handler behave as before unless they
call :func:`apply` themselves.
"""

from __future__ import annotations

import gc
import os


class GcConfigError(ValueError):
    """A GC_* variable the process cannot use; the message names it."""


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def threshold_from_env(environ: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """``GC_THRESHOLD`` as three non-negative ints, or None when unset/empty."""
    env = os.environ if environ is None else environ
    raw = env.get("GC_THRESHOLD", "").strip()
    if not raw:
        return None
    parts = [p.strip() for p in raw.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise GcConfigError(f"GC_THRESHOLD={raw!r}: expected three integers like '700,10,10'") from None
    if len(values) != 3 or any(v < 0 for v in values):
        raise GcConfigError(f"GC_THRESHOLD={raw!r}: expected three integers >= 0 like '700,10,10'")
    return values[0], values[1], values[2]


def freeze_from_env(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return _truthy(env.get("GC_FREEZE", ""))


def apply_threshold(environ: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """Set the collector's thresholds from ``GC_THRESHOLD`` (no-op when unset); returns what was set."""
    threshold = threshold_from_env(environ)
    if threshold is not None:
        gc.set_threshold(*threshold)
    return threshold


def freeze(environ: dict[str, str] | None = None, *, collect: bool = False) -> bool:
    """``gc.freeze()`` when ``GC_FREEZE`` is on; ``collect`` first drops the import-time garbage so it is
    not frozen with the rest. Returns whether it froze."""
    if not freeze_from_env(environ):
        return False
    if collect:
        gc.collect()
    gc.freeze()
    return True


def apply(environ: dict[str, str] | None = None) -> None:
    """Both knobs, for a process that has finished importing its app (e.g. a Lambda handler module)."""
    apply_threshold(environ)
    freeze(environ, collect=True)
