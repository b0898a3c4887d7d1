# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lookout demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The style rules, the layer contracts (pyproject.toml's [tool.importlinter]) and the types.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/crawl.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
