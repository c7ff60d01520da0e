# Every target creates .venv (Python ≥ 3.11) and installs the project into it when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run demo test lint typecheck bench bench-peers screenshots clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@$(BIN)/python -m app.syscheck  # names every missing system library Qt needs
	$(BIN)/wfstudio studio resources/workspace

demo: $(STAMP)
	$(BIN)/wfstudio demo

test: $(STAMP)
	$(BIN)/ruff check engine app tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider --timeout 300

lint: $(STAMP)
	$(BIN)/ruff check engine app tests benchmarks
	$(BIN)/ruff format --check engine app tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/run.py

# DBOS and Node-RED next to the engine and the server (installs them under benchmarks/peers/).
bench-peers: $(STAMP)
	bash benchmarks/peers/install.sh
	$(BIN)/python benchmarks/peers/run.py

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m app.screenshots

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
