#!/usr/bin/env bash
# README command 1: the main job. Default `smoke` (packaged MiniLM + local CoNLL-03, CPU):
#   ./run_all.sh                 set-up check -> re-train a sample of the committed smoke cells from their
#                                manifests and compare the metrics (paper-repro verify) -> collect -> report
#   ./run_all.sh STUDY [opts]    e.g. ./run_all.sh cpu_study --shard 0/2: sweep (trains pending cells only,
#                                stages in order) -> collect -> status -> figures + REPORT.md
# The reports are byte-stable: on unchanged results a rerun leaves the tree clean.
#   VERIFY_SAMPLE   how many smoke cells to re-train (default 4; `all` = 12)
set -euo pipefail
cd "$(dirname "$0")"
study="${1:-smoke}"
shift || true
. scripts/ensure_env.sh

echo "== set-up check"
paper-repro fetch-models
paper-repro data
if [ "$study" = smoke ] && [ $# -eq 0 ]; then
  echo "== re-train committed smoke cells from their manifests and compare (paper-repro verify)"
  paper-repro verify results/smoke --sample "${VERIFY_SAMPLE:-4}"
else
  echo "== sweep experiments/$study.yaml"
  paper-repro sweep "experiments/$study.yaml" "$@"
fi
echo "== collect"
paper-repro collect "results/$study"
paper-repro status "results/$study" --study "experiments/$study.yaml"
echo "== report"
paper-repro report "results/$study" --execute-notebooks
