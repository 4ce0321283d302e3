# `make run`: set up and run the embedded default workflow (offline, CPU). `make test`: set up and run the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= all
# Rules run `python -m prefdisco.<stage>`: the venv must come first on PATH for every job.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-fast benchmark lint clean

setup: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch pulls a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not workflow"

benchmark: setup
	$(BIN)/python benchmarks/bench_workflow.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_validation.py

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
