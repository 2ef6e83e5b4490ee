"""``fastapi-deploy:ecs:Domain``: a custom domain on the ECS target's ALB.

Creates, under its own component (so the service component only wires it in):

* with no certificate given: an ACM certificate for ``domain`` (DNS validation), its validation CNAME in
  the hosted zone and an ``aws.acm.CertificateValidation`` that ``pulumi up`` waits on (ACM usually issues
  within minutes once the CNAME resolves; it gives up after 72 hours);
* alias records ``domain`` -> the ALB in the hosted zone (A; AAAA too when the ALB is dual-stack).

:attr:`EcsDomain.certificate_arn` is the VALIDATED certificate's ARN (or the given one): the HTTPS listener
must take it, so the listener is only created once the certificate is issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from fastapi_deploy import aws_dns

COMPONENT_TYPE = "fastapi-deploy:ecs:Domain"


@dataclass
class EcsDomainArgs:
    """Explicit inputs (no stack config): the domain, its zone and the ALB it points at."""

    domain: str
    #: Route 53 hosted zone id or public zone name; None = no records (only with ``certificate_arn``).
    zone: str | None
    alb_dns_name: pulumi.Input[str]
    alb_zone_id: pulumi.Input[str]
    #: An issued certificate to use instead of creating one.
    certificate_arn: str | None = None
    #: The ALB answers IPv6 (``ip_address_type=dualstack``): add the AAAA alias too.
    ipv6: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class EcsDomain(pulumi.ComponentResource):
    """ACM certificate (DNS-validated, awaited) + Route 53 alias records for an ALB."""

    certificate_arn: pulumi.Output[str]
    zone_id: pulumi.Input[str] | None

    def __init__(self, name: str, args: EcsDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.zone is None and args.certificate_arn is None:
            raise ValueError("EcsDomainArgs: give zone (to create the certificate) or certificate_arn")
        super().__init__(COMPONENT_TYPE, name, {"domain": args.domain}, opts)
        self.zone_id = aws_dns.hosted_zone_id(args.zone, self) if args.zone else None
        if args.certificate_arn:
            self.certificate_arn = pulumi.Output.from_input(args.certificate_arn)
        else:
            assert self.zone_id is not None
            _cert, _record, validation = aws_dns.dns_validated_certificate(
                name, args.domain, self.zone_id, args.tags, self
            )
            self.certificate_arn = validation.certificate_arn
        if self.zone_id is not None:
            aws_dns.alias_records(
                name, args.domain, self.zone_id, args.alb_dns_name, args.alb_zone_id, self, ipv6=args.ipv6
            )
        self.url = pulumi.Output.from_input(f"https://{args.domain}")
        self.register_outputs({"certificate_arn": self.certificate_arn, "url": self.url})
