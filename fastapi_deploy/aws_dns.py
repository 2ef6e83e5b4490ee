"""Route 53 + ACM building blocks shared by the ECS and Lambda custom domains.

* :func:`hosted_zone_id` - ``app.<target>.zone`` as a hosted zone id: used as given when it is an id
  (``Z0123...``), looked up by name (``aws.route53.get_zone``, public zones only) otherwise;
* :func:`dns_validated_certificate` - an ``aws.acm.Certificate`` (DNS validation), the validation CNAME in
  the zone and an ``aws.acm.CertificateValidation`` that makes ``pulumi up`` wait until ACM issued the
  certificate. Its ``certificate_arn`` output resolves only after issuance, so anything that takes it (the
  ALB's HTTPS listener, the API Gateway domain) is created after the certificate is usable;
* :func:`alias_records` - alias A (and AAAA) records to a load balancer / API Gateway domain target.

Nothing here reads stack config: the inputs are explicit so the components stay usable as a library.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_aws as aws

ZONE_ID_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")
#: TTL of the ACM validation CNAME (ACM re-checks it at every renewal; it must stay in place).
VALIDATION_TTL_S = 300


def hosted_zone_id(zone: str, parent: pulumi.Resource) -> pulumi.Input[str]:
    """A hosted zone id from an id or a public zone's name."""
    if ZONE_ID_RE.match(zone):
        return zone
    found = aws.route53.get_zone_output(
        name=zone.rstrip("."), private_zone=False, opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    return found.zone_id


def dns_validated_certificate(
    name: str,
    domain: str,
    zone_id: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.acm.Certificate, aws.route53.Record, aws.acm.CertificateValidation]:
    """ACM certificate for ``domain`` validated by a CNAME in ``zone_id``; the validation is awaited."""
    cert = aws.acm.Certificate(
        f"{name}-cert",
        domain_name=domain,
        validation_method="DNS",
        tags=tags,
        # Replaced create-before-delete (Pulumi's default): the listener moves to the new certificate first.
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # One domain name -> exactly one validation option (ACM gives one CNAME per name).
    option = cert.domain_validation_options.apply(lambda opts: opts[0])
    record = aws.route53.Record(
        f"{name}-cert-validation",
        zone_id=zone_id,
        name=option.apply(lambda o: o.resource_record_name),
        type=option.apply(lambda o: o.resource_record_type),
        records=[option.apply(lambda o: o.resource_record_value or "")],
        ttl=VALIDATION_TTL_S,
        # The same CNAME validates every certificate for this name (another stack's, a renewal's).
        allow_overwrite=True,
        opts=pulumi.ResourceOptions(parent=cert),
    )
    validation = aws.acm.CertificateValidation(
        f"{name}-cert-issued",
        certificate_arn=cert.arn,
        validation_record_fqdns=[record.fqdn],
        opts=pulumi.ResourceOptions(parent=cert),
    )
    return cert, record, validation


def alias_records(
    name: str,
    domain: str,
    zone_id: pulumi.Input[str],
    target_dns_name: pulumi.Input[str],
    target_zone_id: pulumi.Input[str],
    parent: pulumi.Resource,
    *,
    ipv6: bool,
) -> list[aws.route53.Record]:
    """Alias A (and, when the target answers IPv6, AAAA) records ``domain`` -> the target."""
    records = []
    for rtype in ("A", "AAAA") if ipv6 else ("A",):
        records.append(
            aws.route53.Record(
                f"{name}-alias-{rtype.lower()}",
                zone_id=zone_id,
                name=domain,
                type=rtype,
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=target_dns_name, zone_id=target_zone_id, evaluate_target_health=True
                    )
                ],
                opts=pulumi.ResourceOptions(parent=parent),
            )
        )
    return records
