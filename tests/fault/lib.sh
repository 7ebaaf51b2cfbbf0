# shellcheck shell=bash
# Common steps of the fault scripts (sourced, after `set -euo pipefail`). A script calls, in order:
#   fault_init NAME GATEWAY_PORT AZURITE_PORT   its own cluster folder (.data/fault-NAME) and ports; cleanup on exit
#   fault_cluster_start                          infra/local-cluster.sh start (builds Release unless TAPT_CLUSTER_NO_BUILD=1)
#   fault_tenant                                 a tenant, the "fashion" vocabulary and a prompt configuration "fault"
#   fault_job N                                  a job of N Fashion-MNIST test images, uploaded ($JOB)
#   fault_start_job                              starts it
#   fault_wait_completed K | fault_wait_done     wait for K results | for the final state, failing after $TIMEOUT s
#   fault_kill9 NAME                             kill -9 a cluster process by its recorded pid
#   fault_recovery WHAT                          waits for the job to answer and record a new result; prints both delays
#   fault_verify N [CLIENT_SUMMARY]              the checks of tools.cjs verify (PASS/FAIL lines)
#   fault_finish                                 prints the verdict; exits 1 if anything failed
# Settings (environment): TAPT_FAULT_IMAGES, TAPT_FAULT_VIEWS (per-image workload: TAPT views per image, 64),
#   TAPT_FAULT_TIMEOUT (seconds for the whole job), TAPT_CLUSTER_DIR / TAPT_CLUSTER_PORT / TAPT_CLUSTER_AZURITE_PORT.
FAULT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$FAULT_ROOT" || exit 1
CLUSTER=$FAULT_ROOT/infra/local-cluster.sh
TOOLS=$FAULT_ROOT/tests/fault/tools.cjs
# shellcheck disable=SC2034  # used by the scripts
LIVE_CLIENT=$FAULT_ROOT/tests/fault/live-client.cjs
VIEWS=${TAPT_FAULT_VIEWS:-64}
TIMEOUT=${TAPT_FAULT_TIMEOUT:-3600}
FAULT_FAILURES=0
FAULT_PIDS=()
JOB="" KEY="" URL="" T0=$(date +%s)

say() { printf '[fault %s +%ss] %s\n' "$(date +%T)" "$(($(date +%s) - T0))" "$*" >&2; }
pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAULT_FAILURES=$((FAULT_FAILURES + 1)); }
die() { fail "$*"; exit 1; }
json() { node "$TOOLS" get "$1"; }
elapsed() { echo $(($(date +%s) - T0)); }

fault_init() {
  local name=$1
  export TAPT_CLUSTER_DIR=${TAPT_CLUSTER_DIR:-$FAULT_ROOT/.data/fault-$name}
  export TAPT_CLUSTER_PORT=${TAPT_CLUSTER_PORT:-$2} TAPT_CLUSTER_AZURITE_PORT=${TAPT_CLUSTER_AZURITE_PORT:-$3}
  export TAPT_TORCH_THREADS=${TAPT_TORCH_THREADS:-1} TAPT_ENGINE_THREADS=${TAPT_ENGINE_THREADS:-1}
  URL=http://127.0.0.1:$TAPT_CLUSTER_PORT
  FAULT_WORK=$(mktemp -d)
  trap fault_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ ! -d .tools/signalr/node_modules/@microsoft/signalr ]; then
    npm install --prefix .tools/signalr --no-audit --no-fund --loglevel=error @microsoft/signalr@10.0.11 >/dev/null
  fi
}

fault_cleanup() {
  local rc=$?
  for pid in "${FAULT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$CLUSTER" stop || true
  rm -rf "$FAULT_WORK"
  say "logs kept in $TAPT_CLUSTER_DIR/logs"
  exit "$rc"
}

fault_cluster_start() {
  rm -rf "$TAPT_CLUSTER_DIR"
  "$CLUSTER" start
}

# api METHOD PATH [curl args...]: the body on stdout; fails on an HTTP error.
api() { local m=$1 p=$2; shift 2; curl -sf --max-time 60 -X "$m" "$URL$p" -H "X-Api-Key: $KEY" "$@"; }

fault_tenant() {
  local op tenant
  op=$(cat "$TAPT_CLUSTER_DIR/operator-key")
  tenant=fault-$(date +%s)
  KEY=$(curl -sf -X POST "$URL/api/tenants" -H "X-Api-Key: $op" -H 'Content-Type: application/json' -d "{\"id\":\"$tenant\"}" | json key.secret)
  [ -n "$KEY" ] || die "no tenant key"
  api POST /api/vocabularies -H 'Content-Type: application/json' \
    -d '{"name":"fashion","labels":["t-shirt/top","trouser","pullover","dress","coat","sandal","shirt","sneaker","bag","ankle boot"]}' >/dev/null
  # The default flagging policy (its statistics rule flags most images of this model), so many audit records are at stake.
  api POST /api/prompt-configurations -H 'Content-Type: application/json' \
    -d "{\"name\":\"fault\",\"model\":\"fashion-clip-small\",\"views\":$VIEWS}" >/dev/null
  say "tenant $tenant, prompt configuration: fashion-clip-small, $VIEWS views per image"
}

fault_job() {
  local n=$1 args=() f
  node "$TOOLS" pngs "$FAULT_WORK/images" "$n"
  JOB=$(api POST /api/jobs -H 'Content-Type: application/json' -d '{"vocabulary":"fashion","promptConfiguration":"fault","name":"fault"}' | json jobId)
  [ -n "$JOB" ] || die "no job id"
  for f in "$FAULT_WORK"/images/*.png; do args+=(-F "images=@$f;type=image/png"); done
  [ "$(api POST "/api/jobs/$JOB/images" "${args[@]}" | json totalImages)" = "$n" ] || die "the upload did not store $n images"
  JOB_STARTED=$(date +%s)
}

fault_start_job() {
  api POST "/api/jobs/$JOB/start" >/dev/null
  JOB_STARTED=$(date +%s)
  say "job $JOB started"
}

# The job's status document, or nothing while the gateway (or the cluster behind it) does not answer.
job_status() { curl -sf --max-time 10 "$URL/api/jobs/$JOB" -H "X-Api-Key: $KEY" 2>/dev/null || true; }
completed() { local s; s=$(job_status); [ -n "$s" ] && json counts.completed <<<"$s" || echo -1; }

# Polls the job every second; notes each change of its "waiting" message (a retry in progress) with the time.
FAULT_LAST_WAITING="" FAULT_WAITS=0 FAULT_UNAVAILABLE=0
poll() {
  local s w
  s=$(job_status)
  if [ -z "$s" ]; then FAULT_UNAVAILABLE=$((FAULT_UNAVAILABLE + 1)); POLL_STATE=unavailable; POLL_DONE=-1; return; fi
  POLL_STATE=$(json state <<<"$s"); POLL_DONE=$(json counts.completed <<<"$s"); w=$(json waiting <<<"$s")
  if [ "$w" != "$FAULT_LAST_WAITING" ]; then
    if [ -n "$w" ]; then FAULT_WAITS=$((FAULT_WAITS + 1)); say "job waits: $w ($POLL_DONE done)"; else say "job dispatching again ($POLL_DONE done)"; fi
    FAULT_LAST_WAITING=$w
  fi
}

fault_wait_completed() { # fault_wait_completed K: until at least K images have a result
  while poll; [ "$POLL_DONE" -lt "$1" ]; do
    [ "$POLL_STATE" = completed ] && break
    [ $(($(date +%s) - JOB_STARTED)) -lt "$TIMEOUT" ] || die "the job did not reach $1 results in ${TIMEOUT}s (at $POLL_DONE)"
    sleep 1
  done
}

fault_wait_done() {
  while poll; [ "$POLL_STATE" != completed ]; do
    [ $(($(date +%s) - JOB_STARTED)) -lt "$TIMEOUT" ] || die "the job is still $POLL_STATE after ${TIMEOUT}s ($POLL_DONE done)"
    sleep 1
  done
  JOB_SECONDS=$(($(date +%s) - JOB_STARTED))
  say "job completed ${JOB_SECONDS}s after its start; the API answered nothing to $FAULT_UNAVAILABLE poll(s), the job reported waiting $FAULT_WAITS time(s)"
}

fault_kill9() {
  local name=$1 pid
  pid=$(cat "$TAPT_CLUSTER_DIR/pids/$name")
  ps -o stat= -p "$pid" | grep -qv '^Z' || die "$name (pid $pid) is not running"
  [ "$POLL_STATE" = completed ] && die "the job finished before the kill of $name: use more images (TAPT_FAULT_IMAGES) or views (TAPT_FAULT_VIEWS)"
  kill -9 "$pid"
  FAULT_KILLED_AT=$(date +%s)
  # SIGKILL is delivered asynchronously: wait until the process is gone (or a zombie), so a replacement of the same
  # name is not mistaken for still running.
  for _ in $(seq 1 300); do ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z' || break; sleep 0.1; done
  ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z' && die "$name (pid $pid) still runs 30 s after kill -9"
  say "kill -9 $name (pid $pid) at $POLL_DONE results"
}

# fault_recovery WHAT: after a fault, waits until the job answers again and then gets a new result; prints both delays.
fault_recovery() {
  local base
  sleep 3   # results being recorded at the moment of the fault settle
  while poll; [ "$POLL_STATE" = unavailable ]; do
    [ $(($(date +%s) - JOB_STARTED)) -lt "$TIMEOUT" ] || die "the job did not answer again after $1"
    sleep 1
  done
  base=$POLL_DONE
  say "the job answers $(($(date +%s) - FAULT_KILLED_AT))s after $1 ($base results)"
  fault_wait_completed $((base + 1))
  say "RECOVERY: first new result $(($(date +%s) - FAULT_KILLED_AT))s after $1 ($POLL_DONE results)"
}

# The silo logs that mention the job: where it ran and what it logged about resuming.
fault_job_log() {
  local f
  for f in "$TAPT_CLUSTER_DIR"/logs/silo-*.log; do
    grep -h "Job $JOB" "$f" | sed "s|^|  $(basename "$f" .log): |" | cut -c1-220 >&2 || true
  done
}

fault_verify() {
  local out rc=0
  out=$(node "$TOOLS" verify "$URL" "$KEY" "$JOB" "$@") || rc=$?
  printf '%s\n' "$out" | grep -v '^{' || true
  grep '^{' <<<"$out" | while read -r line; do say "$line"; done
  FAULT_FAILURES=$((FAULT_FAILURES + $(grep -c '^FAIL' <<<"$out" || true)))
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' <<<"$out"; then fail "the verification stopped with an error (exit $rc)"; fi
}

fault_finish() {
  if [ "$FAULT_FAILURES" -eq 0 ]; then say "PASS ($(elapsed)s)"; else say "FAIL: $FAULT_FAILURES check(s) failed ($(elapsed)s)"; exit 1; fi
}
