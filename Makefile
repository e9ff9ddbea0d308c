# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install the pinned requirements, run the DVC pipeline (embedded data)
#   make test   same set-up, then the test suite
#   make ci     the test suite, a from-scratch `dvc repro` of HEAD and the committed-metrics check
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all ci repro clean-demo

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

ci: $(STAMP)
	.ci/run

clean-demo:
	rm -rf artifacts
