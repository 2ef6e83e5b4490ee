"""The ecs target's cost lines: Fargate tasks and the ALB, then the shared AWS lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi_deploy.cost import (
    LCU_GB_PER_HOUR,
    LCU_NEW_CONNECTIONS_PER_S,
    SECONDS_PER_HOUR,
    Assumptions,
    Line,
    PriceTable,
    _by_type,
    _inputs,
    _label,
    _money,
    _num,
    artifact_registry_lines,
    aws_lines,
)


def lines(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    own: list[Line] = []
    hours = a.hours_per_month
    tasks = _by_type(resources, "aws:ecs/taskDefinition:TaskDefinition")
    for service in _by_type(resources, "aws:ecs/service:Service"):
        if not tasks:
            break
        task = _inputs(tasks[0])
        count = _num(_inputs(service).get("desiredCount"), 1)
        vcpu = _num(task.get("cpu"), 256) / 1024
        gb = _num(task.get("memory"), 512) / 1024
        arm = str((task.get("runtimePlatform") or {}).get("cpuArchitecture", "X86_64")).upper() == "ARM64"
        sfx = "arm" if arm else "x86"
        cpu_price, gb_price = p("aws", f"fargate_vcpu_hour_{sfx}"), p("aws", f"fargate_gb_hour_{sfx}")
        own.append(
            Line(
                _label(service),
                count * hours * (vcpu * cpu_price + gb * gb_price),
                f"{count:g} task(s) x {hours:g} h x ({vcpu:g} vCPU x {_money(cpu_price)} + {gb:g} GB x "
                f"{_money(gb_price)}) Fargate {sfx}; autoscaling above desired count adds to this",
            )
        )
    rps = a.requests_per_month / (hours * SECONDS_PER_HOUR)
    for lb in _by_type(resources, "aws:lb/loadBalancer:LoadBalancer"):
        subnets = len(_inputs(lb).get("subnets") or []) or 2
        # LCU = max over its dimensions; new connections ≈ requests (no client keepalive): upper bound.
        lcu = max(rps / LCU_NEW_CONNECTIONS_PER_S, (a.egress_gb_per_month / hours) / LCU_GB_PER_HOUR)
        own.append(
            Line(
                _label(lb),
                hours * (p("aws", "alb_hour") + lcu * p("aws", "alb_lcu_hour"))
                + subnets * hours * p("aws", "public_ipv4_hour"),
                f"{hours:g} h x ({_money(p('aws', 'alb_hour'))} + {lcu:.3f} LCU x "
                f"{_money(p('aws', 'alb_lcu_hour'))}) + {subnets} public IPv4 x "
                f"{_money(p('aws', 'public_ipv4_hour'))}/h",
            )
        )
    return aws_lines(resources, a, p, before=own, transfer=bool(tasks)) + artifact_registry_lines(
        resources, a, p
    )
