# retain: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, and run the end-to-end demo on a synthetic world
#   make test   install and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch goes in first so nothing later pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,transformer]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/retain demo

test: install
	$(VENV)/bin/pytest

bench: install
	$(PY) -m pip install --quiet -e ".[dev,transformer,bench]"
	$(PY) -m benchmarks

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf demo outputs mlflow.db mlruns mlartifacts .pytest_cache
