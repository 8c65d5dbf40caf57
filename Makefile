# StreamGuard developer entry points. `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=

.PHONY: help venv provision prepare up down status lint test test-fast crds demo demo-down bench clean

help:
	@echo "make demo       run the FinServe spine end to end on this machine (development only)"
	@echo "make demo-down  stop everything the demo started"
	@echo "make test       lint, start the local stack, run the whole test suite, stop the stack"
	@echo "make up/down    start/stop the local stack (kube-apiserver, Kafka, registry, Redis)"
	@echo "make lint       ruff + mypy + CRDs in sync with the API models"
	@echo "make bench      run the benchmarks (figures printed and written to benchmarks/results/)"

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

provision: venv
	$(BIN)/streamguard dev provision

up: venv
	$(BIN)/streamguard dev up

down: venv
	$(BIN)/streamguard dev down

status: venv
	$(BIN)/streamguard dev status

crds: venv
	$(BIN)/streamguard crds generate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy tests benchmarks
	$(BIN)/streamguard crds check

# The whole suite against the real stack; the stack is stopped afterwards whatever the outcome.
test: venv lint
	@$(BIN)/streamguard dev provision
	@status=0; { $(BIN)/streamguard dev up && $(BIN)/pytest $(PYTEST_ARGS); } || status=$$?; \
		$(BIN)/streamguard dev down; exit $$status

# The stack's components and the images build (standard library only) while the virtualenv installs.
demo:
	@$(MAKE) --no-print-directory -j2 venv prepare
	$(BIN)/streamguard demo up $(if $(STORE),--store $(STORE))

prepare:
	$(PYTHON) -m streamguard.devstack.prepare

demo-down: venv
	$(BIN)/streamguard demo down

bench: venv
	@$(BIN)/streamguard dev up
	@for script in benchmarks/*/run.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: down
	rm -rf .run build dist *.egg-info
