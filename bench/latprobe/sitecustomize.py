"""Server-side latency probe for bench_deployed ``--server-latency`` (imported by Python at start-up when
this folder is first on PYTHONPATH; does nothing unless BENCH_LATPROBE is set).

Per request served by uvicorn's httptools protocol: the time from the moment the worker read the request
from its socket (``data_received``) to the moment the last byte of the answer was handed to the transport
(``send`` of the final ``http.response.body``). What wrk measures minus this is time outside the server's
Python code: in the kernel's socket queues, the scheduler, the client. Every variant of a run gets the same
probe (~1 us a request). Every 0.5 s after the first request since the last write, the worker appends one
line to ``$BENCH_LATPROBE.<pid>``: ``<unix time> <json {bucket: count}>``, buckets of 0.1 ms.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

if os.environ.get("BENCH_LATPROBE"):
    import asyncio

    import uvicorn.protocols.http.httptools_impl as _impl

    _pc = time.perf_counter
    _counts: dict[int, int] = {}
    _pending = [False]
    _prefix = os.environ["BENCH_LATPROBE"]

    def _write() -> None:
        _pending[0] = False
        if _counts:
            line = f"{time.time():.3f} {json.dumps(_counts, separators=(',', ':'))}\n"
            _counts.clear()
            with open(f"{_prefix}.{os.getpid()}", "a") as f:
                f.write(line)

    _data_received = _impl.HttpToolsProtocol.data_received
    _headers_complete = _impl.HttpToolsProtocol.on_headers_complete
    _send = _impl.RequestResponseCycle.send

    def data_received(self: Any, data: bytes) -> None:
        self._bench_read_at = _pc()
        return _data_received(self, data)

    def on_headers_complete(self: Any) -> None:
        _headers_complete(self)
        self.cycle._bench_read_at = getattr(self, "_bench_read_at", _pc())

    async def send(self: Any, message: Any) -> None:
        await _send(self, message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            bucket = int((_pc() - self._bench_read_at) * 10000)
            _counts[bucket] = _counts.get(bucket, 0) + 1
            if not _pending[0]:
                _pending[0] = True
                asyncio.get_running_loop().call_later(0.5, _write)

    _impl.HttpToolsProtocol.data_received = data_received  # type: ignore[method-assign]
    _impl.HttpToolsProtocol.on_headers_complete = on_headers_complete  # type: ignore[method-assign]
    _impl.RequestResponseCycle.send = send  # type: ignore[method-assign]
