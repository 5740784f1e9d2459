# The two commands that do everything on a fresh machine:
#   make demo   create the environment and run the main job
#   make test   create the environment with test extras and run lint + the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint env env-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

env: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[plot,fast]'

env-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

demo: env
	$(BIN)/numpy-lstm demo

lint: env-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
