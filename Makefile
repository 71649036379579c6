# The two commands of the README contract: `make demo` and `make test`.
# Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: demo test test-processes test-rest lint typecheck check install clean

# The Django backend is tested on Django 6 (`django.tasks`, Python >= 3.12) from a second
# environment, beside Django 5.2 + the django-tasks backport in .venv (Python 3.11). The
# interpreter: pyenv's 3.12, else python3.12 on PATH, else PY312=/path/to/python3.12.
PY312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 \
	$(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12))
DJ6 := .venv-django6
DJ6_STAMP := $(DJ6)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

$(DJ6_STAMP): pyproject.toml
	@test -n "$(PY312)" || { echo "make test: no Python 3.12 for the Django 6 tests: install \
	one (pyenv install 3.12, or apt-get install python3.12) or set PY312=/path/to/python3.12"; \
	exit 1; }
	test -x $(DJ6)/bin/python || $(PY312) -m venv $(DJ6)
	$(DJ6)/bin/python -m pip install --quiet --upgrade pip
	$(DJ6)/bin/pip install --quiet -e '.[postgres]' 'django>=6,<7'
	rm -f $(DJ6)/.installed-* && touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install  ## run the demo on the embedded SQLite default
	$(BIN)/taskward demo

# Every test, in two pytest processes at once (each starts its own servers on free ports):
# the suites that spend their time waiting on worker processes and a browser beside the rest,
# so the whole run fits a 2-core CI machine. Each prints its report when it ends.
REQUIRE := TASKWARD_REQUIRE_PG=1 TASKWARD_REQUIRE_REDIS=1 TASKWARD_REQUIRE_BROWSER=1 \
	TASKWARD_REQUIRE_DJANGO6=1 TASKWARD_DJANGO6_PYTHON=$(CURDIR)/$(DJ6)/bin/python
SPLIT := tests/reliability tests/browser

# First the system packages the suites need (one line naming any missing, and how to install).
test:  ## check the system packages, lint, type-check and run every test
	@bash .ci/check-system
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory -j2 --output-sync=target test-processes test-rest

test-processes: install
	$(REQUIRE) $(BIN)/pytest $(SPLIT)

test-rest: install $(DJ6_STAMP)
	$(REQUIRE) $(BIN)/pytest $(addprefix --ignore=,$(SPLIT))

lint: install
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint typecheck

clean:
	rm -rf $(VENV) $(DJ6) .pytest_cache .mypy_cache .ruff_cache demo.db*

# Side-by-side benchmark with the peers (issue 5); NOT part of `make test` or CI.
# Creates bench/.venv (peers + taskward editable) and bench/.venv312 (oban), installs
# redis-server if missing, starts throwaway Redis/PostgreSQL, writes bench/results/.
BENCH_PY311 ?= python3.11
BENCH_PY312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) python3.12)
BENCH_STAMP := bench/.venv/.installed-$(shell cat bench/requirements.txt pyproject.toml | md5sum | cut -c1-8)
BENCH312_STAMP := bench/.venv312/.installed-$(shell cat bench/requirements-py312.txt | md5sum | cut -c1-8)

.PHONY: bench bench-clean bench-install

$(BENCH_STAMP):
	test -x bench/.venv/bin/python || $(BENCH_PY311) -m venv bench/.venv
	bench/.venv/bin/pip install --quiet --upgrade pip
	bench/.venv/bin/pip install --quiet -r bench/requirements.txt -e '.[postgres,uvloop]'
	rm -f bench/.venv/.installed-* && touch $@

$(BENCH312_STAMP):
	test -x bench/.venv312/bin/python || $(BENCH_PY312) -m venv bench/.venv312
	bench/.venv312/bin/pip install --quiet --upgrade pip
	bench/.venv312/bin/pip install --quiet -r bench/requirements-py312.txt
	rm -f bench/.venv312/.installed-* && touch $@

bench-install: $(BENCH_STAMP) $(BENCH312_STAMP)
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

bench: bench-install  ## the side-by-side benchmark (RUNS=3 BENCH_N=10000; see bench/README.md)
	bench/.venv/bin/python bench/run.py $(SYSTEMS)

bench-clean:
	rm -rf bench/.venv bench/.venv312 bench/data
