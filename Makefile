# The two commands a newcomer needs: `make serve` (run it locally) and `make test`. Both build the
# virtual environment themselves on first use; nothing else has to be installed (no Docker, no AWS account).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve
UV_VERSION := 0.13.8
PORT ?= 3000
# SAM CLI lives in its own environment: its pins must not fight the project's.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
STACK ?= mistral-gateway
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help serve test lint typecheck format bench build deploy validate invoke moto openapi events chat clean keys smoke

help:
	@echo "make serve   run the API on http://127.0.0.1:$(PORT) (no Docker, no AWS, no key needed)"
	@echo "make test    lint + the whole test suite"
	@echo "make bench   cold start, overhead, memory, size and cost benchmark (BENCH_ARGS=--smoke: a quick pass; PEERS=litellm: side by side with LiteLLM)"
	@echo "make invoke EVENT=events/chat.json   one API Gateway event through the handler"
	@echo "make moto    a moto server with the template's table and secret (for sam local)"
	@echo "make keys ARGS='--local list'   caller keys, budgets, models, spend (--stack NAME: a deployed stack)"
	@echo "make smoke URL=... KEY=...   check a deployed gateway (ARGS='--stack NAME': 403/429 checks too)"
	@echo "make chat    a terminal chatbot against make serve (URL=... for a deployed gateway)"
	@echo "make build   sam build (arm64, Python 3.13) and check the artifact"
	@echo "make deploy  sam deploy --guided, then print the steps to set the key and create caller keys"

# Two install stamps: what `make serve` needs (requirements-serve.txt), then the test and lint toolchain on top
# (requirements-dev.txt, which includes the serve file). Editing a requirements file reinstalls what it feeds.
# local/install.sh creates the venv and installs with uv (pinned here, fetched from PyPI), or pip without it.
$(SERVE_STAMP): requirements-serve.txt pyproject.toml layers/gateway/pyproject.toml layers/gateway/requirements.txt layers/gateway/constraints.txt local/install.sh
	@bash local/install.sh $(PYTHON) $(VENV) $(UV_VERSION) requirements-serve.txt "what make serve needs"
	@touch $@

$(STAMP): $(SERVE_STAMP) requirements-dev.txt
	@bash local/install.sh $(PYTHON) $(VENV) $(UV_VERSION) requirements-dev.txt "the test and lint toolchain"
	@touch $@

serve: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.runner.serve --port $(PORT)

test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m gateway_dev.bench $(if $(PEERS),--peers $(PEERS)) $(BENCH_ARGS)

invoke: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.runner.invoke $(EVENT) --times $(or $(TIMES),1)

# Caller keys of make serve (ARGS="--local list") or of a deployed stack (ARGS="--stack NAME create team-a").
keys: $(SERVE_STAMP)
	$(BIN)/mistral-gateway keys $(ARGS)

# After `sam deploy` (or against make serve): one PASS/FAIL line per check. ARGS="--stack NAME" or ARGS=--local adds
# the 403 and 429 checks with a throwaway key.
smoke: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.ops.smoke --url "$(URL)" --key "$(KEY)" $(ARGS)

chat: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.ops.cli chat --url $(or $(URL),http://127.0.0.1:$(PORT))

events: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.runner.events

openapi: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.ops.openapi_export

moto: $(SERVE_STAMP)
	$(BIN)/python -m gateway_dev.runner.moto_server

$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

# No Docker and no local Python 3.13 needed: every build method is a makefile (the layer's pip targets arm64).
build: $(STAMP) $(SAM_VENV)/.installed
	SAM_CLI_TELEMETRY=0 $(SAM) build --template-file template.yaml
	$(BIN)/python -m gateway_dev.ops.build_check .aws-sam/build

validate: $(SAM_VENV)/.installed
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region $(AWS_DEFAULT_REGION)

deploy: build
	SAM_CLI_TELEMETRY=0 $(SAM) deploy --guided --stack-name $(STACK)
	$(BIN)/python -m gateway_dev.ops.after_deploy --stack $(STACK)

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mypy_cache .ruff_cache
