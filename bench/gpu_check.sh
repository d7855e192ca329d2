#!/usr/bin/env bash
# The GPU check behind README "On a GPU": fusion-head step/eval cost in fp32 and bf16, and four cells
# (last, dwatt x fp32, bf16; 100 sentences, tuning seed 100, cpu_study's protocol at head lr 1e-3), on whatever
# CUDA device this machine has. Writes results/bench/head_overhead_gpu*.parquet and results/gpu_check/cells/.
#   BACKBONE=minilm-l6 PAPER_REPRO_CONLL03=/data/conll2003 bash bench/gpu_check.sh
# (README's run used a MiniLM-L6 folder with fp16-rounded weights: the packaged fp32 file did not fit the
# transfer to the lent GPU machine; step times do not depend on the weights' values.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
B=${BACKBONE:-minilm-l6}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check is for a GPU machine')"
$PY bench/head_overhead.py --backbone "$B" --steps 100 --repeats 1 --out results/bench/head_overhead_gpu_h200.parquet
$PY bench/head_overhead.py --backbone "$B" --steps 100 --repeats 1 --heads last,dwatt \
    --set train.mixed_precision=bf16 --out results/bench/head_overhead_gpu_h200_bf16.parquet
common=(model.backbone="$B" data.sampler=sentences data.subset_version=2 train.step_rule=epochs train.steps=200
        train.min_epochs=10.0 train.warmup_steps=20 train.eval_schedule=linear train.eval_points=8
        train.backbone_lr=5e-5 train.head_lr=1e-3 train.seed=100 data.data_seed=100 data.size=100
        results_dir=results study=gpu_check)
for precision in no bf16; do
  for head in last dwatt; do
    $PY -m paper_repro.cli cell "${common[@]}" model.head.name=$head train.mixed_precision=$precision
  done
done
