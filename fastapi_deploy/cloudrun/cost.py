"""The cloudrun target's cost lines: the service (instance time, requests) and egress."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi_deploy.cost import (
    SECONDS_PER_HOUR,
    Assumptions,
    Line,
    PriceTable,
    _by_type,
    _gib,
    _inputs,
    _label,
    _money,
    _num,
    artifact_registry_lines,
    aws_lines,
)


def lines(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    own: list[Line] = []
    month_s = a.hours_per_month * SECONDS_PER_HOUR
    for service in _by_type(resources, "gcp:cloudrunv2/service:Service"):
        template = _inputs(service).get("template") or {}
        containers = template.get("containers") or [{}]
        resources_block = containers[0].get("resources") or {}
        limits = resources_block.get("limits") or {}
        vcpu = _num(str(limits.get("cpu", "1")).removesuffix("m"), 1) / (
            1000 if str(limits.get("cpu", "")).endswith("m") else 1
        )
        gib = _gib(limits.get("memory", "512Mi"), 512)
        scaling = template.get("scaling") or _inputs(service).get("scaling") or {}
        min_instances = _num(scaling.get("minInstanceCount"), 0)
        always = resources_block.get("cpuIdle") is False
        active_s = a.requests_per_month * a.avg_duration_ms / 1000
        if always:
            instance_s = max(min_instances * month_s, active_s)
            cost = instance_s * (
                vcpu * p("gcp", "run_always_vcpu_second") + gib * p("gcp", "run_always_gib_second")
            )
            basis = (
                f"CPU always allocated: {instance_s:,.0f} instance-s x ({vcpu:g} vCPU x "
                f"{_money(p('gcp', 'run_always_vcpu_second'))} + {gib:g} GiB x "
                f"{_money(p('gcp', 'run_always_gib_second'))})"
            )
        else:
            idle_s = max(0.0, min_instances * month_s - active_s)
            cost = (
                active_s * (vcpu * p("gcp", "run_vcpu_second") + gib * p("gcp", "run_gib_second"))
                + idle_s * (vcpu * p("gcp", "run_idle_vcpu_second") + gib * p("gcp", "run_idle_gib_second"))
                + a.requests_per_month / 1e6 * p("gcp", "run_requests_million")
            )
            basis = (
                f"{active_s:,.0f} active instance-s x ({vcpu:g} vCPU x "
                f"{_money(p('gcp', 'run_vcpu_second'))} + "
                f"{gib:g} GiB x {_money(p('gcp', 'run_gib_second'))}) + {idle_s:,.0f} idle min-instance-s + "
                f"{a.requests_per_month / 1e6:g}M req x {_money(p('gcp', 'run_requests_million'))}"
            )
        own.append(Line(_label(service), cost, basis))
        own.append(
            Line(
                "internet egress (GCP)",
                a.egress_gb_per_month * p("gcp", "internet_egress_gb"),
                f"{a.egress_gb_per_month:g} GB x {_money(p('gcp', 'internet_egress_gb'))}",
            )
        )
    forwarding_rules = _by_type(resources, "gcp:compute/globalForwardingRule:GlobalForwardingRule")
    if forwarding_rules:  # app.domain: the global external Application Load Balancer in front
        n = len(forwarding_rules)
        hourly = p("gcp", "lb_forwarding_rules_hour")
        if n > 5:
            hourly += (n - 5) * p("gcp", "lb_forwarding_rule_extra_hour")
        own.append(
            Line(
                f"load balancer: {n} forwarding rules (custom domain)",
                a.hours_per_month * hourly,
                f"{a.hours_per_month:g} h x {_money(hourly)} (the first 5 rules share one rate)",
            )
        )
        own.append(
            Line(
                "load balancer: data processed",
                a.egress_gb_per_month * p("gcp", "lb_data_processed_gb"),
                f"{a.egress_gb_per_month:g} GB x {_money(p('gcp', 'lb_data_processed_gb'))} "
                "(the egress assumption)",
            )
        )
    return aws_lines(resources, a, p) + own + artifact_registry_lines(resources, a, p)
