#!/usr/bin/env bash
# Regenerate the README's generated sections (answer, Results, Performance, parameter budget, layer-cache
# sizes) from the committed parquet, results/budget/*.csv (`paper-repro budget --backbone <b> --write
# results/budget/<b>.csv`) and results/layer_cache/sizes.csv (`python -m paper_repro.train.layer_cache minilm-l6
# mpnet-base --write results/layer_cache/sizes.csv`); `--check` only verifies them (exit 1 when out of date).
# Collect the studies first (`paper-repro collect results/<study>`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" -m paper_repro.analysis.readme_tables README.md --cells results/gpu_h200 --cells results/gpu_h100 \
    --results-study results/cpu_study --results-study results/frozen_study --results-study results/smoke \
    --results-study results/cpu_pilot --results-study results/lr_probe \
    --budget results/budget/minilm-l6.csv --budget results/budget/mpnet-base.csv \
    --layer-cache results/layer_cache/sizes.csv "$@"
