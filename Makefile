# The two set-up commands of the README: `make demo` and `make test`. Each creates the virtual
# environment when it is missing (or when pyproject.toml changed) and installs ndevgan into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ndevgan-installed

.PHONY: demo test test-slow lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Train the TGAN-ODE `tiny` preset on the built-in shapes dataset (a few minutes on a CPU).
demo: $(STAMP)
	$(BIN)/ndevgan run

## Lint, check formatting, then run the fast test suite.
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

## The long tests (minutes each); "no tests collected" (exit 5) is not a failure.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q || test $$? -eq 5

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python tools/bench_step.py
	$(BIN)/python tools/bench_temporal.py
	$(BIN)/python tools/bench_data.py
	$(BIN)/python tools/bench_metrics.py
	$(BIN)/python tools/bench_onnx.py
	$(BIN)/python tools/bench_distributed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
