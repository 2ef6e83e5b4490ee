"""The lambda target's cost lines: the function, provisioned concurrency, the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi_deploy.cost import (
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
    for function in _by_type(resources, "aws:lambda/function:Function"):
        fn = _inputs(function)
        gb = _num(fn.get("memorySize"), 128) / 1024
        arm = "arm64" in [str(x) for x in fn.get("architectures") or []]
        price = p("aws", "lambda_gb_second_arm" if arm else "lambda_gb_second_x86")
        gb_s = a.requests_per_month * a.avg_duration_ms / 1000 * gb
        own.append(
            Line(
                _label(function),
                gb_s * price + a.requests_per_month / 1e6 * p("aws", "lambda_requests_million"),
                f"{a.requests_per_month:,} req x {a.avg_duration_ms:g} ms x {gb:g} GB = {gb_s:,.0f} GB-s x "
                f"{_money(price)} + {a.requests_per_month / 1e6:g}M x "
                f"{_money(p('aws', 'lambda_requests_million'))}",
            )
        )
        for pc in _by_type(resources, "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"):
            n = _num(_inputs(pc).get("provisionedConcurrentExecutions"), 0)
            gb_s = n * gb * hours * SECONDS_PER_HOUR
            own.append(
                Line(
                    _label(pc),
                    gb_s * p("aws", "lambda_provisioned_gb_second"),
                    f"{n:g} x {gb:g} GB x {hours:g} h = {gb_s:,.0f} GB-s x "
                    f"{_money(p('aws', 'lambda_provisioned_gb_second'))}",
                )
            )
    for api in _by_type(resources, "aws:apigatewayv2/api:Api"):
        own.append(
            Line(
                _label(api),
                a.requests_per_month / 1e6 * p("aws", "http_api_requests_million"),
                f"{a.requests_per_month / 1e6:g}M requests x {_money(p('aws', 'http_api_requests_million'))}",
            )
        )
    return aws_lines(resources, a, p, after=own) + artifact_registry_lines(resources, a, p)
