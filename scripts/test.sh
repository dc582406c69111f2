#!/usr/bin/env bash
# Sets up a fresh virtual environment (.venv) with the package and its test extra, then runs the CPU test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch 2.13.0 first, in the same command: otherwise ltx-core's torch pin lets pip choose a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 -e ".[test]"
# PyPI's torchaudio wheel is a CUDA build that cannot load beside CPU torch; without its native libraries it is pure
# Python, which is all ltx-core's audio modules and our torchaudio comparison test need. The package itself never
# imports torchaudio.
rm -f .venv/lib/python3*/site-packages/torchaudio/lib/*.so
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q -m "not gpu" "$@"
