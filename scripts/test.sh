#!/usr/bin/env bash
# Install raypipe with its test extra into .venv and run the whole test suite.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
# constraints.txt pins torch to the CPU build on CPU-only machines; PIP_CONSTRAINT (not -c)
# also reaches the isolated build environments of source-only packages such as DeepSpeed.
export PIP_CONSTRAINT="$PWD/constraints.txt"
# serve: the end-to-end test runs the real `transformers serve`
pip install --quiet -e ".[dev,serve]"
export DS_ACCELERATOR=cpu
set +e
python -m pytest "$@"
code=$?
set -e
# pytest's 5 means "no test collected": that is a failure of this script, not a pass.
exit $code
