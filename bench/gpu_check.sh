#!/usr/bin/env bash
# The GPU check of issue 13, prepared to run as one call on a machine with a CUDA GPU (at most
# 8 minutes): the 20-disk run with our model on the GPU, then the decode bound at large batches.
# Needs a Python with torch (CUDA build), transformers, tokenizers and maker's dependencies:
#   PYTHON=/path/to/python bash bench/gpu_check.sh [OUT_DIR]
# Results go to bench/results/ (and are copied to OUT_DIR if given, e.g. the device tool's $OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-}
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# Batch sweep first (short), then the million steps with what is left of the 8 minutes.
timeout 150 "$PY" bench/regression/decode_bound.py --device cuda --steps 4096 --batches 1024,4096,16384 --name decode_bound_gpu
timeout 300 "$PY" bench/regression/model_million.py --device cuda --max-batch 8192 --depth 10 --journal runs/gpu_d20.jsonl --name model_million_d20_gpu
status=$?
if [ -n "$OUT_DIR" ]; then cp bench/results/decode_bound_gpu.json bench/results/model_million_d20_gpu.json "$OUT_DIR"/ 2>/dev/null; fi
exit $status
