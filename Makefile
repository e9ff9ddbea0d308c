# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install the pinned requirements, run the DVC pipeline (embedded data)
#   make test   same set-up, then the test suite
#   make ci     the test suite, a from-scratch `dvc repro` of HEAD and the metrics gate (.ci/run)
# Every other README command runs with .venv's tools, from any shell, without activating it:
#   make exp ARGS="-S q=8"      dvc exp run -S q=8
#   make dvc ARGS="exp show"    any dvc command (metrics show, plots diff HEAD~1, exp diff, ...)
#   make study [DRY=1] [PROFILE=paper|authors]  the CPU convergence study (params_study.yaml),
#                               both profiles side by side -> reports/study/, reports/study_authors/
#                               (STATUS=1: how far a running or stopped study has got)
#                               (resumable: rerun to continue)
#   make bench [REF=DIR]        training-step benchmark, demo + paper size -> reports/bench.{json,md}
#                               (on a GPU reports/bench_gpu.*); REF: a NVIDIA/pix2pixHD checkout
#   make edit ARGS="mexgan-cityscapes map.png --edit 4,20,24,30 car"   python -m stages.edit
#   make serve ARGS="--port 8000"  the HuEv study (--invite N: codes; --editor: the editor instead;
#                               the demo's public-seed rows: ARGS=--unblinded-ok, docs/huev.md)
#   make huev-export            the study's votes -> huev/votes.csv (then: make dvc ARGS=repro)
#   make shell                  a shell with .venv activated (`exit` to leave); the same as
#                               `. .venv/bin/activate` in the current shell
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The stages' `python -m stages...` must find .venv's python first (stages/__init__.py also
# re-executes a python that lacks the requirements under .venv/bin/python).
WITH_VENV := PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"
ARGS ?=
DRY ?= 0
FINISH ?= 0
STATUS ?= 0
JOBS ?=

.PHONY: demo test test-all ci repro exp dvc shell study bench edit serve huev-export browser clean-demo

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(WITH_VENV) $(BIN)/dvc repro

# The browser test (tests/test_browser.py) drives Debian's chromium through Playwright (whose
# own browser download needs internet). Installed here when missing and run as root; otherwise
# the test fails saying how to install it.
browser:
	@if [ -z "$$MEXGAN_CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1 \
	    && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for tests/test_browser.py"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null; \
	  else \
	    echo "no chromium: tests/test_browser.py will fail; install it: sudo apt-get install -y chromium"; \
	  fi; \
	fi

test: $(STAMP) browser
	$(WITH_VENV) $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) browser
	$(WITH_VENV) $(BIN)/python -m pytest -q

exp: $(STAMP)
	$(WITH_VENV) $(BIN)/dvc exp run $(ARGS)

dvc: $(STAMP)
	$(WITH_VENV) $(BIN)/dvc $(ARGS)

shell: $(STAMP)
	@echo "a shell with $(VENV) activated; exit to leave"
	@$(WITH_VENV) $${SHELL:-bash} -i

edit: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m stages.edit $(ARGS)

serve: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m stages.serve $(ARGS)

huev-export: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m stages.serve --export $(ARGS)

PROFILE ?= all
study: $(STAMP)
	DRY=$(DRY) FINISH=$(FINISH) STATUS=$(STATUS) JOBS=$(JOBS) tools/study.sh $(PROFILE)

REF ?=
bench: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m stages.benchmark $(if $(REF),--reference $(REF))

ci: $(STAMP)
	.ci/run

clean-demo:
	rm -rf artifacts

# The GPU study run (tools/gpu_study.sh, docs/gpu-and-benchmark.md): the wheels the GPU machine
# lacks, Debian's git and the commit, into .whl/ (git-ignored), for the `run` call to carry.
.PHONY: gpu-study-wheels
gpu-study-wheels: $(STAMP)
	PYTHON=$(BIN)/python bash tools/gpu/wheels.sh
