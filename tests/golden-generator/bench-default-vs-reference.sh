#!/usr/bin/env bash
# The default model through `tapt classify` (what a user runs: batches of 8, --precision auto and fp32) beside the
# independent PyTorch reference's efficient TAPT step (one image at a time, glibc's heap defaults and the heap settings
# ours uses), in interleaved rounds so a noisy neighbour hits both alike. Ours is the mean of the images' own `seconds`
# after the first batch (the warm-up). The README's "default model beside the reference" comes from this. Needs what
# bench-vs-reference.sh needs.
#   tests/golden-generator/bench-default-vs-reference.sh [ROUNDS=3] [THREADS=1] [IMAGES=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; threads=${2:-1}; images=${3:-64}
tapt=src/TaptPlatform.Cli/bin/Release/net10.0/tapt
[ -x "$tapt" ] || { echo "build the CLI first: dotnet build src/TaptPlatform.Cli -c Release" >&2; exit 2; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
"$tapt" samples --out "$dir" --count "$images" --attacked 0 --threads 1 >/dev/null 2>&1
args=(); for f in "$dir"/*.png; do args+=(--image "$f"); done
for l in T-shirt/top Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot"; do args+=(--label "$l"); done
ours() {
  "$tapt" classify "${args[@]}" --threads "$threads" --precision "$1" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin); s = [r["seconds"] for r in d["results"]][8:]; p = d["precision"]
print(f"tapt classify, {p}, batches of 8, '"$threads"' threads: {1000 * sum(s) / len(s):.1f} ms/image ({len(s)} images after the first batch)")'
}
for r in $(seq 1 "$rounds"); do
  echo "== round $r, $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
  ours auto
  ours fp32
  /usr/bin/python3 tests/golden-generator/tapt_reference.py bench --threads "$threads" --images 32 --views 64 --efficient-only
  MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
    /usr/bin/python3 tests/golden-generator/tapt_reference.py bench --threads "$threads" --images 32 --views 64 --efficient-only \
    | sed 's/$/   (glibc heap thresholds as ours)/'
done
