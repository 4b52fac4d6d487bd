# Two entry points: `make run` starts the daemon, `make test` runs the whole suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/notifyd.example.toml

.PHONY: run test lint install

$(BIN)/notifyd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# BIMserver's JavaScript client for tests/test_bimserverapi_flows.py, from the lock file.
tests/js/node_modules/.package-lock.json: tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --ignore-scripts

install: $(BIN)/notifyd

run: install
	$(BIN)/notifyd serve --config $(CONFIG) --data-dir data

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# pytest's exit code 5 (no tests collected) is a failure here, never a silent pass.
test: install tests/js/node_modules/.package-lock.json
	$(BIN)/ruff format --check . && $(BIN)/ruff check . && $(BIN)/lint-imports && $(BIN)/mypy
	$(BIN)/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc
