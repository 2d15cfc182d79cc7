# Flint: `make run` on a fresh Debian/Ubuntu machine installs what is missing and starts everything.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
ARGS ?=

.PHONY: all help setup run test bench lint clean distclean

all: setup

help:
	@echo "make setup      install what is missing: apt packages, libvirtd running, .venv/, frontend/dist"
	@echo "make run        setup, then .venv/bin/flint up \$$ARGS (e.g. ARGS=--demo)"
	@echo "make test       setup --with-test, then every test tier (what .ci/run runs)"
	@echo "make bench      the benchmarks in bench/, rewriting BENCHMARKS.md (BENCH=\"console storage\": only those)"
	@echo "make lint       ruff check"
	@echo "make clean      caches and build output; distclean also .venv/ and frontend/node_modules"

setup:
	bash deploy/setup.sh

run: setup
	$(VENV)/bin/flint up $(ARGS)

test:
	bash deploy/setup.sh --with-test
	$(PYTHON) -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests/unit tests/integration tests/e2e

bench:
	$(PYTHON) bench/run_all.py $(BENCH)

lint:
	$(VENV)/bin/ruff check

clean:
	rm -rf frontend/dist build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -path ./frontend/node_modules -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) frontend/node_modules *.egg-info
