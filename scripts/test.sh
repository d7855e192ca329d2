#!/usr/bin/env bash
# README command 2: install (first time) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure_env.sh
python -m pytest "$@"
