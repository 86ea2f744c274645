#!/usr/bin/env bash
# Every GPU benchmark in one call (< 8 minutes on one H100/H200), for a lent GPU machine:
#   bash benchmarks/gpu.sh [OUT_DIR]
# Writes attention-cuda.{md,json,png}, step-cuda.{md,json} and gpu-log.txt to OUT_DIR
# (default benchmarks/results); copy them into benchmarks/results/ with the machine's name.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "== attention (bf16, forward and forward+backward)"
  timeout 300 python benchmarks/attention.py --device cuda \
    --json "$out/attention-cuda.json" --md "$out/attention-cuda.md" --plot "$out/attention-cuda.png"
  echo "== seq-JEPA step, EMA, aggregator eager vs CUDA graph"
  timeout 150 python benchmarks/step.py --device cuda \
    --json "$out/step-cuda.json" --markdown "$out/step-cuda.md"
  echo "== SIGReg: no host sync on the device"
  timeout 60 python benchmarks/sigreg_sync.py
  echo "== SIGReg forward+backward vs a materialising baseline (goal < 2 ms at n = m = 8192)"
  timeout 180 python benchmarks/sigreg.py --device cuda \
    --json "$out/sigreg-gpu.json" --md "$out/sigreg-gpu.md"
  echo "== block contract and attention cores on CUDA (fp32, bf16 autocast, compile)"
  timeout 240 python -m pytest -q -p no:cacheprovider tests/test_block_contract.py \
    tests/test_attention.py -k cuda || true
} 2>&1 | tee "$out/gpu-log.txt"
