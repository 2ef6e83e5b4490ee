"""CloudWatch Logs for `infra logs` on ECS and Lambda: FilterLogEvents, server-side filtered, followed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from fastapi_deploy.operate import LogQuery

#: Events per FilterLogEvents page; a page is printed before the next one is asked for.
PAGE = 1000


def filter_pattern(grep: str) -> str:
    """A CloudWatch filter pattern matching the exact text (a quoted term; embedded quotes escaped)."""
    return json.dumps(grep)


def tail(
    client: Any,
    group: str,
    query: LogQuery,
    out: Callable[[str], None],
    sleep: Callable[[float], None],
) -> int:
    """Print events of ``group`` since ``query.since``; with ``query.follow`` poll for new ones.

    Each poll asks from the newest timestamp seen (inclusive) and skips event ids already printed, so an
    event is printed once even when several share a millisecond. Returns the exit code.
    """
    from fastapi_deploy.operate import OperateError, log_line

    start = int(query.since.timestamp() * 1000)
    seen: set[str] = set()
    polls = 0
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "limit": PAGE}
        if query.grep:
            kwargs["filterPattern"] = filter_pattern(query.grep)
        token: str | None = None
        newest = start
        while True:
            if token:
                kwargs["nextToken"] = token
            try:
                page = client.filter_log_events(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise OperateError(
                        f"log group {group} does not exist (nothing logged yet, or the stack output "
                        "`log_group` is stale)"
                    ) from exc
                raise
            events = sorted(page.get("events", []), key=lambda e: (e.get("timestamp", 0), e.get("eventId")))
            for event in events:
                event_id = str(event.get("eventId") or (event.get("timestamp"), event.get("message")))
                if event_id in seen:
                    continue
                seen.add(event_id)
                ts = int(event.get("timestamp", 0))
                newest = max(newest, ts)
                out(log_line(datetime.fromtimestamp(ts / 1000, UTC), str(event.get("message", ""))))
            token = page.get("nextToken")
            if not token:
                break
        polls += 1
        if not query.follow or (query.max_polls is not None and polls >= query.max_polls):
            return 0
        start = newest
        sleep(query.interval_s)
