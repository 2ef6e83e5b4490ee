"""Validate rendered infrastructure inputs against the real AWS API models shipped in botocore.

Pulumi providers pass most fields straight through to the AWS API (container definitions are a raw JSON
string!). A misspelled key (``startperiod``), a string where an int belongs, or a field the API does
not have fails only at ``pulumi up``. botocore carries AWS's own service models; its ``ParamValidator``
checks a params dict against an operation's input shape offline, the same check boto3 runs before a call.

Public names: ``validate(("ecs", "RegisterTaskDefinition"), params)``, ``ApiValidationError``,
``input_members(op)``, and renderers from recorded Pulumi inputs to API params:
``ecs_register_task_definition_params``, ``ecs_create_service_params``, ``elbv2_create_target_group_params``,
``elbv2_target_group_attributes``, ``elbv2_create_rule_params``, ``ecr_create_repository_params``,
``cloudwatch_put_metric_alarm_params``, ``sns_create_topic_params``, ``sns_subscribe_params``; for custom
domains ``acm_request_certificate_params``, ``route53_change_params``,
``apigatewayv2_create_domain_name_params``, ``apigatewayv2_create_api_mapping_params``, and
``validate_with_enums`` / ``enum_problems`` (botocore's validator does not check enum values).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel
from botocore.validate import ParamValidator


class ApiValidationError(ValueError):
    """Params the AWS API would reject; the message lists each bad path (``containerDefinitions[0].x``)."""


@cache
def _service(name: str) -> ServiceModel:
    session = botocore.session.get_session()
    return session.get_service_model(name)


def operation(op: tuple[str, str]) -> OperationModel:
    """botocore's model of ``(service, Operation)``, e.g. ``("ecs", "RegisterTaskDefinition")``."""
    service, name = op
    return _service(service).operation_model(name)


def input_members(op: tuple[str, str]) -> list[str]:
    """Top-level input field names of an operation."""
    shape = operation(op).input_shape
    return list(shape.members) if shape is not None else []


def _coerce(shape: Any, value: Any) -> Any:
    # Pulumi's wire format (protobuf Struct) carries every number as a double; the provider converts
    # integral doubles to the schema's integer type. Mirror exactly that, nothing more: "30" stays a
    # string and 2.5 stays a float, so real type errors still surface.
    if shape is None:
        return value
    kind = shape.type_name
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "structure" and isinstance(value, Mapping):
        return {k: _coerce(shape.members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _coerce(shape.value, v) for k, v in value.items()}
    return value


def validate(op: tuple[str, str], params: Mapping[str, Any], *, coerce_wire_numbers: bool = True) -> None:
    """Raise :class:`ApiValidationError` when ``params`` do not match the operation's input shape.

    Checks unknown fields, missing required fields, types, min lengths/values, nested structures and
    lists. ``coerce_wire_numbers`` turns integral floats (how the engine receives every number) into
    ints where the API wants an integer, as the provider does.
    """
    shape = operation(op).input_shape
    if shape is None:
        raise ApiValidationError(f"{op[0]}:{op[1]} takes no input")
    data = _coerce(shape, dict(params)) if coerce_wire_numbers else dict(params)
    report = ParamValidator().validate(data, shape)
    if report.has_errors():
        raise ApiValidationError(f"{op[0]}:{op[1]}: {report.generate_report()}")


def enum_values(op: tuple[str, str], path: str) -> list[str]:
    """Allowed enum values at a dotted member path (``"launchType"``, ``"healthCheck.protocol"``)."""
    shape: Any = operation(op).input_shape
    for part in path.split("."):
        shape = shape.members[part]
        while shape.type_name == "list":
            shape = shape.member
    return list(getattr(shape, "enum", []) or [])


# ------------------------------------------------------------------------------------------ renderers
def _tags(tags: Mapping[str, str] | None, key: str = "key", value: str = "value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted((tags or {}).items())]


def ecs_register_task_definition_params(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:ecs/taskDefinition:TaskDefinition`` inputs -> ``RegisterTaskDefinition`` params."""
    params: dict[str, Any] = {
        "family": inputs["family"],
        "containerDefinitions": json.loads(inputs["containerDefinitions"]),
    }
    for key in ("taskRoleArn", "executionRoleArn", "networkMode", "cpu", "memory", "requiresCompatibilities"):
        if inputs.get(key) is not None:
            params[key] = inputs[key]
    if inputs.get("volumes"):
        params["volumes"] = [dict(v) for v in inputs["volumes"]]
    if inputs.get("runtimePlatform"):
        params["runtimePlatform"] = dict(inputs["runtimePlatform"])
    if inputs.get("tags"):
        params["tags"] = _tags(inputs["tags"])
    return params


def ecs_create_service_params(inputs: Mapping[str, Any], service_name: str) -> dict[str, Any]:
    """Recorded ``aws:ecs/service:Service`` inputs -> ``CreateService`` params."""
    net = inputs.get("networkConfiguration") or {}
    dep: dict[str, Any] = {}
    if "deploymentMaximumPercent" in inputs:
        dep["maximumPercent"] = inputs["deploymentMaximumPercent"]
    if "deploymentMinimumHealthyPercent" in inputs:
        dep["minimumHealthyPercent"] = inputs["deploymentMinimumHealthyPercent"]
    if inputs.get("deploymentCircuitBreaker"):
        dep["deploymentCircuitBreaker"] = dict(inputs["deploymentCircuitBreaker"])
    if inputs.get("alarms"):
        a = inputs["alarms"]
        dep["alarms"] = {
            "alarmNames": list(a["alarmNames"]),
            "enable": a["enable"],
            "rollback": a["rollback"],
        }
    params: dict[str, Any] = {
        "cluster": inputs["cluster"],
        "serviceName": service_name,
        "taskDefinition": inputs["taskDefinition"],
        "desiredCount": inputs["desiredCount"],
        "launchType": inputs.get("launchType"),
        "platformVersion": inputs.get("platformVersion"),
        "loadBalancers": [dict(lb) for lb in inputs.get("loadBalancers") or []],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(net.get("subnets") or []),
                "securityGroups": list(net.get("securityGroups") or []),
                "assignPublicIp": "ENABLED" if net.get("assignPublicIp") else "DISABLED",
            }
        },
        "healthCheckGracePeriodSeconds": inputs.get("healthCheckGracePeriodSeconds"),
        "deploymentConfiguration": dep,
        "propagateTags": inputs.get("propagateTags"),
        "enableECSManagedTags": inputs.get("enableEcsManagedTags"),
        "tags": _tags(inputs.get("tags")),
    }
    return {k: v for k, v in params.items() if v is not None}


def elbv2_create_target_group_params(inputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Recorded ``aws:lb/targetGroup:TargetGroup`` inputs -> ``CreateTargetGroup`` params."""
    hc = inputs.get("healthCheck") or {}
    port = hc.get("port")
    params: dict[str, Any] = {
        "Name": name,
        "Protocol": inputs.get("protocol"),
        "Port": inputs.get("port"),
        "VpcId": inputs.get("vpcId"),
        "TargetType": inputs.get("targetType"),
        "HealthCheckEnabled": hc.get("enabled"),
        "HealthCheckProtocol": hc.get("protocol"),
        "HealthCheckPort": port,
        "HealthCheckPath": hc.get("path"),
        "HealthCheckIntervalSeconds": hc.get("interval"),
        "HealthCheckTimeoutSeconds": hc.get("timeout"),
        "HealthyThresholdCount": hc.get("healthyThreshold"),
        "UnhealthyThresholdCount": hc.get("unhealthyThreshold"),
        "Matcher": {"HttpCode": hc["matcher"]} if hc.get("matcher") else None,
        "Tags": _tags(inputs.get("tags"), "Key", "Value"),
    }
    return {k: v for k, v in params.items() if v is not None}


def elbv2_target_group_attributes(inputs: Mapping[str, Any], arn: str) -> dict[str, Any]:
    """``ModifyTargetGroupAttributes`` params for the attributes Pulumi sets after creation."""
    attrs = []
    if inputs.get("deregistrationDelay") is not None:
        delay = inputs["deregistrationDelay"]
        delay = int(delay) if isinstance(delay, float) and delay.is_integer() else delay
        attrs.append({"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)})
    return {"TargetGroupArn": arn, "Attributes": attrs}


def elbv2_create_rule_params(inputs: Mapping[str, Any], listener_arn: str) -> dict[str, Any]:
    """Recorded ``aws:lb/listenerRule:ListenerRule`` inputs (path-pattern / host-header conditions,
    fixed-response / forward actions) ->
    ``CreateRule`` params."""
    conditions = []
    for c in inputs.get("conditions") or []:
        if c.get("pathPattern"):
            conditions.append(
                {"Field": "path-pattern", "PathPatternConfig": {"Values": c["pathPattern"]["values"]}}
            )
        elif c.get("hostHeader"):
            conditions.append(
                {"Field": "host-header", "HostHeaderConfig": {"Values": c["hostHeader"]["values"]}}
            )
        else:
            raise ValueError(f"condition not mapped to CreateRule here: {sorted(c)}")
    actions = []
    for order, a in enumerate(inputs.get("actions") or [], start=1):
        action: dict[str, Any] = {"Type": a["type"], "Order": order}
        if a.get("fixedResponse"):
            fr = a["fixedResponse"]
            action["FixedResponseConfig"] = {
                k: v
                for k, v in {
                    "StatusCode": fr.get("statusCode"),
                    "ContentType": fr.get("contentType"),
                    "MessageBody": fr.get("messageBody"),
                }.items()
                if v is not None
            }
        elif a.get("targetGroupArn"):
            action["TargetGroupArn"] = a["targetGroupArn"]
        actions.append(action)
    params: dict[str, Any] = {
        "ListenerArn": listener_arn,
        "Priority": inputs.get("priority"),
        "Conditions": conditions,
        "Actions": actions,
        "Tags": _tags(inputs.get("tags"), "Key", "Value"),
    }
    return {k: v for k, v in params.items() if v is not None}


def ecr_create_repository_params(inputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Recorded ``aws:ecr/repository:Repository`` inputs -> ``CreateRepository`` params."""
    params: dict[str, Any] = {
        "repositoryName": name,
        "imageTagMutability": inputs.get("imageTagMutability"),
        "imageScanningConfiguration": (
            {"scanOnPush": inputs["imageScanningConfiguration"]["scanOnPush"]}
            if inputs.get("imageScanningConfiguration")
            else None
        ),
        "encryptionConfiguration": (
            dict(inputs["encryptionConfigurations"][0]) if inputs.get("encryptionConfigurations") else None
        ),
        "tags": _tags(inputs.get("tags"), "Key", "Value"),
    }
    return {k: v for k, v in params.items() if v is not None}


def cloudwatch_put_metric_alarm_params(inputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Recorded ``aws:cloudwatch/metricAlarm:MetricAlarm`` inputs (single-metric alarms) ->
    ``PutMetricAlarm`` params."""
    dims = inputs.get("dimensions") or {}
    params: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": inputs.get("alarmDescription"),
        "ActionsEnabled": inputs.get("actionsEnabled"),
        "OKActions": list(inputs["okActions"]) if inputs.get("okActions") is not None else None,
        "AlarmActions": list(inputs["alarmActions"]) if inputs.get("alarmActions") is not None else None,
        "InsufficientDataActions": (
            list(inputs["insufficientDataActions"]) if inputs.get("insufficientDataActions") else None
        ),
        "MetricName": inputs.get("metricName"),
        "Namespace": inputs.get("namespace"),
        "Statistic": inputs.get("statistic"),
        "ExtendedStatistic": inputs.get("extendedStatistic"),
        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(dims.items())] or None,
        "Period": inputs.get("period"),
        "EvaluationPeriods": inputs.get("evaluationPeriods"),
        "DatapointsToAlarm": inputs.get("datapointsToAlarm"),
        "Threshold": inputs.get("threshold"),
        "ComparisonOperator": inputs.get("comparisonOperator"),
        "TreatMissingData": inputs.get("treatMissingData"),
        "Tags": _tags(inputs.get("tags"), "Key", "Value") or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def sns_create_topic_params(inputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Recorded ``aws:sns/topic:Topic`` inputs -> ``CreateTopic`` params (attributes as strings)."""
    attrs = {}
    if inputs.get("displayName") is not None:
        attrs["DisplayName"] = str(inputs["displayName"])
    if inputs.get("kmsMasterKeyId") is not None:
        attrs["KmsMasterKeyId"] = str(inputs["kmsMasterKeyId"])
    params: dict[str, Any] = {
        "Name": name,
        "Attributes": attrs or None,
        "Tags": _tags(inputs.get("tags"), "Key", "Value") or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def sns_subscribe_params(inputs: Mapping[str, Any], topic_arn: str) -> dict[str, Any]:
    """Recorded ``aws:sns/topicSubscription:TopicSubscription`` inputs -> ``Subscribe`` params."""
    return {
        "TopicArn": topic_arn,
        "Protocol": inputs["protocol"],
        "Endpoint": inputs["endpoint"],
        "ReturnSubscriptionArn": True,
    }


# --------------------------------------------------------------------------- custom domains (issue 15)
def enum_problems(op: tuple[str, str], params: Mapping[str, Any]) -> list[str]:
    """Values outside an enum of the operation's model (``ParamValidator`` does not check enums)."""
    problems: list[str] = []

    def walk(shape: Any, value: Any, path: str) -> None:
        if shape is None:
            return
        allowed = getattr(shape, "enum", None)
        if allowed and isinstance(value, str) and value not in allowed:
            problems.append(f"{path}: {value!r} is not one of {sorted(allowed)}")
        if shape.type_name == "structure" and isinstance(value, Mapping):
            for key, item in value.items():
                walk(shape.members.get(key), item, f"{path}.{key}" if path else str(key))
        elif shape.type_name == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")

    walk(operation(op).input_shape, dict(params), "")
    return problems


def validate_with_enums(op: tuple[str, str], params: Mapping[str, Any]) -> None:
    """:func:`validate` plus the enum check of :func:`enum_problems`."""
    validate(op, params)
    problems = enum_problems(op, params)
    if problems:
        raise ApiValidationError(f"{op[0]}:{op[1]}: " + "; ".join(problems))


def acm_request_certificate_params(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:acm/certificate:Certificate`` inputs -> ``RequestCertificate`` params."""
    params: dict[str, Any] = {"DomainName": inputs["domainName"]}
    if inputs.get("validationMethod") is not None:
        params["ValidationMethod"] = inputs["validationMethod"]
    if inputs.get("subjectAlternativeNames"):
        params["SubjectAlternativeNames"] = list(inputs["subjectAlternativeNames"])
    if inputs.get("keyAlgorithm"):
        params["KeyAlgorithm"] = inputs["keyAlgorithm"]
    if inputs.get("tags"):
        params["Tags"] = _tags(inputs["tags"], "Key", "Value")
    return params


def route53_change_params(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:route53/record:Record`` inputs -> a ``ChangeResourceRecordSets`` UPSERT."""
    rrset: dict[str, Any] = {"Name": inputs["name"], "Type": inputs["type"]}
    if inputs.get("ttl") is not None:
        rrset["TTL"] = inputs["ttl"]
    if inputs.get("records"):
        rrset["ResourceRecords"] = [{"Value": v} for v in inputs["records"]]
    aliases = list(inputs.get("aliases") or [])
    if aliases:
        alias = aliases[0]
        rrset["AliasTarget"] = {
            "HostedZoneId": alias["zoneId"],
            "DNSName": alias["name"],
            "EvaluateTargetHealth": alias["evaluateTargetHealth"],
        }
    return {
        "HostedZoneId": inputs["zoneId"],
        "ChangeBatch": {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]},
    }


def apigatewayv2_create_domain_name_params(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:apigatewayv2/domainName:DomainName`` inputs -> ``CreateDomainName`` params."""
    conf = dict(inputs.get("domainNameConfiguration") or {})
    rename = {
        "certificateArn": "CertificateArn",
        "endpointType": "EndpointType",
        "securityPolicy": "SecurityPolicy",
        "ipAddressType": "IpAddressType",
        "ownershipVerificationCertificateArn": "OwnershipVerificationCertificateArn",
    }
    params: dict[str, Any] = {
        "DomainName": inputs["domainName"],
        "DomainNameConfigurations": [{rename.get(k, k): v for k, v in conf.items()}],
    }
    if inputs.get("tags"):
        params["Tags"] = dict(inputs["tags"])
    return params


def apigatewayv2_create_api_mapping_params(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:apigatewayv2/apiMapping:ApiMapping`` inputs -> ``CreateApiMapping`` params."""
    params: dict[str, Any] = {
        "ApiId": inputs["apiId"],
        "DomainName": inputs["domainName"],
        "Stage": inputs["stage"],
    }
    if inputs.get("apiMappingKey"):
        params["ApiMappingKey"] = inputs["apiMappingKey"]
    return params
