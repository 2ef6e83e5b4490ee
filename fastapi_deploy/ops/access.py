"""Errors that mean "could not reach or were not allowed into the cloud or the host", told in one line.

`infra doctor` and `infra verify` talk to AWS (boto3), Google Cloud (google-auth, gRPC clients) and hosts
(ssh). Missing credentials, a denied permission or an unreachable endpoint are the user's environment,
not a bug: they get one line saying which and what to do, and exit code :data:`EXIT_UNREACHABLE`,
never a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

#: Exit codes shared by `infra doctor` and `infra verify` (listed in their --help).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNREACHABLE = 3

EXIT_CODES_HELP = """exit codes:
  0  every check passed
  1  a check failed: a blocking finding, or the release is not live/healthy. A check that could not be
     made (no credentials, a denied permission, an unreachable host) is such a finding and names why
  2  invalid usage, stack config or stack outputs
  3  the run stopped early on missing or expired credentials, a denied permission, or an unreachable
     cloud API outside any single check (one line says which; nothing was changed)"""

_AWS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)


def describe(exc: BaseException) -> str | None:
    """One line for a credential, permission or network error; None for anything else."""
    try:
        from botocore import exceptions as bexc
    except ImportError:  # pragma: no cover - boto3 is a deploy dependency
        bexc = None  # type: ignore[assignment]
    if bexc is not None:
        if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
            return (
                f"AWS: no usable credentials ({type(exc).__name__}); configure them (AWS_PROFILE, "
                "`aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and run again"
            )
        if isinstance(exc, bexc.NoRegionError):
            return "AWS: no region; set aws:region in the stack file or AWS_REGION"
        if isinstance(exc, bexc.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _AWS_DENIED:
                op = getattr(exc, "operation_name", "the call")
                return f"AWS: {op} was refused ({code}); grant the permission or refresh the credentials"
            return None
        if isinstance(
            exc,
            bexc.EndpointConnectionError
            | bexc.ConnectTimeoutError
            | bexc.ReadTimeoutError
            | bexc.ProxyConnectionError
            | bexc.SSLError,
        ):
            return f"AWS: the API is unreachable ({type(exc).__name__}: {exc}); check the network or proxy"
        if isinstance(exc, bexc.TokenRetrievalError | bexc.SSOError):
            return (
                f"AWS: the SSO/token credentials could not be refreshed ({type(exc).__name__}); log in again"
            )
    google = _describe_google(exc)
    if google:
        return google
    if isinstance(exc, FileNotFoundError) and exc.filename in ("ssh", "pulumi"):
        return f"`{exc.filename}` is not installed or not on PATH"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"`{_argv0(exc.cmd)}` did not answer within {exc.timeout:g} s (host unreachable?)"
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"the network: {type(exc).__name__}: {exc}"
    return None


def unreachable_is_exit_3(run: Callable[[], int], command: str, what: str) -> int:
    """``run()``, with a credential, permission or network error printed as one line and exit code 3."""
    try:
        return run()
    except Exception as exc:
        reason = describe(exc)
        if reason is None:
            raise  # a bug: keep the traceback
        print(f"{command}: could not check {what}: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _argv0(cmd: object) -> str:
    if isinstance(cmd, list | tuple) and cmd:
        return str(cmd[0])
    return str(cmd).split(" ", 1)[0]


def _describe_google(exc: BaseException) -> str | None:
    try:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc
    except ImportError:  # pragma: no cover - the Google clients are deploy dependencies
        return None
    if isinstance(exc, aexc.DefaultCredentialsError):
        return (
            "Google Cloud: no Application Default Credentials; run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS"
        )
    if isinstance(exc, aexc.RefreshError):
        return "Google Cloud: the credentials could not be refreshed; log in again"
    if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated | gexc.Forbidden | gexc.Unauthorized):
        return f"Google Cloud: refused ({type(exc).__name__}: {exc.message}); grant the role or log in again"
    if isinstance(exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.RetryError):
        return f"Google Cloud: the API is unreachable ({type(exc).__name__}); check the network or proxy"
    return None
