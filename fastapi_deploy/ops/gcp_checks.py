"""GCP preflight: Secret Manager secrets exist and their version is accessible to the caller."""

from __future__ import annotations

from typing import Any

from fastapi_deploy.ops.findings import Finding, blocking, ok


def _gexc() -> Any:
    """google.api_core's exceptions, imported on first use: the GCP clients are the [gcp] extra, and an
    AWS-only install must still run doctor/verify for its own targets."""
    from google.api_core import exceptions

    return exceptions


def secret_version_name(project: str, secret: str, version: str = "latest") -> str:
    return f"projects/{project}/secrets/{secret}/versions/{version}"


def check_gcp_secret(client: Any, project: str, secret: str, version: str, where: str) -> Finding:
    """`access_secret_version` on the exact version the service will mount.

    Cloud Run resolves `secretKeyRef` when it starts an instance: a missing secret or version makes the
    revision fail with "Revision is not ready" after the deploy already reported success.
    """
    check = "gcp-secret"
    name = secret_version_name(project, secret, version)
    gexc = _gexc()
    try:
        client.access_secret_version(request={"name": name}, timeout=10.0)
    except gexc.NotFound as exc:
        return blocking(
            check,
            f"{name} does not exist: {exc.message}",
            where,
            f"gcloud secrets create {secret} --project {project} --replication-policy automatic\n"
            f'printf %s "$VALUE" | gcloud secrets versions add {secret} --data-file=- --project {project}',
        )
    except gexc.PermissionDenied as exc:
        return blocking(
            check,
            f"{name} is not accessible by the current identity: {exc.message}",
            where,
            f"gcloud secrets add-iam-policy-binding {secret} --project {project} "
            f"--member user:<you> --role roles/secretmanager.secretAccessor",
        )
    except gexc.FailedPrecondition as exc:
        return blocking(
            check,
            f"{name} is disabled or destroyed: {exc.message}",
            where,
            f"gcloud secrets versions enable {version} --secret {secret} --project {project}   "
            f"# or add a new version",
        )
    except gexc.GoogleAPICallError as exc:
        return blocking(check, f"cannot access {name}: {exc.code}: {exc.message}", where)
    except gexc.RetryError as exc:
        return blocking(check, f"cannot reach Secret Manager: {exc}", where)
    return ok(check, f"{name} exists and is accessible", where)
