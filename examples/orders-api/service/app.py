"""orders-api: a small FastAPI service with its own image, port (8080) and health paths.

Not this repository's sample service: no database, no settings module, no gunicorn. It reads ``PORT`` (the
components set it to the port they were given) and ``WEB_CONCURRENCY`` (the worker count the components'
tuning computes for the platform) and the tuning's keep-alive and drain timeouts, and serves:

- ``GET /healthz``: liveness, the process answers (the ALB, ECS and Cloud Run probe it);
- ``GET /readyz``: readiness, what the service needs is there (here: nothing external);
- ``POST /orders``, ``GET /orders/{order_id}``: an in-memory order book.

Run locally: ``pip install -r requirements.txt && python app.py`` (port 8080).
"""

import os
import threading

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

app = FastAPI(title="orders-api", version="1.0.0")
_lock = threading.Lock()
_orders: dict[int, "Order"] = {}


class NewOrder(BaseModel):
    """What a client sends."""

    item: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1000)


class Order(NewOrder):
    """A stored order."""

    id: int


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: no dependencies checked."""
    return {"status": "ok"}


@app.get("/readyz")
def readyz() -> dict[str, str]:
    """Readiness: this service has no dependencies, so ready as soon as it serves."""
    return {"status": "ready"}


@app.post("/orders", status_code=201)
def create_order(new: NewOrder) -> Order:
    """Store an order and return it with its id."""
    with _lock:
        order = Order(id=len(_orders) + 1, **new.model_dump())
        _orders[order.id] = order
    return order


@app.get("/orders/{order_id}")
def get_order(order_id: int) -> Order:
    """One order, or 404."""
    order = _orders.get(order_id)
    if order is None:
        raise HTTPException(status_code=404, detail="no such order")
    return order


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        "app:app",
        host="0.0.0.0",  # inside the container, behind the ALB / Cloud Run front end
        port=int(os.environ.get("PORT", "8080")),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        proxy_headers=True,
        # The components' tuning sets these for the platform's timeout chain (names from its gunicorn
        # settings): keep idle connections open longer than the load balancer does (no 502 on reuse), and
        # finish in-flight requests within the SIGTERM -> SIGKILL window. uvicorn itself reads
        # FORWARDED_ALLOW_IPS (which proxies' X-Forwarded-For to trust) from the environment.
        timeout_keep_alive=int(os.environ.get("GUNICORN_KEEPALIVE", "75")),
        timeout_graceful_shutdown=int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20")),
    )
