# The two commands of the README. Both create .venv if it is missing and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP) $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/backprop run experiments/house_prices.toml

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy framework

# Two worker processes (pytest-xdist, `-n auto`: one per core): the suite takes ~3 minutes instead of ~5.
test: lint
	$(BIN)/pytest -n auto

# The speed suites (docs/performance.md): training against the numpy floor and its peers (PyTorch joins in when
# installed: pip install -e ".[bench]"), then the wall time of whole commands.
bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/suite.py
	$(BIN)/python benchmarks/bench_cli.py
	$(BIN)/python benchmarks/plot.py -o benchmarks/results/performance.png

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
