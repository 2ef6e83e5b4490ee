"""A small asyncio HTTP/1.1 load client that records EVERY request, for the fault benchmarks.

`wrk` gives totals; a fault test needs a timeline (what failed, when, how fast) and a precise
classification of each failure, so this client keeps one record per request:

    t      seconds since the run started, when the request was sent
    lat    seconds until the response (or the error) was seen
    kind   "ok" (2xx/3xx) | "http" (a status >= 400 was answered) | "refused" (no listener) |
           "reset"/"eof" (connection died after the request was written: the request was LOST) |
           "timeout" (no answer within the per-request timeout: a HUNG request)
    status HTTP status or 0

Each stream has a fixed number of keep-alive connections in a closed loop (send, wait, repeat);
after any error the connection is reopened (after `retry_pause`, so a refused port is not spun on).
Every run is bounded by `duration`; every request by `timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    """`connections` keep-alive connections hammering `path` (GET)."""

    name: str
    path: str
    connections: int
    timeout: float = 5.0
    # Pause between requests on one connection; 0 = closed loop as fast as the server answers.
    think: float = 0.0


@dataclass
class Rec:
    t: float
    lat: float
    kind: str
    status: int = 0


@dataclass
class RunResult:
    """Every request of every stream, plus the timestamps of events injected by the scenario."""

    duration: float
    records: dict[str, list[Rec]] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    t0_monotonic: float = 0.0

    def summary(self, stream: str, t0: float = 0.0, t1: float = float("inf")) -> dict[str, Any]:
        """Counts per kind and latency percentiles for requests SENT within [t0, t1)."""
        recs = [r for r in self.records.get(stream, []) if t0 <= r.t < t1]
        kinds: dict[str, int] = {}
        for r in recs:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        statuses: dict[str, int] = {}
        for r in recs:
            if r.status:
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        lats = sorted(r.lat for r in recs)

        def pct(p: float) -> float:
            if not lats:
                return 0.0
            return round(lats[min(len(lats) - 1, int(p / 100 * len(lats)))] * 1000, 1)

        failed = [r for r in recs if r.kind != "ok"]
        fail_lats = sorted(r.lat for r in failed)
        return {
            "requests": len(recs),
            "kinds": kinds,
            "statuses": statuses,
            "p50_ms": pct(50),
            "p99_ms": pct(99),
            "max_ms": round(lats[-1] * 1000, 1) if lats else 0.0,
            "failed": len(failed),
            "failed_max_ms": round(fail_lats[-1] * 1000, 1) if fail_lats else 0.0,
        }

    def timeline(self, stream: str, bucket: float = 0.25) -> list[dict[str, Any]]:
        """Per-bucket counts of ok and failed responses by COMPLETION time (for plots/recovery)."""
        n = int(self.duration / bucket) + 1
        ok = [0] * n
        bad = [0] * n
        for r in self.records.get(stream, []):
            i = min(n - 1, int((r.t + r.lat) / bucket))
            if r.kind == "ok":
                ok[i] += 1
            else:
                bad[i] += 1
        return [{"t": round(i * bucket, 3), "ok": ok[i], "failed": bad[i]} for i in range(n)]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (Content-Length or chunked); return (status, server asked to close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = -1
    chunked = False
    close = False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v.strip())
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
        elif k == "connection" and "close" in v.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length > 0:
        await reader.readexactly(length)
    return status, close


async def _conn_loop(
    host: str, port: int, s: Stream, t_start: float, t_end: float, out: list[Rec], retry_pause: float
) -> None:
    req = f"GET {s.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    loop = asyncio.get_running_loop()
    while loop.time() < t_end:
        t0 = loop.time()
        kind, status = "ok", 0
        written = False
        close = False
        try:
            async with asyncio.timeout(s.timeout):
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(req)
                written = True
                await writer.drain()
                status, close = await _read_response(reader)
                kind = "ok" if status < 400 else "http"
        except TimeoutError:
            kind = "timeout"
        except ConnectionRefusedError:
            kind = "refused"
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError, OSError) as e:
            if not written:
                kind = "refused"
            elif isinstance(e, asyncio.IncompleteReadError) and not e.partial:
                kind = "eof"  # server closed a keep-alive connection as we sent on it
            else:
                kind = "reset"
        lat = loop.time() - t0
        out.append(Rec(round(t0 - t_start, 4), round(lat, 5), kind, status))
        if close and writer is not None and kind in ("ok", "http"):
            # `Connection: close` (a draining or recycling worker): a well-behaved client - and every load
            # balancer - opens a new connection instead of reusing this one
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            reader = writer = None
        elif kind not in ("ok", "http") and writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            reader = writer = None
            await asyncio.sleep(retry_pause)
        elif s.think:
            await asyncio.sleep(s.think)
    if writer is not None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _run(
    host: str,
    port: int,
    streams: Sequence[Stream],
    duration: float,
    actions: Sequence[tuple[float, str, Callable[[], Any]]],
    retry_pause: float,
) -> RunResult:
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_end = t_start + duration
    res = RunResult(duration=duration, records={s.name: [] for s in streams})
    res.t0_monotonic = t_start  # loop.time() is time.monotonic(): lets other threads align their events
    tasks = [
        asyncio.create_task(_conn_loop(host, port, s, t_start, t_end, res.records[s.name], retry_pause))
        for s in streams
        for _ in range(s.connections)
    ]

    async def scenario() -> None:
        for at, label, fn in sorted(actions, key=lambda a: a[0]):
            await asyncio.sleep(max(0.0, t_start + at - loop.time()))
            res.events[label + ":begin"] = round(loop.time() - t_start, 3)
            # actions block (pg_ctl, waits); run them in a thread so the client keeps measuring
            value = await asyncio.to_thread(fn)
            res.events[label] = round(loop.time() - t_start, 3)
            if isinstance(value, int | float):
                res.events[label + ":value"] = float(value)

    sc = asyncio.create_task(scenario())
    # hard bound: duration + the longest per-request timeout + slack
    limit = duration + max((s.timeout for s in streams), default=0) + 30
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=limit)
    await asyncio.wait_for(sc, timeout=60)
    return res


def run(
    port: int,
    streams: Sequence[Stream],
    duration: float,
    actions: Sequence[tuple[float, str, Callable[[], Any]]] = (),
    host: str = "127.0.0.1",
    retry_pause: float = 0.05,
) -> RunResult:
    """Run `streams` against 127.0.0.1:`port` for `duration` s, firing `actions` (at_s, label, fn) on time."""
    started = time.monotonic()
    res = asyncio.run(_run(host, port, streams, duration, actions, retry_pause))
    res.events.setdefault("wall", round(time.monotonic() - started, 3))
    return res
