"""The lambda target's answers for the recording mocks (fastapi_deploy/mocks.py): the function, its
alias and URL, the HTTP API, its custom domain and the release migration's invocation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _fake_hex(*parts: str, n: int = 64) -> str:
    # Imported when a mock answers, so registering the target never imports pulumi.
    from fastapi_deploy.mocks import fake_hex

    return fake_hex(*parts, n=n)


def _function_function(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    out["name"] = physical
    out["arn"] = f"arn:aws:lambda:{region}:{acct}:function:{physical}"
    out["invokeArn"] = (
        f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{out['arn']}/invocations"
    )
    out["qualifiedArn"] = f"{out['arn']}:1"
    out["version"] = "1"
    return None


def _alias_alias(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    region, acct = m.region, m.account
    out["arn"] = f"arn:aws:lambda:{region}:{acct}:function:{inputs.get('functionName', name)}:{physical}"
    out["invokeArn"] = (
        f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{out['arn']}/invocations"
    )
    return None


def _functionurl_functionurl(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region = m.region
    out["functionUrl"] = f"https://{_fake_hex(name, n=32)}.lambda-url.{region}.on.aws/"
    return None


def _api_api(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    region, acct = m.region, m.account
    rid: str | None = None
    api_id = _fake_hex(name, n=10)
    rid = api_id
    out["apiEndpoint"] = f"https://{api_id}.execute-api.{region}.amazonaws.com"
    out["executionArn"] = f"arn:aws:execute-api:{region}:{acct}:{api_id}"
    return rid


def _stage_stage(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    region = m.region
    out["invokeUrl"] = f"https://{_fake_hex(name, n=10)}.execute-api.{region}.amazonaws.com/"
    return None


def _api_domain_name(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    """The HTTP API's custom domain (fastapi_deploy/awslambda/domain.py) as API Gateway returns it."""
    conf = dict(inputs.get("domainNameConfiguration") or {})
    conf.setdefault("targetDomainName", f"d-{_fake_hex(name, n=10)}.execute-api.{m.region}.amazonaws.com")
    conf.setdefault("hostedZoneId", "Z1UJRXOUMOOFQ8")  # API Gateway's regional zone in us-east-1
    out["domainNameConfiguration"] = conf
    out["apiMappingSelectionExpression"] = "$request.basepath"
    return str(inputs.get("domainName", name))


def _invocation(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    """app/lambda_handler.py's answer to the migrate event (migrate: release) on a database at head."""
    out["result"] = json.dumps({"fastapi_deploy": "migrate", "ok": True, "msg": "schema already at head"})
    return None


RESOURCES: dict[str, Callable[..., str | None]] = {
    "aws:lambda/function:Function": _function_function,
    "aws:lambda/alias:Alias": _alias_alias,
    "aws:lambda/functionUrl:FunctionUrl": _functionurl_functionurl,
    "aws:apigatewayv2/api:Api": _api_api,
    "aws:apigatewayv2/stage:Stage": _stage_stage,
    "aws:apigatewayv2/domainName:DomainName": _api_domain_name,
    "aws:lambda/invocation:Invocation": _invocation,
}

INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
