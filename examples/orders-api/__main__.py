"""orders-api (./service: its own FastAPI image, port 8080, /healthz) on ECS Fargate and on Cloud Run."""

from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_gcp as gcp

from fastapi_deploy.cloudrun import CloudRunService
from fastapi_deploy.ecs import FargateService
from fastapi_deploy.image import default_tag

targets = pulumi.Config("orders-api").get_object("targets") or ["ecs", "cloudrun"]
service = {
    "port": 8080,
    "health": {"liveness_path": "/healthz", "readiness_path": "/readyz"},
    "env": {"ORDERS_CURRENCY": "EUR"},
    "scaling": {"min": 1, "max": 4},
}


def build(name: str, repo, server, user, password) -> pulumi.Output[str]:
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
    pulumi.export("ecs_url", FargateService("orders-ecs", {**service, "image": image}).url)

if "cloudrun" in targets:
    project, region = pulumi.Config("gcp").require("project"), pulumi.Config("gcp").require("region")
    ar = gcp.artifactregistry.Repository("orders", repository_id="orders", format="DOCKER", location=region)
    token = gcp.organizations.get_client_config_output().access_token
    repo = pulumi.Output.concat(ar.registry_uri, "/orders")
    image = build("orders-ar", repo, f"{region}-docker.pkg.dev", "oauth2accesstoken", token)
    run = CloudRunService("orders-run", {**service, "image": image, "project": project, "region": region})
    pulumi.export("cloudrun_url", run.url)
