"""``fastapi-deploy:cloudrun:Domain``: a custom domain on Cloud Run through a global external Application
Load Balancer (Google's recommended path; Cloud Run domain mappings are preview-only and region-limited).

Creates, under its own component (the service component only wires it in):

* a serverless network endpoint group (``RegionNetworkEndpointGroup``, ``SERVERLESS``) for the service;
* a ``BackendService`` (``EXTERNAL_MANAGED``, the global external Application Load Balancer) on it;
* a ``URLMap`` sending everything to it, a Google-managed ``ManagedSslCertificate`` for the domain and a
  ``TargetHttpsProxy``;
* a global IPv4 address and a ``GlobalForwardingRule`` on 443;
* an HTTP -> HTTPS redirect: a second ``URLMap`` that only redirects (301), its ``TargetHttpProxy`` and a
  forwarding rule on port 80 of the same address;
* an A record in the Cloud DNS managed zone when one is given.

The certificate is provisioned by Google only after the domain resolves to the address (usually 15-60
minutes, up to 24 hours): ``pulumi up`` does not wait for it. The service itself should accept load-balancer
traffic only (ingress ``INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER``), which the config sets by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

COMPONENT_TYPE = "fastapi-deploy:cloudrun:Domain"
DNS_TTL_S = 300
#: Compute resource names: 1-63 chars, ``[a-z]([-a-z0-9]*[a-z0-9])?``.
_MAX_NAME = 63


def compute_name(base: str, suffix: str) -> str:
    """A Compute Engine resource name ``<base>-<suffix>`` within 63 characters."""
    head = base[: _MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


@dataclass
class CloudRunDomainArgs:
    """Explicit inputs: the domain, the service (name, project, region) and the optional managed zone."""

    domain: str
    service_name: pulumi.Input[str]
    project: str
    region: str
    #: Cloud DNS managed zone name holding ``domain``; None = the user points DNS at :attr:`address`.
    managed_zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


class CloudRunDomain(pulumi.ComponentResource):
    """Global external ALB + serverless NEG + Google-managed certificate (+ Cloud DNS record)."""

    address: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: CloudRunDomainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, {"domain": args.domain}, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = args.project

        neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-neg",
            name=compute_name(name, "neg"),
            project=project,
            region=args.region,
            network_endpoint_type="SERVERLESS",
            cloud_run=gcp.compute.RegionNetworkEndpointGroupCloudRunArgs(service=args.service_name),
            opts=child,
        )
        backend = gcp.compute.BackendService(
            f"{name}-backend",
            name=compute_name(name, "backend"),
            project=project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backends=[gcp.compute.BackendServiceBackendArgs(group=neg.id)],
            log_config=gcp.compute.BackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            opts=child,
        )
        url_map = gcp.compute.URLMap(
            f"{name}-urlmap",
            name=compute_name(name, "urlmap"),
            project=project,
            default_service=backend.id,
            opts=child,
        )
        certificate = gcp.compute.ManagedSslCertificate(
            f"{name}-cert",
            name=compute_name(name, "cert"),
            project=project,
            type="MANAGED",
            managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[args.domain]),
            opts=child,
        )
        https_proxy = gcp.compute.TargetHttpsProxy(
            f"{name}-https-proxy",
            name=compute_name(name, "https-proxy"),
            project=project,
            url_map=url_map.id,
            ssl_certificates=[certificate.id],
            opts=child,
        )
        ip = gcp.compute.GlobalAddress(
            f"{name}-ip",
            name=compute_name(name, "ip"),
            project=project,
            address_type="EXTERNAL",
            ip_version="IPV4",
            labels=args.labels,
            opts=child,
        )
        gcp.compute.GlobalForwardingRule(
            f"{name}-https",
            name=compute_name(name, "https"),
            project=project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=ip.id,
            port_range="443",
            target=https_proxy.id,
            labels=args.labels,
            opts=child,
        )
        # Port 80 answers only with a redirect to HTTPS (the policy pack checks exactly this).
        redirect_map = gcp.compute.URLMap(
            f"{name}-redirect",
            name=compute_name(name, "redirect"),
            project=project,
            default_url_redirect=gcp.compute.URLMapDefaultUrlRedirectArgs(
                https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"
            ),
            opts=child,
        )
        http_proxy = gcp.compute.TargetHttpProxy(
            f"{name}-http-proxy",
            name=compute_name(name, "http-proxy"),
            project=project,
            url_map=redirect_map.id,
            opts=child,
        )
        gcp.compute.GlobalForwardingRule(
            f"{name}-http",
            name=compute_name(name, "http"),
            project=project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=ip.id,
            port_range="80",
            target=http_proxy.id,
            labels=args.labels,
            opts=child,
        )
        if args.managed_zone:
            gcp.dns.RecordSet(
                f"{name}-dns",
                project=project,
                managed_zone=args.managed_zone,
                name=f"{args.domain}.",
                type="A",
                ttl=DNS_TTL_S,
                rrdatas=[ip.address],
                opts=child,
            )
        self.address = ip.address
        self.url = pulumi.Output.from_input(f"https://{args.domain}")
        self.register_outputs({"url": self.url, "address": self.address})


# ----------------------------------------------------------------------------------------- API check
#: Pulumi type token -> the Compute API (v1) message its inputs become.
COMPUTE_MESSAGES = {
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": "NetworkEndpointGroup",
    "gcp:compute/backendService:BackendService": "BackendService",
    "gcp:compute/uRLMap:URLMap": "UrlMap",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": "SslCertificate",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": "TargetHttpsProxy",
    "gcp:compute/targetHttpProxy:TargetHttpProxy": "TargetHttpProxy",
    "gcp:compute/globalAddress:GlobalAddress": "Address",
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": "ForwardingRule",
}
#: Where the provider's field name differs from the API's JSON name (everything else is the same camelCase).
_API_NAMES = {"ipAddress": "IPAddress", "ipProtocol": "IPProtocol"}
#: Provider-only inputs (URL path parameters or Terraform settings), not fields of the API body.
_NOT_IN_BODY = frozenset({"project", "deletionPolicy"})


def compute_api_body(type_token: str, inputs: dict[str, object]) -> tuple[str, dict[str, object]]:
    """Recorded Compute inputs -> (``google.cloud.compute_v1`` message name, its JSON body), so tests can
    parse them with the API's own types and fail on a field or enum value the API does not have."""
    body = {_API_NAMES.get(k, k): v for k, v in inputs.items() if k not in _NOT_IN_BODY}
    return COMPUTE_MESSAGES[type_token], body
