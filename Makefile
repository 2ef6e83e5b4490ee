# One command for the main job, one for the tests; each installs what it needs (uv included).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
STACK ?= prod-ecs

.PHONY: help uv sync plan test lint typecheck run

help:
	@echo "make plan [STACK=prod-ecs]  offline plan (resources, tuning, policy, cost) - no cloud credentials"
	@echo "make test                   lint, type-check and the whole test suite"
	@echo "make run                    the service locally exactly as the container runs it"

# uv from PyPI into a project-local tool venv when it is not already on PATH.
$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet 'uv>=0.5'

uv: $(UV)

sync: uv
	$(UV) sync --frozen

plan: sync
	$(UV) run infra plan --stack $(STACK)

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run hadolint Dockerfile

typecheck: sync
	$(UV) run mypy app infra policy

test: lint typecheck
	$(UV) run pytest -q

run: sync
	$(UV) run python -m devenv.run
