#!/usr/bin/env bash
# README command 2: install (first time) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure_env.sh
# Two pytest workers by default (`PAPER_REPRO_TEST_WORKERS`, 0 = one process; an explicit -n wins), a test file
# per worker at a time (module fixtures built once). On the 2-core CI host the whole `.ci/run` (install, Slurm and
# this suite) took 358 s and 372 s at two recent landings (`issues stops`).
workers=(-n "${PAPER_REPRO_TEST_WORKERS:-2}" --dist loadfile)
for arg in "$@"; do   # one process where the user asks for their own workers, xdist off, or a debugger
  case "$arg" in -n|-n*|--numprocesses*|--dist*|no:xdist|-pno:xdist|--pdb|--trace) workers=() ;; esac
done
[ "${PAPER_REPRO_TEST_WORKERS:-2}" = "0" ] && workers=()
python -m pytest ${workers[@]+"${workers[@]}"} "$@"
