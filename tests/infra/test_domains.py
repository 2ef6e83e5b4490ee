"""Custom domains on every target (issue 15, item 1), under the recording mocks.

What a user cares about: with ``app.domain`` (+ the target's ``zone``) the stack registers the certificate,
its DNS validation, the records pointing at the service and an HTTPS front that waits for the certificate;
without a domain nothing changes; bad input is refused naming the key before anything is registered. The
registered inputs are checked against AWS's botocore models and the Compute API's own types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fastapi_deploy import apimodels
from fastapi_deploy.cloudrun.domain import COMPUTE_MESSAGES, compute_api_body
from fastapi_deploy.config import ConfigError
from fastapi_deploy.mocks import ProgramResult, RecordedResource, RecordingMocks, run_program, unwrap
from policy import rules
from tests.infra.conftest import STACKS, edited_config

URNS = Path(__file__).parent / "urns"
SHIPPED = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS.glob("Pulumi.*.yaml"))

CERT = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
LISTENER = "aws:lb/listener:Listener"
APIGW_DOMAIN = "aws:apigatewayv2/domainName:DomainName"
API_MAPPING = "aws:apigatewayv2/apiMapping:ApiMapping"
DNS_RECORDSET = "gcp:dns/recordSet:RecordSet"
GET_ZONE = "aws:route53/getZone:getZone"
GIVEN_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b"


def run(stack: str, extra_providers: dict[str, str] | None = None, **changes: Any) -> ProgramResult:
    raw = edited_config(stack, **changes)
    raw.update(extra_providers or {})
    return run_program(stack, raw)


def inputs(r: RecordedResource) -> dict[str, Any]:
    return dict(unwrap(r.inputs))


def under_domain(result: ProgramResult) -> list[RecordedResource]:
    return [r for r in result.resources if ":Domain" in r.urn.split("::")[2]]


def by_name(result: ProgramResult, suffix: str, type_token: str | None = None) -> RecordedResource:
    (found,) = [r for r in result.resources if r.name.endswith(suffix) and type_token in (None, r.type)]
    return found


def policy_graph(result: ProgramResult) -> list[rules.Resource]:
    return [
        rules.Resource(type=r.type, inputs=unwrap(r.inputs), urn=r.urn, name=r.name) for r in result.resources
    ]


def domain_findings(result: ProgramResult) -> list[rules.Violation]:
    return [v for v in rules.evaluate(policy_graph(result)) if v.policy.startswith("custom-domain")]


# ------------------------------------------------------------------------------------------------ ECS
@pytest.fixture(scope="module")
def ecs() -> ProgramResult:
    return run("prod-ecs", ecs={"certificate_arn": None, "zone": "example.com"})


def test_ecs_domain_requests_a_dns_validated_certificate_and_waits_for_it(ecs: ProgramResult) -> None:
    cert = ecs.one(CERT)
    assert inputs(cert) == {
        "domainName": "api.example.com",
        "validationMethod": "DNS",
        "tags": cert.inputs["tags"],
    }
    # The validation CNAME is exactly what ACM asked for (the certificate's computed output).
    (option,) = cert.outputs["domainValidationOptions"]
    record = by_name(ecs, "-domain-cert-validation")
    assert inputs(record)["zoneId"] == "Z0123456789ABCDEFGHIJ"  # looked up from the zone's name
    assert (inputs(record)["name"], inputs(record)["type"], inputs(record)["records"]) == (
        option["resourceRecordName"],
        "CNAME",
        [option["resourceRecordValue"]],
    )
    assert (GET_ZONE, {"name": "example.com", "privateZone": False}) in ecs.calls
    validation = ecs.one(VALIDATION)
    assert inputs(validation)["certificateArn"] == cert.outputs["arn"]
    assert inputs(validation)["validationRecordFqdns"] == [record.outputs["fqdn"]]
    assert record.urn in validation.dependencies


def test_ecs_https_listener_takes_the_validated_certificate_and_http_only_redirects(
    ecs: ProgramResult,
) -> None:
    validation = ecs.one(VALIDATION)
    https = by_name(ecs, "-https", LISTENER)
    assert inputs(https)["certificateArn"] == validation.outputs["certificateArn"]
    # Depending on the CertificateValidation (not the Certificate) is what makes the listener wait.
    assert validation.urn in https.dependencies
    http = by_name(ecs, "-http", LISTENER)
    assert [a["type"] for a in inputs(http)["defaultActions"]] == ["redirect"]
    assert inputs(http)["defaultActions"][0]["redirect"]["protocol"] == "HTTPS"
    ports = {
        inputs(r)["fromPort"]
        for r in ecs.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    }
    assert {443.0, 80.0} <= ports
    assert ecs.outputs["url"] == "https://api.example.com"


def test_ecs_alias_record_points_at_the_alb(ecs: ProgramResult) -> None:
    alb = ecs.one("aws:lb/loadBalancer:LoadBalancer")
    aliases = [r for r in ecs.by_type(RECORD) if inputs(r).get("aliases")]
    # The ALB is IPv4-only, so only A (an AAAA alias to it would resolve to nothing).
    assert [(inputs(r)["name"], inputs(r)["type"]) for r in aliases] == [("api.example.com", "A")]
    assert inputs(aliases[0])["aliases"] == [
        {"name": alb.outputs["dnsName"], "zoneId": alb.outputs["zoneId"], "evaluateTargetHealth": True}
    ]
    assert inputs(aliases[0])["zoneId"] == "Z0123456789ABCDEFGHIJ"


def test_ecs_zone_id_is_used_as_given_without_a_lookup() -> None:
    result = run("prod-ecs", ecs={"certificate_arn": None, "zone": "Z9ABCDEF0123"})
    assert all(tok != GET_ZONE for tok, _ in result.calls)
    assert {inputs(r)["zoneId"] for r in result.by_type(RECORD)} == {"Z9ABCDEF0123"}


def test_ecs_user_certificate_still_works_and_creates_no_certificate() -> None:
    result = run("prod-ecs", ecs={"zone": "example.com"})  # prod-ecs carries certificate_arn
    assert result.by_type(CERT) == []
    assert result.by_type(VALIDATION) == []
    assert inputs(by_name(result, "-https", LISTENER))["certificateArn"] == GIVEN_CERT
    assert [inputs(r)["type"] for r in result.by_type(RECORD)] == ["A"]


# --------------------------------------------------------------------------------------------- Lambda
@pytest.fixture(scope="module")
def lam() -> ProgramResult:
    return run("prod-lambda", domain="api.example.com", **{"lambda": {"zone": "example.com"}})


def test_lambda_custom_domain_uses_the_validated_regional_certificate(lam: ProgramResult) -> None:
    validation = lam.one(VALIDATION)
    domain = lam.one(APIGW_DOMAIN)
    conf = inputs(domain)["domainNameConfiguration"]
    assert inputs(domain)["domainName"] == "api.example.com"
    assert conf == {
        "certificateArn": validation.outputs["certificateArn"],
        "endpointType": "REGIONAL",
        "securityPolicy": "TLS_1_2",
        "ipAddressType": "dualstack",
    }
    assert validation.urn in domain.dependencies
    assert conf["certificateArn"].startswith("arn:aws:acm:us-east-1:")  # regional: the API's region


def test_lambda_api_mapping_and_alias_records(lam: ProgramResult) -> None:
    api = lam.one("aws:apigatewayv2/api:Api")
    domain = lam.one(APIGW_DOMAIN)
    mapping = inputs(lam.one(API_MAPPING))
    assert mapping == {"apiId": api.id, "domainName": "api.example.com", "stage": "$default"}
    target = domain.outputs["domainNameConfiguration"]
    aliases = sorted(
        (inputs(r)["type"], inputs(r)["aliases"][0]) for r in lam.by_type(RECORD) if inputs(r).get("aliases")
    )
    expected = {
        "name": target["targetDomainName"],
        "zoneId": target["hostedZoneId"],
        "evaluateTargetHealth": True,
    }
    assert aliases == [("A", expected), ("AAAA", expected)]
    assert lam.outputs["url"] == "https://api.example.com"


def test_lambda_given_certificate_without_zone_makes_no_certificate_and_no_records() -> None:
    result = run("prod-lambda", domain="api.example.com", **{"lambda": {"certificate_arn": GIVEN_CERT}})
    assert result.by_type(CERT) == []
    assert result.by_type(RECORD) == []
    assert inputs(result.one(APIGW_DOMAIN))["domainNameConfiguration"]["certificateArn"] == GIVEN_CERT
    assert len(result.by_type(API_MAPPING)) == 1


# ------------------------------------------------------------------------------------------ Cloud Run
@pytest.fixture(scope="module")
def cloudrun() -> ProgramResult:
    raw = edited_config("prod-cloudrun", domain="api.example.com", cloudrun={"zone": "example-com"})
    del raw["fastapi-deploy:app"]["cloudrun"]["ingress"]  # no explicit ingress: the domain's default applies
    return run_program("prod-cloudrun", raw)


def test_cloudrun_load_balancer_chain(cloudrun: ProgramResult) -> None:
    svc = cloudrun.one("gcp:cloudrunv2/service:Service")
    neg = cloudrun.one("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup")
    assert inputs(neg)["networkEndpointType"] == "SERVERLESS"
    assert inputs(neg)["cloudRun"] == {"service": svc.outputs["name"]}
    assert inputs(neg)["region"] == "europe-west1"
    backend = cloudrun.one("gcp:compute/backendService:BackendService")
    assert inputs(backend)["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert inputs(backend)["backends"] == [{"group": neg.id}]
    url_map = by_name(cloudrun, "-domain-urlmap")
    assert inputs(url_map)["defaultService"] == backend.id
    cert = cloudrun.one("gcp:compute/managedSslCertificate:ManagedSslCertificate")
    assert inputs(cert)["managed"] == {"domains": ["api.example.com"]}
    https_proxy = cloudrun.one("gcp:compute/targetHttpsProxy:TargetHttpsProxy")
    assert inputs(https_proxy)["urlMap"] == url_map.id
    assert inputs(https_proxy)["sslCertificates"] == [cert.id]
    ip = cloudrun.one("gcp:compute/globalAddress:GlobalAddress")
    rules_by_port = {
        inputs(r)["portRange"]: r
        for r in cloudrun.by_type("gcp:compute/globalForwardingRule:GlobalForwardingRule")
    }
    assert set(rules_by_port) == {"443", "80"}
    assert inputs(rules_by_port["443"])["target"] == https_proxy.id
    assert {inputs(r)["ipAddress"] for r in rules_by_port.values()} == {ip.id}
    assert {inputs(r)["loadBalancingScheme"] for r in rules_by_port.values()} == {"EXTERNAL_MANAGED"}


def test_cloudrun_port_80_only_redirects_and_the_dns_record_points_at_the_address(
    cloudrun: ProgramResult,
) -> None:
    http_proxy = cloudrun.one("gcp:compute/targetHttpProxy:TargetHttpProxy")
    redirect = by_name(cloudrun, "-domain-redirect")
    assert inputs(http_proxy)["urlMap"] == redirect.id
    assert inputs(redirect)["defaultUrlRedirect"]["httpsRedirect"] is True
    assert "defaultService" not in inputs(redirect)
    record = inputs(cloudrun.one(DNS_RECORDSET))
    ip = cloudrun.one("gcp:compute/globalAddress:GlobalAddress")
    assert record == {
        "managedZone": "example-com",
        "name": "api.example.com.",
        "type": "A",
        "ttl": 300.0,
        "rrdatas": [ip.outputs["address"]],
        "project": "items-api-prod",
    }


def test_cloudrun_service_takes_traffic_only_through_the_load_balancer(cloudrun: ProgramResult) -> None:
    assert (
        inputs(cloudrun.one("gcp:cloudrunv2/service:Service"))["ingress"]
        == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    )
    assert cloudrun.outputs["url"] == "https://api.example.com"


def test_cloudrun_domain_without_zone_makes_no_record() -> None:
    result = run("prod-cloudrun", domain="api.example.com")
    assert result.by_type(DNS_RECORDSET) == []
    assert len(result.by_type("gcp:compute/managedSslCertificate:ManagedSslCertificate")) == 1
    # prod-cloudrun sets `ingress: all` explicitly: an explicit choice is kept.
    assert inputs(result.one("gcp:cloudrunv2/service:Service"))["ingress"] == "INGRESS_TRAFFIC_ALL"


# ------------------------------------------------------------------------------------------------ VPS
@pytest.mark.parametrize(
    ("host", "rtype", "value"),
    [
        ("203.0.113.10", "A", "203.0.113.10"),
        ("2001:db8::10", "AAAA", "2001:db8::10"),
        ("vps1.example.net", "CNAME", "vps1.example.net."),
    ],
)
def test_vps_route53_record_points_at_the_host(host: str, rtype: str, value: str) -> None:
    result = run(
        "prod-vps",
        {"aws:region": "us-east-1"},
        vps={"host": host, "zone": "example.net", "zone_provider": "route53"},
    )
    record = inputs(result.one(RECORD))
    assert (record["name"], record["type"], record["records"]) == ("api.example.net", rtype, [value])
    assert record["zoneId"] == "Z0123456789ABCDEFGHIJ"
    assert domain_findings(result) == []


def test_vps_cloud_dns_record() -> None:
    result = run(
        "prod-vps", {"gcp:project": "acme-prod"}, vps={"zone": "example-net", "zone_provider": "clouddns"}
    )
    assert inputs(result.one(DNS_RECORDSET)) == {
        "managedZone": "example-net",
        "name": "api.example.net.",
        "type": "A",
        "ttl": 300.0,
        "rrdatas": ["203.0.113.10"],
        "project": "acme-prod",
    }


# ------------------------------------------------------------------------------- unchanged without it
@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_stacks_register_exactly_the_snapshotted_urns(stack: str) -> None:
    """None of the six shipped stacks gets a managed domain, so not one URN may change (the release gate is
    the one intended addition, tests/infra/test_urns.py)."""
    from tests.infra.test_urns import INTENDED_ADDITIONS

    result = run_program(stack, edited_config(stack))
    expected = {*json.loads((URNS / f"{stack}.json").read_text()), *INTENDED_ADDITIONS[stack]}
    assert sorted(r.urn for r in result.resources) == sorted(expected)
    assert under_domain(result) == []


# ------------------------------------------------------------------------------------------- bad input
BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "prod-ecs",
        {"domain": "API.example.com"},
        "app.domain: 'API.example.com' is not a lowercase DNS hostname",
    ),
    ("prod-ecs", {"domain": "api_example.com"}, "app.domain"),
    ("prod-ecs", {"ecs": {"certificate_arn": None}}, "app.ecs.zone: required when app.domain is set"),
    (
        "prod-ecs",
        {"ecs": {"certificate_arn": None, "zone": "example.org"}},
        "app.ecs.zone: app.domain 'api.example.com' is outside the hosted zone 'example.org'",
    ),
    (
        "prod-ecs",
        {"ecs": {"zone": "not a zone"}},
        "app.ecs.zone: 'not a zone' is neither a Route 53 hosted zone id",
    ),
    ("staging-ecs", {"ecs": {"zone": "example.com"}}, "app.ecs.zone: set app.domain too"),
    ("prod-lambda", {"domain": "api.example.com"}, "app.lambda.zone: required when app.domain is set"),
    (
        "prod-lambda",
        {"domain": "api.example.com", "lambda": {"front": "function_url", "zone": "example.com"}},
        "app.lambda.front: app.domain needs the API Gateway HTTP API front",
    ),
    (
        "prod-lambda",
        {
            "domain": "api.example.com",
            "lambda": {"certificate_arn": GIVEN_CERT.replace("us-east-1", "eu-west-1")},
        },
        "app.lambda.certificate_arn: the certificate is in eu-west-1",
    ),
    (
        "prod-cloudrun",
        {"domain": "api.example.com", "cloudrun": {"zone": "Example.com"}},
        "app.cloudrun.zone: 'Example.com' is not a Cloud DNS managed zone name",
    ),
    (
        "staging-cloudrun",
        {"domain": "api.example.com"},
        "app.cloudrun.public: app.domain is served to the internet",
    ),
    (
        "prod-cloudrun",
        {"domain": "api.example.com", "cloudrun": {"ingress": "internal"}},
        "app.cloudrun.ingress: 'internal' refuses the load balancer",
    ),
    (
        "prod-vps",
        {"vps": {"zone": "example.net"}},
        "app.vps.zone_provider: set vps.zone and vps.zone_provider together",
    ),
    (
        "prod-vps",
        {"vps": {"zone": "example-net", "zone_provider": "clouddns"}},
        "app.vps.zone: a Cloud DNS zone needs gcp:project",
    ),
]


@pytest.mark.parametrize(("stack", "changes", "message"), BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_domain_input_is_refused_naming_the_key_before_anything_is_registered(
    stack: str, changes: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ConfigError) as err:
        run_program(stack, edited_config(stack, **changes), mocks=mocks)
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_vps_domain_outside_the_route53_zone_is_refused() -> None:
    raw = edited_config("prod-vps", vps={"zone": "example.org", "zone_provider": "route53"})
    mocks = RecordingMocks()
    with pytest.raises(ConfigError, match=r"app\.vps\.zone: app\.domain 'api\.example\.net' is outside"):
        run_program("prod-vps", raw, mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ API models and policy
AWS_OPS = {
    CERT: (("acm", "RequestCertificate"), apimodels.acm_request_certificate_params),
    RECORD: (("route53", "ChangeResourceRecordSets"), apimodels.route53_change_params),
    APIGW_DOMAIN: (("apigatewayv2", "CreateDomainName"), apimodels.apigatewayv2_create_domain_name_params),
    API_MAPPING: (("apigatewayv2", "CreateApiMapping"), apimodels.apigatewayv2_create_api_mapping_params),
}


@pytest.mark.parametrize("which", ["ecs", "lam"])
def test_aws_domain_inputs_are_valid_botocore_requests(which: str, request: pytest.FixtureRequest) -> None:
    result: ProgramResult = request.getfixturevalue(which)
    checked = 0
    for r in result.resources:
        if r.type in AWS_OPS:
            op, render = AWS_OPS[r.type]
            apimodels.validate_with_enums(op, render(inputs(r)))
            checked += 1
    assert checked >= 3


def test_botocore_check_catches_a_wrong_record_type_and_a_misspelled_field() -> None:
    good = {"zoneId": "Z1", "name": "a.example.com", "type": "A", "ttl": 300.0, "records": ["192.0.2.1"]}
    apimodels.validate_with_enums(
        ("route53", "ChangeResourceRecordSets"), apimodels.route53_change_params(good)
    )
    with pytest.raises(apimodels.ApiValidationError, match=r"ResourceRecordSet\.Type: 'ALIAS'"):
        apimodels.validate_with_enums(
            ("route53", "ChangeResourceRecordSets"),
            apimodels.route53_change_params({**good, "type": "ALIAS"}),
        )
    conf = {
        "certificateArn": GIVEN_CERT,
        "endpointType": "REGIONAL",
        "securityPolicy": "TLS_1_2",
        "ipAdressType": "x",
    }
    with pytest.raises(apimodels.ApiValidationError, match="ipAdressType"):
        apimodels.validate_with_enums(
            ("apigatewayv2", "CreateDomainName"),
            apimodels.apigatewayv2_create_domain_name_params(
                {"domainName": "a.example.com", "domainNameConfiguration": conf}
            ),
        )
    with pytest.raises(apimodels.ApiValidationError, match="ValidationMethod: 'dns'"):
        apimodels.validate_with_enums(
            ("acm", "RequestCertificate"),
            apimodels.acm_request_certificate_params(
                {"domainName": "a.example.com", "validationMethod": "dns"}
            ),
        )


def _compute_enum_problems(message: Any, path: str = "") -> list[str]:
    """Compute v1 types enum-valued fields as strings; check each against its message's nested enum."""
    problems = []
    for field_name, field in type(message).meta.fields.items():
        value = getattr(message, field_name)
        if field.message is not None:
            children = [value] if hasattr(type(value), "meta") else list(value)
            for child in children:
                if hasattr(type(child), "meta"):
                    problems += _compute_enum_problems(child, f"{path}{field_name}.")
            continue
        camel = "".join(part.capitalize() for part in field_name.split("_"))
        enum = getattr(type(message), camel, None) or getattr(
            type(message), camel.replace("Ip", "IP") + "Enum", None
        )
        known = getattr(enum, "__members__", None)
        if isinstance(value, str) and value and known is not None and value not in known:
            problems.append(f"{path}{field_name}: {value!r}")
    return problems


def _compute_message(type_token: str, body: dict[str, Any]) -> Any:
    from google.cloud import compute_v1

    name, payload = compute_api_body(type_token, body)
    return getattr(compute_v1, name).from_json(json.dumps(payload))  # unknown fields raise


def test_cloudrun_load_balancer_inputs_parse_as_compute_api_types(cloudrun: ProgramResult) -> None:
    checked = set()
    for r in cloudrun.resources:
        if r.type in COMPUTE_MESSAGES:
            message = _compute_message(r.type, inputs(r))
            assert _compute_enum_problems(message) == [], r.urn
            checked.add(r.type)
    assert checked == set(COMPUTE_MESSAGES)
    record = inputs(cloudrun.one(DNS_RECORDSET))  # Cloud DNS has no proto types offline: checked by hand
    assert record["name"].endswith(".")
    assert record["type"] in {"A", "AAAA", "CNAME"}


def test_compute_check_catches_an_unknown_field_and_a_bad_enum() -> None:
    from google.protobuf.json_format import ParseError

    token = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
    good = {
        "name": "x",
        "portRange": "443",
        "ipProtocol": "TCP",
        "loadBalancingScheme": "EXTERNAL_MANAGED",
        "target": "t",
    }
    assert _compute_enum_problems(_compute_message(token, good)) == []
    with pytest.raises(ParseError):
        _compute_message(token, {**good, "portRage": "443"})
    assert _compute_enum_problems(_compute_message(token, {**good, "loadBalancingScheme": "EXTERNAL_MANGED"}))
    assert _compute_enum_problems(_compute_message(token, {**good, "ipProtocol": "TPC"}))
    redirect = {"httpsRedirect": True, "stripQuery": False, "redirectResponseCode": "MOVED_PERMANENTLY"}
    nested = _compute_message("gcp:compute/uRLMap:URLMap", {"name": "x", "defaultUrlRedirect": redirect})
    assert _compute_enum_problems(nested) == [
        "default_url_redirect.redirect_response_code: 'MOVED_PERMANENTLY'"
    ]


@pytest.mark.parametrize("which", ["ecs", "lam", "cloudrun"])
def test_policy_passes_the_domain_stacks(which: str, request: pytest.FixtureRequest) -> None:
    assert domain_findings(request.getfixturevalue(which)) == []


def test_policy_fails_a_cloudrun_graph_whose_port_80_serves_the_app(cloudrun: ProgramResult) -> None:
    graph = policy_graph(cloudrun)
    serving = next(r for r in graph if r.name.endswith("-domain-urlmap"))
    bad = [
        rules.Resource(
            type=r.type,
            inputs={**r.inputs, "urlMap": f"projects/p/global/urlMaps/{serving.inputs['name']}"},
            urn=r.urn,
            name=r.name,
        )
        if r.type == rules.GCP_HTTP_PROXY
        else r
        for r in graph
    ]
    found = [v for v in rules.evaluate(bad) if v.policy == "custom-domain-https-only"]
    assert [v.urn for v in found] == [next(r.urn for r in graph if r.type == rules.GCP_HTTP_PROXY)]
    assert found[0].enforcement == "mandatory"  # prod-cloudrun is APP_ENV=production


def test_vps_route53_zone_needs_the_aws_region() -> None:
    raw = edited_config("prod-vps", vps={"zone": "example.net", "zone_provider": "route53"})
    del raw["aws:region"]
    mocks = RecordingMocks()
    with pytest.raises(
        ConfigError, match=r"aws:region: required when a vps stack reads AWS .*route53 vps\.zone"
    ):
        run_program("prod-vps", raw, mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]
    # the zone alone is a reason (prod-vps may read SSM too)
    from fastapi_deploy.vps.target import _uses_aws

    assert _uses_aws({"vps": {"zone_provider": "route53"}})
    assert not _uses_aws({"vps": {"zone_provider": "clouddns"}})


def test_cost_estimate_prices_the_cloudrun_load_balancer(cloudrun: ProgramResult) -> None:
    from fastapi_deploy import cost

    graph = [r.as_json() for r in cloudrun.resources]
    lines = {line.resource: line.monthly for line in cost.estimate(graph).lines}
    assert lines["load balancer: 2 forwarding rules (custom domain)"] == pytest.approx(730 * 0.025)
    assert lines["load balancer: data processed"] == pytest.approx(50 * 0.008)
    plain = run_program("prod-cloudrun", edited_config("prod-cloudrun"))
    names = [line.resource for line in cost.estimate([r.as_json() for r in plain.resources]).lines]
    assert not any(n.startswith("load balancer") for n in names)


def test_domain_components_refuse_incomplete_args_before_registering() -> None:
    """Used as a library: a domain child with neither a zone nor a certificate is refused by name."""
    from fastapi_deploy.awslambda.domain import LambdaDomain, LambdaDomainArgs
    from fastapi_deploy.ecs.domain import EcsDomain, EcsDomainArgs
    from fastapi_deploy.vps.domain import VpsDomain, VpsDomainArgs

    with pytest.raises(ValueError, match="EcsDomainArgs: give zone"):
        EcsDomain("x", EcsDomainArgs(domain="a.example.com", zone=None, alb_dns_name="d", alb_zone_id="z"))
    with pytest.raises(ValueError, match="LambdaDomainArgs: give zone"):
        LambdaDomain("x", LambdaDomainArgs(domain="a.example.com", zone=None, api_id="i", stage="$default"))
    with pytest.raises(ValueError, match=r"VpsDomainArgs\.project"):
        VpsDomain(
            "x",
            VpsDomainArgs(
                domain="a.example.com",
                zone="example-com",
                provider="clouddns",
                host="192.0.2.1",
                record_type="A",
            ),
        )
