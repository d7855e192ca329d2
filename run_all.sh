#!/usr/bin/env bash
# README command 1: the whole pipeline for one study, default `smoke` (packaged MiniLM + local CoNLL-03, CPU).
#   ./run_all.sh [study] [sweep options...]     e.g. ./run_all.sh cpu_study --shard 0/4
# set-up check -> sweep (skips finished cells) -> collect -> figures + REPORT.md. Idempotent: a second run trains nothing.
set -euo pipefail
cd "$(dirname "$0")"
study="${1:-smoke}"
shift || true
. scripts/ensure_env.sh

echo "== set-up check"
paper-repro fetch-models
paper-repro data
echo "== sweep experiments/$study.yaml"
paper-repro sweep "experiments/$study.yaml" "$@"
echo "== collect"
paper-repro collect "results/$study"
paper-repro status "results/$study" --study "experiments/$study.yaml"
echo "== report"
paper-repro report "results/$study" --execute-notebooks
