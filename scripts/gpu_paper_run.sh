#!/usr/bin/env bash
# The paper-profile Gaussian figures (Figs. 2-4) and the sweep benchmark on a CUDA machine.
# Records per-notebook seconds (book/executed/reproduce_summary.json, copied to
# benchmarks/results/gpu_paper_run.json) and the benchmark (benchmarks/results/sweep_cuda.json).
# Usage: bash scripts/gpu_paper_run.sh   (PYTHON=... to choose the interpreter; OUT=dir to copy results to)
# On the workplace's lent GPU machine (no network; torch there, papermill/nbclient/ipykernel not):
# first `bash scripts/fetch_device_wheels.sh` here, then see that script's header for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total --format=csv || true
start=$(date +%s)
"$PYTHON" -m mi_lib reproduce fig2 fig3 fig4 --profile paper --device cuda || status=$?
echo "reproduce wall seconds: $(( $(date +%s) - start ))"
mkdir -p benchmarks/results
cp book/executed/reproduce_summary.json benchmarks/results/gpu_paper_run.json
"$PYTHON" benchmarks/bench_sweep.py --device cuda --separable-steps 500 --concat-steps 200
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && cp -r benchmarks/results book/figures "$OUT"/
fi
exit ${status:-0}
