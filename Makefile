# Two commands for a fresh machine:
#   make demo   set up .venv, install gridconv, run the main job
#   make test   set up .venv, install gridconv with its test tools, lint, type-check, run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CI runs the slow tests too; a local `make test` skips them (run `make test-all` for all).
PYTEST_ARGS ?= $(if $(CI),,-m "not slow")

.PHONY: demo test test-all lint typecheck docs format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# A CPU-only torch wheel on local disk, when there is one, saves a multi-GB CUDA download;
	@# otherwise the next line takes torch from the package index.
	-$(PY) -m pip install --quiet --no-index --no-deps "torch>=2.4" 2>/dev/null
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m gridconv demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

# mypy reads its settings (files, strictness) from pyproject.toml
typecheck: $(STAMP)
	$(PY) -m mypy

# the documentation site, strictly (a warning fails the build); the gallery's scripts run
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: lint typecheck
	$(PY) -m pytest

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis gridconv-report docs/_build docs/gallery
