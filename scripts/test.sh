#!/usr/bin/env bash
# Sets up a fresh virtual environment (.venv) with the package and its test extra, then runs the CPU test suite.
# Usage: bash scripts/test.sh [pytest args]
# The install runs again only when pyproject.toml, scripts/constraints.txt or this script change (a stamp in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.ltx2-diffusers-install
wanted=$(cat pyproject.toml scripts/constraints.txt scripts/test.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  # torch 2.13.0 first, in the same command: otherwise ltx-core's torch pin lets pip choose a multi-GB CUDA build.
  .venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt torch==2.13.0 -e ".[test]"
  # PyPI's torchaudio wheel is a CUDA build that cannot load beside CPU torch; without its native libraries it is
  # pure Python, which is all ltx-core's audio modules and our torchaudio comparison test need. The package itself
  # never imports torchaudio.
  rm -f .venv/lib/python3*/site-packages/torchaudio/lib/*.so
  echo "$wanted" > "$stamp"
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q -m "not gpu" "$@"
