#!/usr/bin/env bash
# README command 1: the main job. Default `smoke` (packaged MiniLM + local CoNLL-03, CPU):
#   ./run_all.sh                 set-up check -> re-train a sample of the committed smoke cells from their
#                                manifests and compare the metrics (paper-repro verify) -> collect -> report
#   ./run_all.sh STUDY [opts]    e.g. ./run_all.sh cpu_study --shard 0/2: sweep (trains pending cells only,
#                                stages in order) -> collect -> status -> figures + REPORT.md
# The reports are byte-stable: on unchanged results a rerun leaves the tree clean.
# Exit 3: the sweep stopped on request (results/STUDY/STOP, or --finish-by) with cells left: no collect/report.
# With --dry-run or --help, or --launcher slurm without --wait, it stops after the sweep command (nothing to report).
#   VERIFY_SAMPLE   how many smoke cells to re-train (default 4; `all` = 12)
#   SWEEPERS        concurrent sweepers for a STUDY (default: 2 on a CPU machine; 1 with a GPU, --shard, --launcher slurm or --dry-run)
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
  # Sweepers: on a CPU machine two concurrent sweepers, each with half the CPUs' threads (measured on 2 cores by
  # `bench/scaling.py --local-parallel 1,2`: 2 x 1 thread = 1.21x the cells/hour of 1 x 2 threads; README
  # Performance); on a GPU machine, or with --shard, --launcher slurm or --dry-run given, one. SWEEPERS=N overrides.
  sweepers="${SWEEPERS:-}"
  if [ -z "$sweepers" ]; then
    if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then sweepers=1; else sweepers=2; fi
  fi
  case " $* " in *" --shard"*|*" --launcher slurm"*|*" --launcher=slurm"*|*" --dry-run"*) sweepers=1 ;; esac
  if [ "$sweepers" -le 1 ]; then
    echo "== sweep experiments/$study.yaml"
    paper-repro sweep "experiments/$study.yaml" "$@"
  else
    threads=$(( $(nproc) / sweepers )); [ "$threads" -ge 1 ] || threads=1
    # the sweepers share the cells through claims (each takes the next cell nobody runs); --wait: one that reaches
    # a stage whose selection or gate still needs a cell another is running waits for it instead of stopping
    echo "== sweep experiments/$study.yaml: $sweepers sweepers x $threads thread(s)"
    pids=()
    for i in $(seq 0 $((sweepers - 1))); do
      (OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
         paper-repro sweep "experiments/$study.yaml" --no-progress --wait "$@" 2>&1 | sed -u "s/^/[sweeper $i] /") &
      pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    [ "$status" -eq 0 ] || exit "$status"
  fi
  # nothing new to report after a dry run or --help, or after submitting Slurm jobs without waiting for them
  case " $* " in
    *" --dry-run"*|*" -h "*|*" --help"*) exit 0 ;;
    *" --launcher slurm"*|*" --launcher=slurm"*)
      case " $* " in *" --wait "*) ;; *) echo "== submitted: when the jobs are done, ./run_all.sh $study again (or" \
        "paper-repro collect/status/report) reports them"; exit 0 ;; esac ;;
  esac
fi
echo "== collect"
paper-repro collect "results/$study"
paper-repro status "results/$study" --study "experiments/$study.yaml" --write   # + results/<study>/PROGRESS.md for the README
echo "== report"
paper-repro report "results/$study" --execute-notebooks
