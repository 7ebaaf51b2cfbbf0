#!/usr/bin/env bash
# Fault test on the multi-process topology (infra/local-cluster.sh): kill -9 the accelerator silo in the middle of a
# job, start another one, and check that the job completes with exactly one result per image.
# Bounded: N images (TAPT_FAULT_IMAGES, default 60), at most TAPT_FAULT_TIMEOUT seconds (default 600) of waiting.
# Needs the Fashion-MNIST test split (/usr/share/datasets/fashion-mnist) and python3 to write the PNGs.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${TAPT_FAULT_IMAGES:-60}
TIMEOUT=${TAPT_FAULT_TIMEOUT:-600}
export TAPT_CLUSTER_DIR=${TAPT_CLUSTER_DIR:-$PWD/.data/fault-cluster}
export TAPT_CLUSTER_PORT=${TAPT_CLUSTER_PORT:-5200} TAPT_CLUSTER_AZURITE_PORT=${TAPT_CLUSTER_AZURITE_PORT:-10020}
CLUSTER=infra/local-cluster.sh
URL=http://127.0.0.1:$TAPT_CLUSTER_PORT
say() { printf '[fault] %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
jsonv() { python3 -c 'import json,sys;v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

IMAGES=$(mktemp -d)
cleanup() { "$CLUSTER" stop || true; rm -rf "$IMAGES"; }
trap cleanup EXIT
python3 - "$IMAGES" "$N" <<'PY'
import gzip, struct, zlib, sys
out, n = sys.argv[1], int(sys.argv[2])
imgs = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()[16:]
def png(px, w=28, h=28):
    raw = b''.join(b'\x00' + px[y*w:(y+1)*w] for y in range(h))
    c = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    return b'\x89PNG\r\n\x1a\n' + c(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + c(b'IDAT', zlib.compress(raw)) + c(b'IEND', b'')
for i in range(n): open(f'{out}/{i:04d}.png', 'wb').write(png(imgs[i*784:(i+1)*784]))
PY

rm -rf "$TAPT_CLUSTER_DIR"
"$CLUSTER" start
OP=$(cat "$TAPT_CLUSTER_DIR/operator-key")
TENANT=fault-$(date +%s)
KEY=$(curl -sf -X POST "$URL/api/tenants" -H "X-Api-Key: $OP" -H 'Content-Type: application/json' -d "{\"id\":\"$TENANT\"}" | jsonv key.secret)
H=(-H "X-Api-Key: $KEY")
curl -sf -X POST "$URL/api/vocabularies" "${H[@]}" -H 'Content-Type: application/json' \
  -d '{"name":"fashion","labels":["t-shirt/top","trouser","pullover","dress","coat","sandal","shirt","sneaker","bag","ankle boot"]}' >/dev/null
curl -sf -X POST "$URL/api/prompt-configurations" "${H[@]}" -H 'Content-Type: application/json' -d '{"name":"default","model":"fashion-clip-small"}' >/dev/null
JOB=$(curl -sf -X POST "$URL/api/jobs" "${H[@]}" -H 'Content-Type: application/json' -d '{"vocabulary":"fashion","promptConfiguration":"default","name":"fault"}' | jsonv jobId)
args=(); for f in "$IMAGES"/*.png; do args+=(-F "images=@$f;type=image/png"); done
curl -sf -X POST "$URL/api/jobs/$JOB/images" "${H[@]}" "${args[@]}" >/dev/null
curl -sf -X POST "$URL/api/jobs/$JOB/start" "${H[@]}" >/dev/null
say "job $JOB started with $N images"

completed() { curl -sf "$URL/api/jobs/$JOB" "${H[@]}" | jsonv counts.completed; }
start=$(date +%s)
while [ "$(completed)" -lt $((N / 4)) ]; do
  [ $(($(date +%s) - start)) -lt "$TIMEOUT" ] || fail "the job did not reach $((N / 4)) images"
  sleep 0.5
done
before=$(completed)
pid=$(cat "$TAPT_CLUSTER_DIR/pids/silo-accelerator")
kill -9 "$pid"
say "kill -9 accelerator silo (pid $pid) at $before/$N completed; starting another"
"$CLUSTER" start-silo silo-accelerator-2 accelerator
killed=$(date +%s)

while :; do
  state=$(curl -sf "$URL/api/jobs/$JOB" "${H[@]}" 2>/dev/null | jsonv state 2>/dev/null || echo unavailable)
  [ "$state" = completed ] && break
  [ $(($(date +%s) - start)) -lt "$TIMEOUT" ] || fail "the job is still $state after ${TIMEOUT}s"
  sleep 1
done
say "completed $(($(date +%s) - killed))s after the kill"

curl -sf "$URL/api/jobs/$JOB/results?limit=1000" "${H[@]}" | python3 -c '
import json, sys
n = int(sys.argv[1]); page = json.load(sys.stdin); items = page["items"]
idx = [r["index"] for r in items]
ok = [r for r in items if r["error"] is None]
total = page["totalResults"]
print(f"[fault] results {len(items)} (total {total}), distinct indices {len(set(idx))}, succeeded {len(ok)}, failed {len(items)-len(ok)}", file=sys.stderr)
for r in items:
    if r["error"]: print("[fault]   #%d: %s" % (r["index"], r["error"]), file=sys.stderr)
assert page["totalResults"] == n and sorted(idx) == list(range(n)), "every image must have exactly one result"
' "$N" || fail "results"
say "PASS: every one of the $N images has exactly one result"
