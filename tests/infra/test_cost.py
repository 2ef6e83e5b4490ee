"""Cost estimate: priced from the resources' own inputs and the stack's traffic assumptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import cost
from fastapi_deploy.cost import Assumptions, estimate, load_prices

PRICES = load_prices()


def res(type_: str, name: str, **inputs: Any) -> dict[str, Any]:
    return {"urn": f"urn:{name}", "type": type_, "name": name, "parent": None, "inputs": inputs}


def ecs_graph(
    desired: int = 2, cpu: str = "1024", memory: str = "2048", nats: int = 2
) -> list[dict[str, Any]]:
    graph = [
        res("aws:ecs/taskDefinition:TaskDefinition", "api-task", cpu=cpu, memory=memory),
        res("aws:ecs/service:Service", "api-svc", desiredCount=desired),
        res("aws:lb/loadBalancer:LoadBalancer", "api-alb", subnets=["subnet-a", "subnet-b"]),
        res("aws:cloudwatch/logGroup:LogGroup", "api-logs", retentionInDays=30),
        res("aws:cloudwatch/metricAlarm:MetricAlarm", "api-5xx"),
        res("aws:ecr/repository:Repository", "api-repo"),
    ]
    graph += [res("aws:ec2/natGateway:NatGateway", f"nat-{i}") for i in range(nats)]
    return graph


def line(est: cost.Estimate, prefix: str) -> cost.Line:
    (found,) = [x for x in est.lines if x.resource.startswith(prefix)]
    return found


def test_every_price_has_a_source_unit_and_the_table_is_dated() -> None:
    doc = yaml.safe_load(Path(cost.PRICES_PATH).read_text())
    assert doc["as_of"]
    assert "re-check" in doc["recheck"].lower() or "verify" in doc["recheck"].lower()
    providers = [k for k, v in doc.items() if isinstance(v, dict) and k != "regions"]
    assert providers == ["aws", "gcp", "vps"]
    assert sorted(cost.load_prices().prices) == sorted(providers)
    for provider in providers:
        for key, entry in doc[provider].items():
            if key == "region":
                continue
            assert entry["price"] > 0, key
            assert entry["source"].startswith("https://"), key
            assert entry["unit"], key


def test_fargate_line_is_tasks_times_hours_times_size() -> None:
    est = estimate(ecs_graph(desired=2), Assumptions(hours_per_month=730))
    expected = (
        2 * 730 * (1 * PRICES("aws", "fargate_vcpu_hour_x86") + 2 * PRICES("aws", "fargate_gb_hour_x86"))
    )
    assert line(est, "Service").monthly == pytest.approx(expected)
    assert "2 task(s)" in line(est, "Service").basis


def test_more_tasks_cost_more_and_total_is_the_sum_of_lines() -> None:
    small, big = estimate(ecs_graph(desired=2)), estimate(ecs_graph(desired=6))
    assert big.monthly_total > small.monthly_total
    assert small.monthly_total == pytest.approx(sum(x.monthly for x in small.lines), abs=0.01)


def test_nat_gateways_are_priced_per_gateway() -> None:
    one, two = estimate(ecs_graph(nats=1)), estimate(ecs_graph(nats=2))
    per_hour = PRICES("aws", "nat_gateway_hour") + PRICES("aws", "public_ipv4_hour")
    assert two.monthly_total - one.monthly_total == pytest.approx(730 * per_hour, rel=1e-6)


def test_traffic_assumptions_drive_lambda_cost() -> None:
    graph = [
        res("aws:lambda/function:Function", "api-fn", memorySize=1024, architectures=["x86_64"]),
        res("aws:apigatewayv2/api:Api", "api-http", protocolType="HTTP"),
    ]
    a = Assumptions(requests_per_month=1_000_000, avg_duration_ms=100)
    est = estimate(graph, a)
    gb_s = 1_000_000 * 0.1 * 1.0
    fn = gb_s * PRICES("aws", "lambda_gb_second_x86") + 1 * PRICES("aws", "lambda_requests_million")
    assert line(est, "Function").monthly == pytest.approx(fn)
    assert line(est, "Api").monthly == pytest.approx(PRICES("aws", "http_api_requests_million"))
    doubled = estimate(graph, Assumptions(requests_per_month=2_000_000, avg_duration_ms=100))
    assert line(doubled, "Function").monthly == pytest.approx(2 * fn)


def test_cloud_run_min_instances_add_idle_cost() -> None:
    def service(min_instances: int) -> list[dict[str, Any]]:
        template = {
            "containers": [{"resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}],
            "scaling": {"minInstanceCount": min_instances, "maxInstanceCount": 10},
        }
        return [res("gcp:cloudrunv2/service:Service", "api-run", template=template)]

    zero, one = estimate(service(0)), estimate(service(1))
    assert line(one, "Service").monthly > line(zero, "Service").monthly
    assert "internet egress" in {x.resource.split(" (")[0] for x in zero.lines}


def test_vps_is_flat_and_overridable_from_config() -> None:
    graph = [res("docker:index/container:Container", "api")]
    assert estimate(graph).monthly_total == pytest.approx(PRICES("vps", "monthly"))
    assert estimate(graph, Assumptions(vps_monthly_usd=5.0)).monthly_total == pytest.approx(5.0)


def test_assumptions_come_from_the_stack_config_cost_object() -> None:
    from fastapi_deploy.config import load_stack_file

    cfg = load_stack_file(Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.prod-ecs.yaml")
    a = Assumptions.from_config(cfg.cost)
    assert a.requests_per_month == cfg.cost.requests_per_month
    assert a.avg_duration_ms == cfg.cost.avg_duration_ms
    assert a.egress_gb_per_month == cfg.cost.egress_gb_per_month


def test_json_shape_matches_the_plan_contract() -> None:
    doc = estimate(ecs_graph()).as_dict()
    assert doc["currency"] == "USD"
    assert isinstance(doc["monthly_total"], float)
    assert all(set(x) == {"resource", "monthly", "basis"} for x in doc["lines"])
    assert doc["assumptions"]["prices_as_of"] == PRICES.as_of
    assert doc["assumptions"]["requests_per_month"] == Assumptions().requests_per_month


# --- prices by region --------------------------------------------------------------------------------
def test_every_region_has_a_read_date_sources_and_only_known_keys() -> None:
    doc = yaml.safe_load(Path(cost.PRICES_PATH).read_text())
    assert {"us-east-1", "eu-west-1"} <= set(doc["regions"]["aws"])
    assert {"us-central1", "europe-west1"} <= set(doc["regions"]["gcp"])
    for provider, entries in doc["regions"].items():
        for region, entry in entries.items():
            assert entry["read"], (provider, region)
            assert entry["sources"], region
            assert all(s.startswith("https://") for s in entry["sources"]), region
            assert entry["note"], region
            for key, price in (entry.get("prices") or {}).items():
                assert key in doc[provider], (region, key)
                assert price["price"] > 0, (region, key)
                assert price["source"].startswith("https://"), (region, key)
                assert price["evidence"], (region, key)  # where the regional figure was actually seen


def test_a_region_entry_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path(cost.PRICES_PATH).read_text())
    doc["regions"]["aws"]["eu-west-1"]["same_as_base"].append("fargate_typo")
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="fargate_typo"):
        load_prices(path)


def test_regional_prices_replace_the_base_figures_they_have() -> None:
    graph = ecs_graph(nats=1)
    east = estimate(graph, provider="aws", region="us-east-1")
    west = estimate(graph, provider="aws", region="eu-west-1")
    west_prices = PRICES.for_region("aws", "eu-west-1")
    assert west_prices("aws", "alb_hour") != PRICES("aws", "alb_hour")
    assert f"${west_prices('aws', 'alb_hour'):.4g}" in line(west, "LoadBalancer").basis
    assert line(west, "LoadBalancer").monthly > line(east, "LoadBalancer").monthly
    assert west.monthly_total != east.monthly_total
    doc = west.as_dict()
    assert doc["region"] == doc["price_region"] == "eu-west-1"
    assert doc["fallback_from"] is None
    assert doc["price_read"]
    assert doc["price_sources"]
    # Figures not found for eu-west-1 are listed (only those this estimate used), never silently reused.
    assert "fargate_vcpu_hour_x86" in doc["price_fallback_keys"]
    assert "lambda_gb_second_x86" not in doc["price_fallback_keys"]
    assert "alb_hour" not in doc["price_fallback_keys"]
    assert "documented fallback" in doc["price_note"]


def test_an_unknown_region_falls_back_to_the_base_region_and_says_so() -> None:
    graph = ecs_graph()
    moon = estimate(graph, provider="aws", region="xx-moon-1")
    east = estimate(graph, provider="aws", region="us-east-1")
    assert moon.monthly_total == east.monthly_total
    doc = moon.as_dict()
    assert doc["region"] == "xx-moon-1"
    assert doc["price_region"] == "us-east-1"
    assert doc["fallback_from"] == "xx-moon-1"
    assert "no price table for aws region xx-moon-1" in doc["price_note"]
    assert "us-east-1 prices (fallback)" in doc["price_note"]
    assert east.as_dict()["fallback_from"] is None


def test_europe_west1_is_tier_1_and_prices_cloud_run_like_us_central1() -> None:
    template = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}]}
    graph = [res("gcp:cloudrunv2/service:Service", "api-run", template=template)]
    eu = estimate(graph, provider="gcp", region="europe-west1")
    us = estimate(graph, provider="gcp", region="us-central1")
    assert line(eu, "Service").monthly == pytest.approx(line(us, "Service").monthly)
    doc = eu.as_dict()
    assert doc["price_region"] == "europe-west1"
    assert "run_vcpu_second" not in doc["price_fallback_keys"]  # confirmed equal (same tier)
    assert "internet_egress_gb" in doc["price_fallback_keys"]  # not found: said so


def test_vps_is_not_region_priced() -> None:
    doc = estimate(
        [res("docker:index/container:Container", "api")], provider="vps", region="eu-central-1"
    ).as_dict()
    assert doc["price_region"] is None
    assert doc["fallback_from"] is None
    assert "flat VPS price" in doc["price_note"]
