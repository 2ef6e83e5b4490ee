"""Monthly cost estimate from the recorded resource graph and traffic assumptions.

Pure functions: resources (as the offline plan records them: type token + camelCase inputs) plus an
:class:`Assumptions` → priced lines, using the dated price table in ``fastapi_deploy/prices.yaml`` (each price
with its source URL). What the estimate knows comes from the same inputs a deploy would send — task
size, desired count, memory size, min instances — so changing the stack config changes the estimate.

Deliberately ignored (stated in every estimate): free tiers, savings plans / committed use discounts,
taxes. Traffic is spread evenly over the month; at low traffic Cloud Run instance time is taken as
requests x average duration (no overlap), an upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_PATH = Path(__file__).with_name("prices.yaml")
SECONDS_PER_HOUR = 3600
#: One ALB LCU covers 25 new connections/s, 3000 active connections/min, 1 GB/h processed, 1000 rule evals/s.
LCU_NEW_CONNECTIONS_PER_S = 25.0
LCU_GB_PER_HOUR = 1.0


@dataclass(frozen=True)
class Assumptions:
    """Traffic and usage assumptions. The first four come from ``app.cost`` in the stack config."""

    requests_per_month: int = 10_000_000
    avg_duration_ms: float = 100.0
    egress_gb_per_month: float = 50.0
    hours_per_month: float = 730.0
    #: JSON access log + app logs per request (~1 KB) → CloudWatch ingestion.
    log_bytes_per_request: int = 1000
    #: Traffic through NAT: image pulls, CloudWatch/SSM API calls from private subnets.
    nat_processed_gb_per_month: float = 20.0
    #: Registry storage for the kept images (~250 MB each x a handful).
    image_storage_gb: float = 2.0
    #: Flat monthly price of the VPS (None: the price table's default).
    vps_monthly_usd: float | None = None

    @classmethod
    def from_config(cls, cost: Any) -> Assumptions:
        """Build from ``app.cost`` (a pydantic model or mapping); unknown keys are ignored."""
        data = cost.model_dump() if hasattr(cost, "model_dump") else dict(cost or {})
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Price:
    """One price with its unit and where it came from."""

    price: float
    unit: str
    source: str


@dataclass(frozen=True)
class RegionPrices:
    """One region's entry in ``regions:`` of the price table: what differs from the base region, and why.

    ``prices`` are the figures that differ (each with its source); ``same_as_base`` the keys confirmed
    equal to the base figure; every other key of the provider is a documented fallback to the base.
    """

    provider: str
    region: str
    read: str
    sources: tuple[str, ...]
    note: str
    prices: Mapping[str, Price] = field(default_factory=dict)
    same_as_base: frozenset[str] = frozenset()
    tier: int | None = None


@dataclass(frozen=True)
class PriceTable:
    """The dated price table (``fastapi_deploy/prices.yaml``), resolved for one region by :meth:`for_region`.

    ``prices`` of a table fresh from :func:`load_prices` are the base regions' (aws: us-east-1, gcp:
    us-central1). :meth:`for_region` returns a copy whose provider prices are that region's, and which
    records which region was asked for, whose prices are used, and which figures fell back to the base.
    """

    as_of: str
    currency: str
    recheck: str
    prices: Mapping[str, Mapping[str, Price]]
    regions: Mapping[str, Mapping[str, RegionPrices]] = field(default_factory=dict)
    base_regions: Mapping[str, str] = field(default_factory=dict)
    #: Set by :meth:`for_region`: the provider priced, the region asked for, the region whose table is used.
    provider: str | None = None
    requested_region: str | None = None
    price_region: str | None = None
    #: Keys priced with the base region's figure because the region's own was not found.
    fallback_keys: tuple[str, ...] = ()
    #: The keys an estimate looked up (so the plan lists only the fallbacks that priced something).
    used: set[str] = field(default_factory=set, compare=False, hash=False)

    def __call__(self, provider: str, key: str) -> float:
        if provider == self.provider:
            self.used.add(key)
        return self.prices[provider][key].price

    @property
    def used_fallback_keys(self) -> tuple[str, ...]:
        """The fallback figures this table actually priced with (all of them before any lookup)."""
        return tuple(k for k in self.fallback_keys if k in self.used) if self.used else self.fallback_keys

    def sources(self) -> list[str]:
        return sorted({p.source for table in self.prices.values() for p in table.values()})

    def for_region(self, provider: str, region: str | None) -> PriceTable:
        """This table with ``provider``'s prices for ``region``; an unknown region falls back to the base.

        Never silent: the result's :attr:`fallback_from` names the region that had no table, and
        :attr:`fallback_keys` the figures that are the base region's.
        """
        base = self.base_regions.get(provider)
        if provider not in self.regions or not region:
            # VPS: one flat price, nothing regional to resolve.
            return replace(
                self, provider=provider, requested_region=region, price_region=None, fallback_keys=()
            )
        entry = self.regions[provider].get(region)
        if entry is None:
            return replace(
                self,
                provider=provider,
                requested_region=region,
                price_region=base,
                fallback_keys=tuple(sorted(self.prices[provider])),
            )
        merged = {**self.prices[provider], **entry.prices}
        fallback = (
            ()
            if region == base
            else tuple(
                sorted(
                    k for k in self.prices[provider] if k not in entry.prices and k not in entry.same_as_base
                )
            )
        )
        return replace(
            self,
            prices={**self.prices, provider: merged},
            provider=provider,
            requested_region=region,
            price_region=region,
            fallback_keys=fallback,
        )

    @property
    def fallback_from(self) -> str | None:
        """The region asked for when it has no price table (priced with the base region's), else None."""
        if self.requested_region and self.price_region and self.requested_region != self.price_region:
            return self.requested_region
        return None

    @property
    def region_entry(self) -> RegionPrices | None:
        if self.provider is None or self.price_region is None:
            return None
        return self.regions.get(self.provider, {}).get(self.price_region)

    def region_note(self) -> str:
        """One sentence for the text plan: whose prices, from when, and what fell back."""
        if self.provider is None:
            return (
                f"base-region prices ({', '.join(f'{k}: {v}' for k, v in sorted(self.base_regions.items()))})"
            )
        if self.price_region is None:
            return f"flat {self.provider.upper()} price (not region-dependent)"
        if self.fallback_from:
            return (
                f"NOTE: no price table for {self.provider} region {self.fallback_from}; priced with "
                f"{self.price_region} prices (fallback) - real prices there may differ"
            )
        entry = self.region_entry
        read = f"read {entry.read}" if entry else f"as of {self.as_of}"
        text = f"{self.price_region} prices ({read}; sources in the JSON cost.price_sources)"
        if self.used_fallback_keys:
            base = self.base_regions.get(self.provider, "base")
            text += (
                f"; {len(self.used_fallback_keys)} figure(s) used here are the {base} ones, not found for "
                f"{self.price_region} (documented fallback): {', '.join(self.used_fallback_keys)}"
            )
        return text

    def region_dict(self) -> dict[str, Any]:
        """The JSON fields added to ``cost`` (the plan contract only grows)."""
        entry = self.region_entry
        return {
            "region": self.requested_region,
            "price_region": self.price_region,
            "fallback_from": self.fallback_from,
            "price_fallback_keys": list(self.used_fallback_keys),
            "price_read": entry.read if entry else None,
            "price_sources": list(entry.sources) if entry else [],
            "price_note": self.region_note(),
        }


def _price(v: Mapping[str, Any]) -> Price:
    return Price(float(v["price"]), str(v["unit"]), str(v["source"]))


@lru_cache(maxsize=4)
def load_prices(path: str | Path = PRICES_PATH) -> PriceTable:
    """Parse the price table; every entry must carry price, unit and source, every region read + sources."""
    import yaml

    # The table grew with the regions; libyaml's loader (when present) parses it ~3x faster than pure Python.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(Path(path).read_text(), Loader=loader)  # noqa: S506 - a safe loader either way
    prices: dict[str, dict[str, Price]] = {}
    base_regions: dict[str, str] = {}
    # Every top-level table but ``regions`` is a price provider's (a target's ``Target.price_provider``):
    # the table, not a list here, says which there are.
    for provider, section in doc.items():
        if provider == "regions" or not isinstance(section, dict):
            continue
        prices[provider] = {key: _price(v) for key, v in section.items() if isinstance(v, dict)}
        if section.get("region"):
            base_regions[provider] = str(section["region"])
    regions: dict[str, dict[str, RegionPrices]] = {}
    for provider, entries in (doc.get("regions") or {}).items():
        for region, e in (entries or {}).items():
            overrides = {key: _price(v) for key, v in (e.get("prices") or {}).items()}
            unknown = (set(overrides) | set(e.get("same_as_base") or ())) - set(prices.get(provider, {}))
            if unknown:
                raise ValueError(f"{path}: regions.{provider}.{region}: unknown price keys {sorted(unknown)}")
            regions.setdefault(provider, {})[region] = RegionPrices(
                provider=provider,
                region=region,
                read=str(e["read"]),
                sources=tuple(str(s) for s in e["sources"]),
                note=" ".join(str(e.get("note", "")).split()),
                prices=overrides,
                same_as_base=frozenset(e.get("same_as_base") or ()),
                tier=e.get("tier"),
            )
    return PriceTable(
        str(doc["as_of"]),
        str(doc.get("currency", "USD")),
        str(doc.get("recheck", "")),
        prices,
        regions,
        base_regions,
    )


@dataclass(frozen=True)
class Line:
    """One priced line of the estimate."""

    resource: str
    monthly: float
    basis: str

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "monthly": round(self.monthly, 2), "basis": self.basis}


@dataclass(frozen=True)
class Estimate:
    """The monthly estimate: lines, total, assumptions and the price table's date and sources."""

    lines: list[Line]
    assumptions: Assumptions
    prices: PriceTable

    @property
    def monthly_total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.prices.currency,
            "monthly_total": self.monthly_total,
            "lines": [line.as_dict() for line in self.lines],
            "assumptions": {
                **self.assumptions.as_dict(),
                "prices_as_of": self.prices.as_of,
                "prices_note": self.prices.recheck,
                "ignored": "free tiers, savings plans/committed use discounts, taxes",
            },
            "sources": self.prices.sources(),
            **self.prices.region_dict(),
        }


# --- helpers -----------------------------------------------------------------------------------------
def _type(resource: Mapping[str, Any]) -> str:
    return str(resource.get("type", ""))


def _inputs(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    inputs = resource.get("inputs")
    return inputs if isinstance(inputs, Mapping) else {}


def _label(resource: Mapping[str, Any]) -> str:
    return f"{_type(resource).rsplit(':', 1)[-1]} {resource.get('name', '')}".strip()


def _num(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _by_type(resources: Iterable[Mapping[str, Any]], token: str) -> list[Mapping[str, Any]]:
    return [r for r in resources if _type(r) == token]


def _gib(value: Any, default_mib: float) -> float:
    text = str(value or "").strip()
    for suffix, scale in (("Gi", 1024.0), ("G", 1e9 / 2**20), ("Mi", 1.0), ("M", 1e6 / 2**20)):
        if text.endswith(suffix):
            return _num(text[: -len(suffix)], default_mib) * scale / 1024
    return _num(text or None, default_mib) / 1024


def _money(x: float) -> str:
    return f"${x:,.6g}" if x < 0.01 else f"${x:,.4g}"


# --- per-platform pricing ----------------------------------------------------------------------------
def aws_lines(
    resources: list[Mapping[str, Any]],
    a: Assumptions,
    p: PriceTable,
    *,
    before: Iterable[Line] = (),
    after: Iterable[Line] = (),
    transfer: bool = False,
) -> list[Line]:
    """The AWS lines every AWS-hosted stack shares (NAT gateways, log groups, alarms, ECR, data transfer
    out), around the target's own lines: ``before`` (compute in a VPC) and ``after`` (serverless). Data
    transfer out is priced when there are AWS lines (or ``transfer``: the target says it serves traffic)."""
    lines: list[Line] = list(before)
    hours = a.hours_per_month
    nats = _by_type(resources, "aws:ec2/natGateway:NatGateway")
    for nat in nats:
        gb = a.nat_processed_gb_per_month / len(nats)
        lines.append(
            Line(
                _label(nat),
                hours * (p("aws", "nat_gateway_hour") + p("aws", "public_ipv4_hour"))
                + gb * p("aws", "nat_gateway_gb"),
                f"{hours:g} h x ({_money(p('aws', 'nat_gateway_hour'))} + its public IPv4 "
                f"{_money(p('aws', 'public_ipv4_hour'))}) + {gb:g} GB x {_money(p('aws', 'nat_gateway_gb'))}",
            )
        )
    log_groups = _by_type(resources, "aws:cloudwatch/logGroup:LogGroup")
    if log_groups:
        gb = a.requests_per_month * a.log_bytes_per_request / 1e9
        for group in log_groups:
            share = gb / len(log_groups)
            retention_days = _num(_inputs(group).get("retentionInDays"), 3653)
            stored = share * min(retention_days / 30, 120)
            lines.append(
                Line(
                    _label(group),
                    share * p("aws", "logs_ingest_gb") + stored * p("aws", "logs_storage_gb_month"),
                    f"{share:.3g} GB ingested x {_money(p('aws', 'logs_ingest_gb'))} + {stored:.3g} GB kept "
                    f"({retention_days:g} d retention) x {_money(p('aws', 'logs_storage_gb_month'))}",
                )
            )
    alarms = _by_type(resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        lines.append(
            Line(
                f"{len(alarms)} CloudWatch alarms",
                len(alarms) * p("aws", "alarm_month"),
                f"{len(alarms)} x {_money(p('aws', 'alarm_month'))}",
            )
        )
    lines.extend(after)
    for repo in _by_type(resources, "aws:ecr/repository:Repository"):
        lines.append(
            Line(
                _label(repo),
                a.image_storage_gb * p("aws", "ecr_storage_gb_month"),
                f"{a.image_storage_gb:g} GB x {_money(p('aws', 'ecr_storage_gb_month'))}",
            )
        )
    if any(_type(r).startswith("aws:") for r in resources) and (transfer or lines):
        lines.append(
            Line(
                "data transfer out (AWS)",
                a.egress_gb_per_month * p("aws", "data_transfer_out_gb"),
                f"{a.egress_gb_per_month:g} GB x {_money(p('aws', 'data_transfer_out_gb'))}",
            )
        )
    return lines


def artifact_registry_lines(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    """Artifact Registry storage for the kept images."""
    lines: list[Line] = []
    for repo in _by_type(resources, "gcp:artifactregistry/repository:Repository"):
        lines.append(
            Line(
                _label(repo),
                a.image_storage_gb * p("gcp", "artifact_registry_gb_month"),
                f"{a.image_storage_gb:g} GB x {_money(p('gcp', 'artifact_registry_gb_month'))}",
            )
        )
    return lines


def __getattr__(name: str) -> Any:
    """``TARGET_PROVIDER``: which price table each registered target is priced with."""
    if name == "TARGET_PROVIDER":
        from fastapi_deploy import registry

        return {t.key: t.price_provider for t in registry.all_targets()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def estimate(
    resources: Iterable[Mapping[str, Any]],
    assumptions: Assumptions | None = None,
    prices: PriceTable | None = None,
    *,
    provider: str | None = None,
    region: str | None = None,
    target: str | None = None,
) -> Estimate:
    """Price a recorded resource graph. Resources are dicts with ``type``, ``name`` and ``inputs``.

    The lines are the target's (``Target.cost_lines`` of fastapi_deploy/registry.py); without ``target`` the
    targets whose compute resources are in the graph price it (only the shared AWS/Artifact Registry lines
    when none is). With ``provider`` (aws/gcp/vps) and ``region`` the provider's prices are that region's
    (:meth:`PriceTable.for_region`); a region without a table is priced with the base region's and the
    estimate says so. Without them the base regions' prices are used (and the estimate says that too).
    """
    from fastapi_deploy import registry

    graph = list(resources)
    a = assumptions or Assumptions()
    p = prices or load_prices()
    if provider is not None:
        p = p.for_region(provider, region)
    p = replace(p, used=set())
    pricers = [registry.get(target)] if target is not None else list(registry.for_resources(graph))
    if pricers:
        lines = [line for spec in pricers for line in spec.cost_lines(graph, a, p)]
    else:
        lines = aws_lines(graph, a, p) + artifact_registry_lines(graph, a, p)
    lines = [line for line in lines if not math.isnan(line.monthly)]
    return Estimate(lines, a, p)
