"""The vps target's cost line: the host's flat monthly price."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi_deploy.cost import (
    Assumptions,
    Line,
    PriceTable,
    _by_type,
    _money,
    artifact_registry_lines,
    aws_lines,
)


def lines(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    return aws_lines(resources, a, p) + artifact_registry_lines(resources, a, p) + host_line(resources, a, p)


def host_line(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    if not _by_type(resources, "docker:index/container:Container"):
        return []
    price = a.vps_monthly_usd if a.vps_monthly_usd is not None else p("vps", "monthly")
    source = (
        "app.cost.vps_monthly_usd" if a.vps_monthly_usd is not None else p.prices["vps"]["monthly"].source
    )
    return [Line("VPS host", price, f"flat {_money(price)}/month ({source}); egress usually included")]
