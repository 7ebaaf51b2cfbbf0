#!/usr/bin/env bash
# TAPT at ViT-B/32 (random weights, V, 64 views, one step, batch 1): ours beside the independent PyTorch reference, in
# interleaved rounds (ours, then the reference, ROUNDS times) so a noisy neighbour hits both alike. The README's table
# "At CLIP size: measured beside the reference" comes from this. Needs Debian's python3-torch, python3-regex and
# libopenblas0-pthread, and a Release build of the CLI (dotnet build src/TaptPlatform.Cli -c Release).
#   tests/golden-generator/bench-vs-reference.sh [ROUNDS=3] [THREADS=2] [--vit-b16]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; threads=${2:-2}; size=${3:---vit-b32}
tapt=src/TaptPlatform.Cli/bin/Release/net10.0/tapt
[ -x "$tapt" ] || { echo "build the CLI first: dotnet build src/TaptPlatform.Cli -c Release" >&2; exit 2; }
for r in $(seq 1 "$rounds"); do
  echo "== round $r, $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$tapt" bench "$size" --vit-images 2 --designs V --views 64 --batch 1 --images 1 --threads "$threads" \
    --precision fp32,bf16-scoring,bf16 2>/dev/null | sed -n '/^ViT-B/,$p'
  /usr/bin/python3 tests/golden-generator/tapt_reference.py bench "$size" --threads "$threads" --images 2 --views 64
  MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
    /usr/bin/python3 tests/golden-generator/tapt_reference.py bench "$size" --threads "$threads" --images 2 --views 64 \
    | sed 's/$/   (glibc heap thresholds as ours)/'
done
