# The two commands of the README: `make demo` and `make test`. Both build .venv on first use.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The first interpreter in the range isx has wheels for (CPython 3.10-3.13).
PYTHON ?= $(shell for p in python3 python3.12 python3.11 python3.13 python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null \
	&& echo $$p && break; done)

# No telemetry leaves a lab network from anything this project starts.
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg

.PHONY: demo test install install-test clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "cnmflow needs Python 3.10-3.13 (isx has wheels for those only); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@echo "Installing cnmflow into $(VENV) (log: $(VENV)/pip.log) ..."
	@$(BIN)/python -m pip install --disable-pip-version-check -e . > $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log | tail -30; exit 1; }
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "Installing the test extras into $(VENV) ..."
	@$(BIN)/python -m pip install --disable-pip-version-check -e ".[test]" > $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log | tail -30; exit 1; }
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/cnmflow demo --output-dir demo-output

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache
