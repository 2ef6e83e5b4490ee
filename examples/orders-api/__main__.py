"""orders-api (./service: its own FastAPI image, port 8080, /healthz) on ECS Fargate and on Cloud Run."""

from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_gcp as gcp

from fastapi_deploy.args import HealthArgs, ScalingArgs
from fastapi_deploy.cloudrun import CloudRunService, CloudRunServiceArgs
from fastapi_deploy.ecs import FargateService, FargateServiceArgs
from fastapi_deploy.image import default_tag

PORT = 8080
HEALTH: HealthArgs = {"liveness_path": "/healthz", "readiness_path": "/readyz"}
ENV: dict[str, pulumi.Input[str]] = {"ORDERS_CURRENCY": "EUR"}
SCALING: ScalingArgs = {"min": 1, "max": 4}
targets = pulumi.Config("orders-api").get_object("targets") or ["ecs", "cloudrun"]


def build(
    name: str,
    repo: pulumi.Input[str],
    server: pulumi.Input[str],
    user: pulumi.Input[str],
    password: pulumi.Input[str],
) -> pulumi.Output[str]:
    """Build ./service/Dockerfile, push it with these credentials, return its digest reference."""
    image = docker.Image(
        name,
        image_name=pulumi.Output.concat(repo, ":", default_tag(Path(__file__).parent)),
        build=docker.DockerBuildArgs(context="service", platform="linux/amd64"),
        registry=docker.RegistryArgs(server=server, username=user, password=pulumi.Output.secret(password)),
    )
    return image.repo_digest


if "ecs" in targets:
    ecr = aws.ecr.Repository("orders", image_tag_mutability="IMMUTABLE")
    auth = aws.ecr.get_authorization_token_output(registry_id=ecr.registry_id)
    image = build("orders-ecr", ecr.repository_url, auth.proxy_endpoint, auth.user_name, auth.password)
    ecs = FargateService(
        "orders-ecs", FargateServiceArgs(image=image, port=PORT, health=HEALTH, env=ENV, scaling=SCALING)
    )
    pulumi.export("ecs_url", ecs.url)

if "cloudrun" in targets:
    project, region = pulumi.Config("gcp").require("project"), pulumi.Config("gcp").require("region")
    ar = gcp.artifactregistry.Repository("orders", repository_id="orders", format="DOCKER", location=region)
    token = gcp.organizations.get_client_config_output().access_token
    repo = pulumi.Output.concat(ar.registry_uri, "/orders")
    image = build("orders-ar", repo, f"{region}-docker.pkg.dev", "oauth2accesstoken", token)
    run = CloudRunService(
        "orders-run",
        CloudRunServiceArgs(
            image=image, project=project, region=region, port=PORT, health=HEALTH, env=ENV, scaling=SCALING
        ),
    )
    pulumi.export("cloudrun_url", run.url)
