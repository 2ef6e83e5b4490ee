"""Realistic Lambda events (shapes as AWS documents them) for one HTTP request."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT = "123456789012"
SOURCE_IP = "198.51.100.7"


def _headers(host: str, body: str | None) -> dict[str, str]:
    h = {
        "accept": "application/json",
        "host": host,
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        h["content-type"] = "application/json"
        h["content-length"] = str(len(body.encode()))
    return h


def http_api_v2(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    host = "r3pmxmplak.execute-api.eu-west-1.amazonaws.com"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": _headers(host, body),
        **({"queryStringParameters": dict(parse_qsl(query))} if query else {}),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "r3pmxmplak",
            "domainName": host,
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:03:50:00 +0000",
            "timeEpoch": 1795578600000,
        },
        **({"body": body} if body is not None else {}),
        "isBase64Encoded": False,
    }


def function_url(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    """Function URLs use the v2 payload, with a lambda-url domain and base64 bodies."""
    host = "a2b3c4d5e6f7g8h9.lambda-url.eu-west-1.on.aws"
    event = http_api_v2(method, path, query, None)
    event["headers"] = _headers(host, body)
    ctx = event["requestContext"]
    ctx.update(apiId="a2b3c4d5e6f7g8h9", domainName=host, domainPrefix="a2b3c4d5e6f7g8h9")
    ctx["authorizer"] = {"iam": None}
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
    return event


def rest_api_v1(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    host = "70ixmpl4fl.execute-api.eu-west-1.amazonaws.com"
    headers = _headers(host, body)
    qs = dict(parse_qsl(query)) or None
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": qs,
        "multiValueQueryStringParameters": {k: [v] for k, v in qs.items()} if qs else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "70ixmpl4fl",
            "domainName": host,
            "httpMethod": method,
            "identity": {"sourceIp": SOURCE_IP, "userAgent": "curl/8.5.0"},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": 1795578600000,
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def alb(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    tg = f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:targetgroup/app-tg/6d0ecf831eec9f09"
    return {
        "requestContext": {"elb": {"targetGroupArn": tg}},
        "httpMethod": method,
        "path": path,
        "queryStringParameters": dict(parse_qsl(query)),
        "headers": _headers("app-alb-123456.eu-west-1.elb.amazonaws.com", body),
        "body": body or "",
        "isBase64Encoded": False,
    }


KINDS = {"http_api_v2": http_api_v2, "rest_api_v1": rest_api_v1, "alb": alb, "function_url": function_url}
