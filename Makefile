# Quick start: `make demo` (runs the bot on its built-in market), `make test` (the test suite).
# Both create .venv from pyproject.toml on first use; nothing else needs installing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-all bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m bot.fast.warm  # compile the fast path once (numba cache), not in the user's first command
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bot demo

# 4 workers on 2 cores: most tests wait on emulator and daemon processes, not on the CPU
TEST_WORKERS ?= 4

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist worksteal

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) data/demo.db* .pytest_cache .hypothesis
