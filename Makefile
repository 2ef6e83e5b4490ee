# One command for the main job, one for the tests; each installs what it needs (uv included).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
STACK ?= prod-ecs
# uv's own TLS stack ignores the system certificate store; behind a TLS-intercepting proxy (whose CA is in
# the system store) the first `uv sync` would fail with "invalid peer certificate: UnknownIssuer". Use the
# system store, as pip and curl do (UV_SYSTEM_CERTS: uv >= 0.13; older uv called it UV_NATIVE_TLS).
export UV_SYSTEM_CERTS ?= 1

.PHONY: help uv sync plan plan-json doctor verify status logs test lint typecheck run docs

help:
	@echo "make plan [STACK=prod-ecs]   offline plan (resources, tuning, policy, cost) - no cloud credentials"
	@echo "make plan-json [STACK=...]   the same as JSON (the machine-readable contract)"
	@echo "make doctor STACK=...        preflight against the cloud (needs credentials)"
	@echo "make verify STACK=...        post-deploy checks of a stack's outputs (needs the Pulumi CLI or"
	@echo "                             OUTPUTS=file.json from \`pulumi stack output --json\`)"
	@echo "make status STACK=...        deployed vs running release, counts, a rollback detected (needs credentials)"
	@echo "make logs STACK=... [SINCE=10m]  the service's logs (CloudWatch, Cloud Logging, docker logs over SSH)"
	@echo "make test                    lint, type-check and the whole test suite"
	@echo "make run                     the service locally exactly as the container runs it"
	@echo "make docs                    regenerate docs/stack-config.md from the stack config models"
	@echo "Any other command: $(UV) run infra --help"

# uv from PyPI into a project-local tool venv when it is not already on PATH.
$(CURDIR)/.tools/bin/uv:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "make: python3 cannot create virtual environments; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	  exit 1; }
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet 'uv>=0.13,<1'

uv: $(UV)

sync: uv
	$(UV) sync --frozen

plan: sync
	$(UV) run infra plan --stack $(STACK)

plan-json: sync
	$(UV) run infra plan --stack $(STACK) --format json

doctor: sync
	$(UV) run infra doctor --stack $(STACK)

verify: sync
	$(UV) run infra verify --stack $(STACK) $(if $(OUTPUTS),--outputs $(OUTPUTS))

status: sync
	$(UV) run infra status --stack $(STACK) $(if $(OUTPUTS),--outputs $(OUTPUTS))

logs: sync
	$(UV) run infra logs --stack $(STACK) --since $(or $(SINCE),10m)

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run hadolint Dockerfile

typecheck: sync
	$(UV) run mypy app fastapi_deploy infra policy bench

test: lint typecheck
	$(UV) run pytest -q

run: sync
	$(UV) run python -m devenv.run

docs: sync
	$(UV) run python -m fastapi_deploy.reference
	$(UV) run python -m fastapi_deploy.component_reference
