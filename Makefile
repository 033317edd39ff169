# The two commands a newcomer needs: `make run` (the whole system) and `make test` (every test).
SHELL := /bin/bash
UV ?= uv

.PHONY: install run test test-tools test-unit test-integration test-e2e test-faults lint fmt bench docs up down demo validate-deploy observability observability-chart

install:  ## install the locked dependencies (and uv itself if missing), compiled to bytecode: every service starts faster
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode

run: install  ## servers (Docker if need be), the Telegram stand-in, one migration, all services; Ctrl-C stops all
	@$(UV) run sns-telegram dev

demo: install  ## `make run`, plus a linked demo chat in the stand-in with one message of each type
	@$(UV) run sns-telegram dev --demo

test-tools: install  ## the programs the tests need (Chromium): installed from Debian's packages, or one line saying how
	@$(UV) run python scripts/test_tools.py

test: install test-tools  ## unit, integration and e2e tests against real PostgreSQL and RabbitMQ
	$(UV) run pytest

test-unit: install
	$(UV) run pytest -m unit

test-integration: install
	$(UV) run pytest -m integration

test-e2e: install test-tools
	$(UV) run pytest -m e2e

test-faults: install  ## fault suite (~6.5 min): kill -9, RabbitMQ/PostgreSQL restarts, Telegram faults, replicas, bad input
	$(UV) run pytest tests/faults -v

lint: install  ## ruff format check, ruff lint, mypy, the import walls between packages (lint-imports)
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy
	$(UV) run lint-imports

fmt: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

validate-deploy: install  ## Dockerfile (hadolint, build replay), compose config, kustomize + Kubernetes schemas
	bash deploy/validate.sh

bench: install  ## benchmarks; results in bench/results/
	$(UV) run python -m bench

docs: install  ## regenerate docs/asyncapi.json from the code
	$(UV) run python -m services.asyncapi > docs/asyncapi.json

observability: install  ## regenerate deploy/observability/'s dashboard.json and prometheusrule.yaml from their sources
	$(UV) run python deploy/observability/generate.py

observability-chart: install test-tools  ## deploy/observability/dashboard.png: the dashboard's queries over a real run (~2 min)
	$(UV) run python -m bench.dashboard_chart

up:  ## the whole system in containers
	docker compose -f deploy/docker-compose.yml --profile dev up -d --build

down:
	docker compose -f deploy/docker-compose.yml --profile dev down
