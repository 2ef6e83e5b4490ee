"""``fastapi-deploy:vps:Domain``: the optional DNS record of the VPS target's domain.

Caddy already obtains and renews the certificate itself (ACME HTTP-01/TLS-ALPN-01) and redirects HTTP to
HTTPS; the only thing missing for a working domain is the record that points it at the host. With a zone,
this component makes it: an A record for an IPv4 ``host``, AAAA for IPv6, a CNAME for a host name, in a
Route 53 hosted zone (id or name) or a Cloud DNS managed zone. Caddy's first ACME attempt may run before
the record resolves; it retries on its own (with back-off) until it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi

# pulumi_aws / pulumi_gcp are imported where used: a VPS install has only the extra of its zone's cloud.

COMPONENT_TYPE = "fastapi-deploy:vps:Domain"
DNS_TTL_S = 300


@dataclass
class VpsDomainArgs:
    """Explicit inputs: the domain, the zone and where it lives, the host's address."""

    domain: str
    zone: str
    provider: Literal["route53", "clouddns"]
    host: str
    record_type: Literal["A", "AAAA", "CNAME"]
    #: GCP project of a Cloud DNS zone.
    project: str | None = None


class VpsDomain(pulumi.ComponentResource):
    """One DNS record ``domain`` -> the VPS host (Route 53 or Cloud DNS)."""

    record: Any  # aws.route53.Record | gcp.dns.RecordSet

    def __init__(self, name: str, args: VpsDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.provider == "clouddns" and not args.project:
            raise ValueError("VpsDomainArgs.project: required for a Cloud DNS zone")
        super().__init__(COMPONENT_TYPE, name, {"domain": args.domain}, opts)
        child = pulumi.ResourceOptions(parent=self)
        value = f"{args.host.rstrip('.')}." if args.record_type == "CNAME" else args.host
        if args.provider == "route53":
            import pulumi_aws as aws

            from fastapi_deploy import aws_dns

            self.record = aws.route53.Record(
                f"{name}-record",
                zone_id=aws_dns.hosted_zone_id(args.zone, self),
                name=args.domain,
                type=args.record_type,
                ttl=DNS_TTL_S,
                records=[value],
                opts=child,
            )
        else:
            import pulumi_gcp as gcp

            self.record = gcp.dns.RecordSet(
                f"{name}-record",
                project=args.project,
                managed_zone=args.zone,
                name=f"{args.domain}.",
                type=args.record_type,
                ttl=DNS_TTL_S,
                rrdatas=[value],
                opts=child,
            )
        self.register_outputs({"domain": args.domain})
