# longctx-lab: the two commands a learner or instructor needs are `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The install stamp changes whenever the dependency files change, so `make` reinstalls then.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup lab test test-fast lint exercises book bench clean help

help:
	@echo "make lab        create .venv if needed, install, open JupyterLab on notebooks/"
	@echo "make test       create .venv if needed, install, run every check (what CI runs)"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"
	@echo "make bench      run the benchmarks and record JSON under benchmarks/results/"

$(STAMP): pyproject.toml constraints.txt
	@date +%s > /tmp/longctx-lab-install-start
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# torch first, pinned: on a CPU machine this takes the CPU build; users with CUDA keep theirs.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (longctx-lab)" >/dev/null
	rm -f $(VENV)/.installed-*
	@echo $$(( $$(date +%s) - $$(cat /tmp/longctx-lab-install-start) )) > $(VENV)/.install-seconds
	touch $@

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

test: setup
	$(BIN)/python tools/stages.py

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

lint: setup
	$(BIN)/ruff check .

exercises: setup
	$(BIN)/python tools/make_exercises.py

bench: setup
	$(BIN)/longctx-lab bench notebooks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
