#!/usr/bin/env bash
# The GPU checks behind README "On a GPU", on whatever CUDA device this machine has (TAG names the output files).
#   BACKBONE=minilm-l6 PAPER_REPRO_CONLL03=/data/conll2003 TAG=h100 bash bench/gpu_check.sh [minilm|shapes|all]
# minilm (the H200 session's check): fusion-head step/eval cost in fp32 and bf16, and four cells (last, dwatt x
#   fp32, bf16; 100 sentences, tuning seed 100, cpu_study's protocol at head lr 1e-3) -> results/bench/
#   head_overhead_gpu_$TAG*.parquet, results/gpu_check/cells/.
# shapes (the H100 session's check): the frozen track (bench/frozen.py, two repeats) and paper.yaml's encoder shapes
#   (bench/shape_backbone.py: BERT-base and XLM-R-large shapes, random weights) under fp32 and bf16 autocast ->
#   results/bench/frozen_gpu_$TAG.parquet, head_overhead_gpu_${TAG}_shapes{,_bf16}{,_r3}.parquet (files of their
#   own: a bench file keeps the rows of other backbones, so sharing minilm's would mix the two checks).
# compile (train.compile, train.tf32; inductor's caches off, so every compile is cold: the first H100 run shared
#   them): cells eager and compiled (dwatt, 100 sentences, tuning seed 100, cpu_study's tune_e20 protocol at head
#   lr 1e-4; CELL_MODES, default "none default") -> results/gpu_check/cells/; step/eval/warm-up cost of last and
#   dwatt per mode (BENCH_MODES, the same default) -> head_overhead_gpu_${TAG}_compile_{eager,default}.parquet.
#   (reduce-overhead, CUDA graphs, was run this way on an H200 from commit 82a5e34 and crashed: validate.REFUSED.)
# compile-shapes: the same at BERT-base's shape (random weights), plus TF32 ->
#   head_overhead_gpu_${TAG}_shapes_compile_{eager,tf32,default}.parquet.
# (README's runs used a MiniLM-L6 folder with fp16-rounded weights: the packaged fp32 file did not fit the
# transfer to the lent GPU machine; step times do not depend on the weights' values.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
B=${BACKBONE:-minilm-l6}
TAG=${TAG:-gpu}
WHAT=${1:-all}   # minilm | shapes | compile | compile-shapes | all
OUT_DIR=${OUT_DIR:-results/bench}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check is for a GPU machine')"

if [ "$WHAT" = minilm ] || [ "$WHAT" = all ]; then
  $PY bench/head_overhead.py --backbone "$B" --steps 100 --repeats 1 --out $OUT_DIR/head_overhead_gpu_$TAG.parquet
  $PY bench/head_overhead.py --backbone "$B" --steps 100 --repeats 1 --heads last,dwatt \
      --set train.mixed_precision=bf16 --out $OUT_DIR/head_overhead_gpu_${TAG}_bf16.parquet
  common=(model.backbone="$B" data.sampler=sentences data.subset_version=2 train.step_rule=epochs train.steps=200
          train.min_epochs=10.0 train.warmup_steps=20 train.eval_schedule=linear train.eval_points=8
          train.backbone_lr=5e-5 train.head_lr=1e-3 train.seed=100 data.data_seed=100 data.size=100
          results_dir=results study=gpu_check)
  for precision in no bf16; do
    for head in last dwatt; do
      $PY -m paper_repro.cli cell "${common[@]}" model.head.name=$head train.mixed_precision=$precision
    done
  done
fi

if [ "$WHAT" = shapes ] || [ "$WHAT" = all ]; then
  $PY bench/frozen.py --backbone "$B" --repeats 2 --out $OUT_DIR/frozen_gpu_$TAG.parquet
  tmp=${SHAPES_DIR:-/tmp}   # a fixed path: the shape's folder is the bench rows' `backbone` (reruns replace rows)
  for shape in bert-base xlmr-large; do
    $PY bench/shape_backbone.py $shape "$tmp/shape-$shape" --tokenizer-from "$B"
    for precision in no bf16; do
      suffix=$([ $precision = bf16 ] && echo _bf16 || true)
      $PY bench/head_overhead.py --backbone "$tmp/shape-$shape" --steps 50 --repeats 1 --heads last,deeper,concat,dwatt \
          --set train.mixed_precision=$precision --out $OUT_DIR/head_overhead_gpu_${TAG}_shapes${suffix}.parquet
    done
  done
  for precision in no bf16; do
    suffix=$([ $precision = bf16 ] && echo _bf16 || true)
    $PY bench/head_overhead.py --backbone "$tmp/shape-xlmr-large" --steps 40 --repeats 3 --heads last,dwatt \
        --set train.mixed_precision=$precision --out $OUT_DIR/head_overhead_gpu_${TAG}_shapes${suffix}_r3.parquet
  done
  rm -rf "$tmp/shape-bert-base" "$tmp/shape-xlmr-large"
fi

if [ "$WHAT" = compile ] || [ "$WHAT" = all ] || [ "$WHAT" = compile-shapes ]; then
  fresh_cache() { export TORCHINDUCTOR_FORCE_DISABLE_CACHES=1; }   # every compile is a cold one (no inductor caches)
fi

if [ "$WHAT" = compile ] || [ "$WHAT" = all ]; then
  common=(model.backbone="$B" data.sampler=sentences data.subset_version=2 train.step_rule=epochs train.steps=200
          train.min_epochs=20.0 train.warmup_steps=20 train.eval_schedule=linear train.eval_points=8
          train.backbone_lr=5e-5 train.head_lr=1e-4 train.seed=100 data.data_seed=100 data.size=100
          results_dir=${RESULTS_DIR:-results} study=gpu_check)
  for mode in ${CELL_MODES-none default}; do
    fresh_cache; $PY -m paper_repro.cli cell "${common[@]}" model.head.name=dwatt train.compile=$mode
  done
  for mode in ${BENCH_MODES-none default}; do
    name=$([ $mode = none ] && echo eager || echo $mode)
    fresh_cache; $PY bench/head_overhead.py --backbone "$B" --steps 100 --warmup 10 --eval-passes 3 --repeats 1 --heads last,dwatt \
        --set train.compile=$mode --out $OUT_DIR/head_overhead_gpu_${TAG}_compile_$name.parquet
  done
fi

if [ "$WHAT" = compile-shapes ] || [ "$WHAT" = all ]; then
  tmp=${SHAPES_DIR:-/tmp}
  $PY bench/shape_backbone.py bert-base "$tmp/shape-bert-base" --tokenizer-from "$B"
  for variant in eager:train.compile=none tf32:train.tf32=true default:train.compile=default; do
    fresh_cache; $PY bench/head_overhead.py --backbone "$tmp/shape-bert-base" --steps 50 --warmup 10 --eval-passes 3 --repeats 1 \
        --heads last,dwatt --set ${variant#*:} --out $OUT_DIR/head_overhead_gpu_${TAG}_shapes_compile_${variant%%:*}.parquet
  done
  rm -rf "$tmp/shape-bert-base"
fi
