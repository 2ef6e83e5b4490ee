"""The cloudrun target's answers for the recording mocks (fastapi_deploy/mocks.py): the Cloud Run
service, its alert policies and service account, the Artifact Registry repository, the custom domain's
load balancer (Compute) and the release migration's job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _fake_hex(*parts: str, n: int = 64) -> str:
    # Imported when a mock answers, so registering the target never imports pulumi.
    from fastapi_deploy.mocks import fake_hex

    return fake_hex(*parts, n=n)


def _service_service(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    svc = inputs.get("name", physical)
    loc = inputs.get("location", m.gcp_region)
    proj = inputs.get("project", m.gcp_project)
    out["uri"] = f"https://{svc}-{_fake_hex(name, n=10)}-{loc[:2]}.a.run.app"
    out["latestReadyRevision"] = f"projects/{proj}/locations/{loc}/revisions/{svc}-00001-abc"
    out["latestCreatedRevision"] = out["latestReadyRevision"]
    out["uid"] = _fake_hex(name, n=32)
    out["name"] = svc
    return None


def _notification_channel(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    proj = inputs.get("project", m.gcp_project)
    out["name"] = f"projects/{proj}/notificationChannels/{int(_fake_hex(name, n=12), 16)}"
    return None


def _alert_policy(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    proj = inputs.get("project", m.gcp_project)
    out["name"] = f"projects/{proj}/alertPolicies/{int(_fake_hex(name, n=12), 16)}"
    return None


def _account_account(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    proj = inputs.get("project", m.gcp_project)
    out["email"] = f"{inputs.get('accountId', name)}@{proj}.iam.gserviceaccount.com"
    out["member"] = f"serviceAccount:{out['email']}"
    out["name"] = f"projects/{proj}/serviceAccounts/{out['email']}"
    return None


def _global_address(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    out["address"] = "198.51.100.7"
    proj = inputs.get("project", m.gcp_project)
    return f"projects/{proj}/global/addresses/{inputs.get('name', physical)}"


def _compute(collection: str) -> Callable[..., str | None]:
    """Compute ids are the resources' relative names: projects/P/global|regions/R/<collection>/NAME."""

    def answer(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
        proj = inputs.get("project", m.gcp_project)
        where = f"regions/{inputs['region']}" if "region" in inputs else "global"
        rid = f"projects/{proj}/{where}/{collection}/{inputs.get('name', physical)}"
        out["selfLink"] = f"https://www.googleapis.com/compute/v1/{rid}"
        return rid

    return answer


def _job(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    """The release migration's job (fastapi_deploy/cloudrun/migrate.py)."""
    out["name"] = inputs.get("name", physical)
    out["generation"] = "1"
    out["uid"] = _fake_hex(name, n=32)
    return None


def _repository(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    out["name"] = inputs.get("repositoryId", physical)
    out["registryUri"] = (
        f"{inputs.get('location', m.gcp_region)}-docker.pkg.dev/"
        f"{inputs.get('project', m.gcp_project)}/{out['name']}"
    )
    return None


RESOURCES: dict[str, Callable[..., str | None]] = {
    "gcp:cloudrunv2/service:Service": _service_service,
    "gcp:monitoring/notificationChannel:NotificationChannel": _notification_channel,
    "gcp:monitoring/alertPolicy:AlertPolicy": _alert_policy,
    "gcp:serviceaccount/account:Account": _account_account,
    "gcp:cloudrunv2/job:Job": _job,
    "gcp:artifactregistry/repository:Repository": _repository,
    "gcp:compute/globalAddress:GlobalAddress": _global_address,
    **{
        f"gcp:compute/{kind}": _compute(collection)
        for kind, collection in {
            "uRLMap:URLMap": "urlMaps",
            "backendService:BackendService": "backendServices",
            "managedSslCertificate:ManagedSslCertificate": "sslCertificates",
            "targetHttpsProxy:TargetHttpsProxy": "targetHttpsProxies",
            "targetHttpProxy:TargetHttpProxy": "targetHttpProxies",
            "globalForwardingRule:GlobalForwardingRule": "forwardingRules",
            "regionNetworkEndpointGroup:RegionNetworkEndpointGroup": "networkEndpointGroups",
        }.items()
    },
}

INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
