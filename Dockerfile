# syntax=docker/dockerfile:1.7
# One image for every target: ECS Fargate, Cloud Run and the VPS run the default CMD (gunicorn);
# Lambda overrides the command with `python -m awslambdaric app.lambda_handler.handler`.

# uv from its own image, pinned to the version that wrote uv.lock, so the build needs no pip/curl bootstrap.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.12-slim AS build
COPY --from=uv /uv /usr/local/bin/uv
# Compile bytecode at build time (a read-only or non-root runtime cannot write __pycache__, and cold
# starts on Lambda/Cloud Run skip the compile); copy instead of hard-link across the cache mount.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
# Only the service group: not the deployer (the project itself, pulumi), dev (pytest, moto, ruff) or bench.
# --no-build: wheels only, so no compiler is needed here and none can leak into the runtime stage.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --only-group service --no-install-project --no-build

FROM python:3.12-slim AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
# Owned by root, read-only for the app user: a compromised worker cannot rewrite the code it runs.
COPY app/ ./app/
# The service's own bytecode too (the venv's is compiled by UV_COMPILE_BYTECODE above): the runtime cannot
# write __pycache__ (read-only tree, PYTHONDONTWRITEBYTECODE), so without this every Lambda cold start and
# every worker boot compiled app/*.py again. checked-hash: valid whatever mtimes the image layers keep.
RUN python -m compileall -q --invalidation-mode checked-hash app/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000 \
    APP_ENV=production
USER 10001:10001
EXPOSE 8000
# Liveness only (no DB): python's urllib, so the slim image needs no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "--config", "app/gunicorn_conf.py", "app.main:create_app()"]
