#!/usr/bin/env bash
# Fetch, here (where PyPI is reachable), the wheels that a GPU machine of the `device` tool
# lacks for sparsify's driver, into .whl/ (git-ignored; carried with `carry: [".whl"]`).
# The machine's image already holds CUDA torch, transformers, accelerate, einops,
# safetensors, pyarrow, pandas, xxhash, fsspec and psutil; these are the rest, at the
# versions of the CPU benchmark's sparsify venv. SAELens is not carried: transformer-lens,
# plotly and nltk would take most of the 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  eai-sparsify==1.3.3 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 natsort==8.4.0 \
  schedulefree==1.4.1 simple-parsing==0.1.9 docstring-parser==0.18.0
ls .whl
