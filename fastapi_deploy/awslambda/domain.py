"""``fastapi-deploy:lambda:Domain``: a custom domain on the Lambda target's API Gateway HTTP API.

Creates, under its own component (the service component only wires it in):

* with no certificate given: a REGIONAL ACM certificate for ``domain`` (same region as the API), DNS
  validated in the hosted zone and awaited (``aws.acm.CertificateValidation``);
* an ``aws.apigatewayv2.DomainName`` (REGIONAL endpoint, TLS 1.2 security policy, dual-stack) taking the
  VALIDATED certificate ARN, so it is only created once ACM issued the certificate;
* an ``aws.apigatewayv2.ApiMapping`` of the whole domain to the API's ``$default`` stage;
* alias A and AAAA records ``domain`` -> the domain's regional target (when a zone is given).

API Gateway custom domains serve HTTPS only (there is no port 80 listener to redirect).
A Lambda function URL cannot have a custom domain: the config refuses ``app.domain`` with
``lambda.front: function_url``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from fastapi_deploy import aws_dns

COMPONENT_TYPE = "fastapi-deploy:lambda:Domain"
#: Minimum TLS 1.2 (the other value API Gateway accepts, TLS_1_0, is refused by the policy pack).
SECURITY_POLICY = "TLS_1_2"


@dataclass
class LambdaDomainArgs:
    """Explicit inputs: the domain, its zone, the HTTP API and its stage."""

    domain: str
    #: Route 53 hosted zone id or public zone name; None = no records (only with ``certificate_arn``).
    zone: str | None
    api_id: pulumi.Input[str]
    stage: pulumi.Input[str]
    #: An issued regional certificate to use instead of creating one (another resource's output is fine).
    certificate_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


class LambdaDomain(pulumi.ComponentResource):
    """Regional ACM certificate (awaited) + API Gateway custom domain + API mapping + alias records."""

    domain_name: aws.apigatewayv2.DomainName
    url: pulumi.Output[str]

    def __init__(self, name: str, args: LambdaDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.zone is None and args.certificate_arn is None:
            raise ValueError("LambdaDomainArgs: give zone (to create the certificate) or certificate_arn")
        super().__init__(COMPONENT_TYPE, name, {"domain": args.domain}, opts)
        zone_id = aws_dns.hosted_zone_id(args.zone, self) if args.zone else None
        cert_arn: pulumi.Input[str]
        if args.certificate_arn is not None:
            cert_arn = args.certificate_arn
        else:
            assert zone_id is not None
            _cert, _record, validation = aws_dns.dns_validated_certificate(
                name, args.domain, zone_id, args.tags, self
            )
            cert_arn = validation.certificate_arn
        self.domain_name = aws.apigatewayv2.DomainName(
            f"{name}-apigw",
            domain_name=args.domain,
            domain_name_configuration=aws.apigatewayv2.DomainNameDomainNameConfigurationArgs(
                certificate_arn=cert_arn,
                endpoint_type="REGIONAL",
                security_policy=SECURITY_POLICY,
                ip_address_type="dualstack",
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.apigatewayv2.ApiMapping(
            f"{name}-mapping",
            api_id=args.api_id,
            domain_name=self.domain_name.id,
            stage=args.stage,
            opts=pulumi.ResourceOptions(parent=self.domain_name),
        )
        if zone_id is not None:
            target = self.domain_name.domain_name_configuration
            aws_dns.alias_records(
                name,
                args.domain,
                zone_id,
                target.apply(lambda c: c.target_domain_name or ""),
                target.apply(lambda c: c.hosted_zone_id or ""),
                self,
                ipv6=True,  # the domain is dual-stack (ip_address_type above)
            )
        self.url = pulumi.Output.from_input(f"https://{args.domain}")
        self.register_outputs({"url": self.url, "domain_name": self.domain_name.id})
