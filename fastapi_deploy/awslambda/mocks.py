"""The lambda target's answers for the recording mocks (fastapi_deploy/mocks.py): the function, its
alias and URL, the HTTP API."""

from __future__ import annotations

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


RESOURCES: dict[str, Callable[..., str | None]] = {
    "aws:lambda/function:Function": _function_function,
    "aws:lambda/alias:Alias": _alias_alias,
    "aws:lambda/functionUrl:FunctionUrl": _functionurl_functionurl,
    "aws:apigatewayv2/api:Api": _api_api,
    "aws:apigatewayv2/stage:Stage": _stage_stage,
}

INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
