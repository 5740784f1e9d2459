# The two commands that do everything on a fresh machine:
#   make demo   create the environment and run the main job
#   make test   create the environment with test extras, install the browser, run lint + the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# apt-get needs root: CI runs as root; elsewhere sudo asks.
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint env env-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

env: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[plot,fast]'

env-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

# The explorer's browser tests (tests/test_explorer_browser.py) drive Debian's Chromium through
# its own chromedriver, so Selenium never downloads a browser; install both when either is missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing Debian's chromium and chromium-driver for the explorer's browser tests"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

demo: env
	$(BIN)/numpy-lstm demo

lint: env-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
