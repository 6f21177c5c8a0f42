# Two commands on a fresh machine with python3 + pip: `make demo` and `make test`.
# Each creates or reuses .venv and reinstalls -e ".[dev]" only when pyproject.toml changed (hash stamp).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pyproject.sha256

.PHONY: venv demo test nbtest pytest lab bench bench-quick export clean-nbs book

venv:
	@h=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$h" ]; then \
	  echo "== installing image2biomass into $(VENV) (pyproject.toml changed or new venv) =="; \
	  [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || exit 1; \
	  $(BIN)/python -m pip install -q --upgrade pip && \
	  $(BIN)/python -m pip install -q -e ".[dev]" && echo $$h > $(STAMP) || exit 1; \
	fi

demo: venv
	$(BIN)/image2biomass demo --out-dir runs/demo

# pytest -n 2: two worker processes, one torch thread each (tests/conftest.py), slow tests started first
test: venv
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/pytest -q -n 2 tests

nbtest: venv
	$(BIN)/nbdev-test --n-workers 2

pytest: venv
	$(BIN)/pytest -q -n 2 tests

book: venv
	$(BIN)/nbdev-export
	$(BIN)/python -c "from image2biomass.cli import write_cli_spec; write_cli_spec()"
	$(BIN)/python tools/book.py
	$(BIN)/nbdev-clean

export: venv
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean
	$(BIN)/python -c "from image2biomass.cli import write_cli_spec; write_cli_spec()"

lab: venv
	$(BIN)/python -m ipykernel install --user --name image2biomass --display-name "Python (image2biomass)"
	$(BIN)/jupyter lab --notebook-dir nbs

# the speed guard: ratios to references timed in the same run, against benchmarks/baselines.json (fails beyond +25 %)
bench-quick: venv
	$(BIN)/python benchmarks/bench_quick.py

bench: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
