# One entry point per job. `make app` and `make test` are the README's two set-up commands.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: app test check lint format install install-test

install:
	scripts/install.sh

install-test:
	scripts/install.sh test

## Install what is needed and open the app (on the embedded MiniLM and the demo data).
app: install
	$(VENV)/bin/tunesmith

## Install what is needed and run the test suite.
test: install-test
	$(PY) -m pytest -q

## ruff (format check and lint), then the tests.
check: install-test lint
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
