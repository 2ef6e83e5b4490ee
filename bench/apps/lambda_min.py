"""Cold start baseline for /health: the smallest FastAPI + Mangum Lambda app (what a tutorial would write).

bench/bench_coldstart.py compares the service's `/health` cold start with this one, in the same run.
"""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
