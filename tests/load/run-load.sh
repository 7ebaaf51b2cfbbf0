#!/usr/bin/env bash
# Load test of the platform on this machine: starts it (run.sh's all-in-one mode, or infra/local-cluster.sh) on its own
# ports with fresh data, runs `tapt loadtest` (the engine alone first, then N tenants submitting jobs with SignalR
# clients attached), prints the table, writes the JSON report, and stops everything it started.
#
#   tests/load/run-load.sh                  # 20 tenants x 60 s, all-in-one
#   LOAD_MODE=cluster tests/load/run-load.sh
#   LOAD_MAX_RUNNING_JOBS=5 LOAD_JOBS_PER_TENANT=2 LOAD_DURATION=30 tests/load/run-load.sh   # past capacity: 429s, nothing lost
#
# Environment (defaults):
#   LOAD_MODE (all-in-one | cluster)   LOAD_PORT (6741)   LOAD_AZURITE_PORT (12741; +1, +2 too)
#   LOAD_TENANTS (20)  LOAD_DURATION (60 s)  LOAD_IMAGES (16 per job)  LOAD_JOBS_PER_TENANT (1)  LOAD_DRAIN (300 s)
#   LOAD_WARMUP (0: one warm-up job; S: every tenant runs jobs for S s first, not counted, so that JIT compilation is over)
#   LOAD_DASHBOARD (0: run.sh's Orleans Dashboard off; its statistics collection is not on the data path)
#   LOAD_BASELINE_IMAGES (160)  LOAD_OUT (artifacts/load: load-TIMESTAMP.json, .txt and the platform's logs)
#   The TAPT engine, for the platform and the engine-alone baseline alike: LOAD_ENGINE_THREADS (1), LOAD_TORCH_THREADS (1),
#   LOAD_BATCH (8 = Tapt:Engine:MaxBatchSize); the cluster's running-jobs limit: LOAD_MAX_RUNNING_JOBS (64).
#   The test-time settings (design, views, steps, lr) are those of models/fashion-clip-small/tapt-prompts.safetensors
#   (VLI, 64 views, 1 step, lr 0.02, alignment weight 0): the tenants' prompt configuration leaves them unset.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

MODE=${LOAD_MODE:-all-in-one}
PORT=${LOAD_PORT:-6741}
AZURITE_PORT=${LOAD_AZURITE_PORT:-12741}
TENANTS=${LOAD_TENANTS:-20}
DURATION=${LOAD_DURATION:-60}
IMAGES=${LOAD_IMAGES:-16}
JOBS_PER_TENANT=${LOAD_JOBS_PER_TENANT:-1}
DRAIN=${LOAD_DRAIN:-300}
WARMUP=${LOAD_WARMUP:-0}
BASELINE_IMAGES=${LOAD_BASELINE_IMAGES:-160}
ENGINE_THREADS=${LOAD_ENGINE_THREADS:-1}
TORCH_THREADS=${LOAD_TORCH_THREADS:-1}
BATCH=${LOAD_BATCH:-8}
MAX_RUNNING=${LOAD_MAX_RUNNING_JOBS:-64}
OUT=${LOAD_OUT:-$ROOT/artifacts/load}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
URL=http://127.0.0.1:$PORT

say() { printf '[load] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
case "$MODE" in all-in-one|cluster) ;; *) die "LOAD_MODE must be all-in-one or cluster" ;; esac
mkdir -p "$OUT"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/tapt-load.XXXXXX")

# The platform's engine runs with the baseline's settings (the scripts pass threads; these reach the processes' configuration).
export TAPT__ENGINE__MAXBATCHSIZE=$BATCH TAPT__GATEWAY__MAXRUNNINGJOBS=$MAX_RUNNING

RUN_PID=""
cleanup() {
  trap - EXIT INT TERM
  say "stopping the platform"
  if [ "$MODE" = cluster ]; then
    TAPT_CLUSTER_DIR=$DATA/cluster TAPT_CLUSTER_PORT=$PORT TAPT_CLUSTER_AZURITE_PORT=$AZURITE_PORT infra/local-cluster.sh stop || true
    cp "$DATA"/cluster/logs/*.log "$OUT/" 2>/dev/null || true
  elif [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM "$RUN_PID" 2>/dev/null || true   # run.sh's own trap stops the gateway, then Azurite
    for _ in $(seq 1 90); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$RUN_PID" 2>/dev/null || true
    cp "$DATA"/logs/gateway.log "$OUT/gateway-$STAMP.log" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "machine: $(nproc) cores; $(uptime)"
say "building the CLI (Release)"
dotnet build src/TaptPlatform.Cli/TaptPlatform.Cli.csproj -c Release -v quiet -clp:ErrorsOnly >"$OUT/build-$STAMP.log" 2>&1 ||
  { tail -n 20 "$OUT/build-$STAMP.log" >&2; die "build failed"; }
TAPT=$ROOT/src/TaptPlatform.Cli/bin/Release/net10.0/tapt.dll

if [ "$MODE" = cluster ]; then
  TAPT_CLUSTER_DIR=$DATA/cluster TAPT_CLUSTER_PORT=$PORT TAPT_CLUSTER_AZURITE_PORT=$AZURITE_PORT TAPT_CLUSTER_ID=tapt-load-$STAMP \
  TAPT_ENGINE_THREADS=$ENGINE_THREADS TAPT_TORCH_THREADS=$TORCH_THREADS infra/local-cluster.sh start
  OPERATOR_KEY=$(cat "$DATA/cluster/operator-key")
  PIDS=()
  for f in "$DATA"/cluster/pids/*; do PIDS+=(--pid "$(cat "$f")"); done   # gateway, silos, Azurite
else
  say "starting run.sh (all-in-one) on $URL, Azurite on $AZURITE_PORT-$((AZURITE_PORT + 2)), data in $DATA"
  TAPT_DASHBOARD=${LOAD_DASHBOARD:-0} TAPT_PORT=$PORT TAPT_AZURITE_PORT=$AZURITE_PORT TAPT_DATA=$DATA TAPT_ENGINE_THREADS=$ENGINE_THREADS TAPT_TORCH_THREADS=$TORCH_THREADS \
    setsid ./run.sh >"$OUT/run-$STAMP.log" 2>&1 &
  RUN_PID=$!
  # run.sh prints its banner once the gateway is ready and its demo tenant exists.
  for i in $(seq 1 480); do
    grep -q "TaptPlatform is running" "$OUT/run-$STAMP.log" 2>/dev/null && break
    kill -0 "$RUN_PID" 2>/dev/null || { tail -n 20 "$OUT/run-$STAMP.log" >&2; die "run.sh exited"; }
    [ "$i" = 480 ] && die "the platform did not start in 4 minutes"
    sleep 0.5
  done
  OPERATOR_KEY=$(cat "$DATA/operator-key")
  # run.sh's children are the platform: the gateway (gateway, silo and engine in one process) and Azurite.
  PIDS=()
  for pid in $(pgrep -P "$RUN_PID" -f 'TaptPlatform.Gateway.dll|azurite' || true); do PIDS+=(--pid "$pid"); done
fi

say "load test: $TENANTS tenants x $JOBS_PER_TENANT job(s), $IMAGES images per job, $DURATION s after $WARMUP s of warm-up; engine $ENGINE_THREADS thread(s), torch $TORCH_THREADS, batch $BATCH, max running jobs $MAX_RUNNING"
set +e
dotnet "$TAPT" loadtest --server "$URL" --operator-key "$OPERATOR_KEY" --tenants "$TENANTS" --duration "$DURATION" \
  --images "$IMAGES" --jobs-per-tenant "$JOBS_PER_TENANT" --drain "$DRAIN" --warmup "$WARMUP" \
  --baseline --baseline-images "$BASELINE_IMAGES" --batch "$BATCH" --engine-threads "$ENGINE_THREADS" --threads "$TORCH_THREADS" \
  "${PIDS[@]}" --json-file "$OUT/load-$STAMP.json" | tee "$OUT/load-$STAMP.txt"
status=${PIPESTATUS[0]}
set -e
say "machine after: $(uptime)"
say "report: $OUT/load-$STAMP.txt and .json (exit $status)"
exit "$status"
