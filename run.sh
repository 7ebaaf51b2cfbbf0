#!/usr/bin/env bash
# TaptPlatform in one command: Azurite (data in .data/azurite) + the gateway in its all-in-one mode (one silo with every
# role, the HTTP API, the SignalR hub and the web console), running the default model models/fashion-clip-small.
# Prints the console URL and a ready tenant key. Ctrl+C stops everything; a restart keeps tenants, jobs and results.
#
#   ./run.sh          start (stays in the foreground; Ctrl+C or SIGTERM stops the gateway, then Azurite)
#   ./run.sh stop     stop the processes of a run.sh of this data folder (by their pid files in $TAPT_DATA/pids)
#
# Azurite and the gateway run in their own sessions; each writes its pid (also its process group) to $TAPT_DATA/pids
# itself. A watcher, in its own session too, runs `./run.sh stop` if this script dies without stopping them
# (SIGKILL, `timeout -s KILL`, a closed terminal), so they are never left behind.
#
# Needs the .NET SDK and Node.js (npm); installs Azurite into .tools/azurite on first use.
# Settings (environment):
#   TAPT_PORT (5000)            the gateway's HTTP port (loopback; TAPT_HOST=0.0.0.0 to listen on every interface)
#   TAPT_AZURITE_PORT (10000)   Azurite's blob port; queue and table use the next two
#   TAPT_TENANT (demo)          the tenant created for you
#   TAPT_ENGINE_THREADS (1), TAPT_TORCH_THREADS (cores, at most 4)   the tuning engine
#   TAPT_DATA (.data)           where Azurite's data, the keys and the logs live
#   TAPT_DASHBOARD (1)          the Orleans Dashboard at /dashboard/ (loopback clients only); 0 turns it off
#   TAPT_LOG_FORMAT (text)      json: the gateway logs JSON lines with their scopes (tenant and job ids)
#   OTEL_EXPORTER_OTLP_ENDPOINT (unset)   when set, metrics, traces and logs are exported there over OTLP
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

PORT=${TAPT_PORT:-5000}
HOST=${TAPT_HOST:-127.0.0.1}
BLOB=${TAPT_AZURITE_PORT:-10000}
QUEUE=$((BLOB + 1))
TABLE=$((BLOB + 2))
TENANT=${TAPT_TENANT:-demo}
DATA=${TAPT_DATA:-$ROOT/.data}
cores=$(nproc 2>/dev/null || echo 2)
TORCH_THREADS=${TAPT_TORCH_THREADS:-$((cores < 4 ? cores : 4))}
ENGINE_THREADS=${TAPT_ENGINE_THREADS:-1}
case "${TAPT_DASHBOARD:-1}" in 1|true|yes|on) DASHBOARD=true ;; *) DASHBOARD=false ;; esac
case "${TAPT_LOG_FORMAT:-text}" in text) LOG_FORMAT=simple ;; json) LOG_FORMAT=json ;; *) echo "TAPT_LOG_FORMAT must be text or json" >&2; exit 1 ;; esac
MODEL=fashion-clip-small
URL="http://127.0.0.1:$PORT"

say() { printf '\033[1m[tapt]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# json FIELD.PATH < document  → prints the value (Node is needed for Azurite anyway).
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v?.[k];if(v!==undefined&&v!==null)console.log(v)})' "$1"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PIDS=$DATA/pids
# running PID: the process exists and is not a zombie.
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }
# pid_of NAME: the pid of NAME (azurite, gateway, watcher, run) of this data folder while that process runs, else nothing.
pid_of() {
  local pid args
  [ -s "$PIDS/$1" ] || return 0
  pid=$(cat "$PIDS/$1")
  running "$pid" || return 0
  # A pid file can outlive its process (a reboot): only a process that is what the file says counts.
  args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  case "$1:$args" in
    azurite:*"$DATA/azurite"* | gateway:*TaptPlatform.Gateway.dll* | watcher:*run-sh-watcher* | run:*run.sh*) echo "$pid" ;;
  esac
  return 0
}
# stop_process NAME SECONDS: SIGTERM to its process group, SIGKILL after SECONDS; forgets its pid file.
stop_process() {
  local name=$1 seconds=$2 pid
  pid=$(pid_of "$name")
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((seconds * 10))); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      say "$name did not stop in ${seconds}s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$name"
}
# stop_all: the gateway first (its silo leaves the cluster while storage is still up), Azurite last.
stop_all() {
  stop_process gateway 30
  stop_process azurite 15
}
# spawn NAME LOG COMMAND...: COMMAND in a new session; the pid file holds COMMAND's own pid (it writes it, then execs).
spawn() {
  local name=$1 log=$2; shift 2
  rm -f "$PIDS/$name"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name" "$@" >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do [ -s "$PIDS/$name" ] && return 0; sleep 0.05; done
  die "$name did not start"
}

case "${1:-}" in
  "") ;;
  stop)
    [ -d "$PIDS" ] || exit 0
    # The watcher itself execs `run.sh stop` when the script it watched died: then this is the watcher.
    [ "$(pid_of watcher)" = $$ ] || stop_process watcher 1
    stop_all
    rm -f "$PIDS/watcher" "$PIDS/run"
    exit 0 ;;
  *) echo "usage: $0 [stop]" >&2; exit 2 ;;
esac

command -v dotnet >/dev/null || die "the .NET SDK is required (https://dot.net)"
command -v npm >/dev/null || die "Node.js and npm are required (apt-get install nodejs npm)"
mkdir -p "$DATA/azurite" "$DATA/logs" "$PIDS"
chmod 700 "$DATA"
# A run.sh of this data folder still runs, or one was killed without its watcher: refuse, or clean up after it.
if [ -n "$(pid_of run)" ] && [ "$(pid_of run)" != $$ ]; then
  die "run.sh already runs with $DATA (pid $(pid_of run)); stop it with Ctrl+C there or ./run.sh stop"
fi
if [ -n "$(pid_of gateway)$(pid_of azurite)" ]; then
  say "stopping the gateway and Azurite left running by an earlier run.sh"
  stop_all
fi
echo $$ >"$PIDS/run"

# ---- install what is missing ------------------------------------------------------------------------------------
AZURITE=$ROOT/.tools/azurite/node_modules/.bin/azurite
if [ ! -x "$AZURITE" ]; then
  say "installing Azurite into .tools/azurite"
  npm install --prefix "$ROOT/.tools/azurite" --no-audit --no-fund --loglevel=error azurite@3.37.0 >/dev/null
fi
[ -f "models/$MODEL/model.safetensors" ] || die "the default model models/$MODEL is missing"
[ -f "models/$MODEL/tapt-prompts.safetensors" ] ||
  say "warning: models/$MODEL/tapt-prompts.safetensors (the TAPT prompt artifact) is missing: jobs will fail until it is there"

say "building the gateway (Release)"
dotnet build src/TaptPlatform.Gateway/TaptPlatform.Gateway.csproj -c Release --nologo -v quiet -clp:ErrorsOnly >"$DATA/logs/build.log" 2>&1 ||
  { tail -n 30 "$DATA/logs/build.log" >&2; die "build failed (see $DATA/logs/build.log)"; }
GATEWAY_DLL=$ROOT/src/TaptPlatform.Gateway/bin/Release/net10.0/TaptPlatform.Gateway.dll

# ---- keys (persisted, so a restart reuses them) -------------------------------------------------------------------
umask 077
if [ ! -s "$DATA/operator-key" ]; then
  head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$DATA/operator-key"
fi
OPERATOR_KEY=$(cat "$DATA/operator-key")
# Signs the tenant keys the platform issues (the gateway verifies them before asking any grain).
if [ ! -s "$DATA/api-key-signing-key" ]; then
  head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48 >"$DATA/api-key-signing-key"
fi

# ---- start ---------------------------------------------------------------------------------------------------------
# Azurite and the gateway run in their own sessions (setsid), so Ctrl+C reaches only this script, which then stops
# them: the gateway first, Azurite last. Further Ctrl+C during the stop are ignored so it cannot be cut short.
STOPPING=""
stop() {
  local code=${1:-0}
  [ -n "$STOPPING" ] && exit "$code"
  STOPPING=1
  trap '' INT TERM HUP
  say "stopping"
  stop_all
  local status=""
  # The gateway is this script's child: its exit status tells whether it stopped cleanly (0) or was killed.
  if [ -n "${GW_PID:-}" ]; then wait "$GW_PID" 2>/dev/null && status=0 || status=$?; [ "$status" = 127 ] && status=""; fi
  stop_process watcher 1
  rm -f "$PIDS/run"
  say "stopped${status:+ (the gateway exited with status $status)}; data kept in $DATA"
  exit "$code"
}
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop 129' HUP
trap 'stop $?' EXIT

# The watcher: if this script disappears without stopping (SIGKILL), it stops what this script started.
TAPT_DATA=$DATA spawn watcher /dev/null bash -c 'while ps -o stat= -p "$1" 2>/dev/null | grep -qv "^Z"; do sleep 1; done; exec "$2" stop' \
  run-sh-watcher $$ "$ROOT/run.sh"

for p in "$BLOB" "$QUEUE" "$TABLE"; do port_busy "$p" && die "port $p is in use (another Azurite?); set TAPT_AZURITE_PORT"; done
port_busy "$PORT" && die "port $PORT is in use; set TAPT_PORT"

say "starting Azurite on 127.0.0.1:$BLOB-$TABLE (data in $DATA/azurite)"
spawn azurite "$DATA/logs/azurite.log" "$AZURITE" --silent --skipApiVersionCheck --loose --disableTelemetry --location "$DATA/azurite" \
  --blobHost 127.0.0.1 --blobPort "$BLOB" --queueHost 127.0.0.1 --queuePort "$QUEUE" \
  --tableHost 127.0.0.1 --tablePort "$TABLE"
AZ_PID=$(cat "$PIDS/azurite")
for _ in $(seq 1 120); do port_busy "$BLOB" && port_busy "$TABLE" && break; running "$AZ_PID" || die "Azurite exited (see $DATA/logs/azurite.log)"; sleep 0.5; done
port_busy "$TABLE" || die "Azurite did not start"

ACCOUNT=devstoreaccount1
ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
STORAGE="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$ACCOUNT_KEY;BlobEndpoint=http://127.0.0.1:$BLOB/$ACCOUNT;QueueEndpoint=http://127.0.0.1:$QUEUE/$ACCOUNT;TableEndpoint=http://127.0.0.1:$TABLE/$ACCOUNT;"

say "starting the gateway (all-in-one) on $URL"
ASPNETCORE_URLS="http://$HOST:$PORT" \
TAPT__GATEWAY__MODE=all-in-one \
TAPT__GATEWAY__OPERATORKEY="$OPERATOR_KEY" \
TAPT__APIKEYS__SIGNINGKEY="$(cat "$DATA/api-key-signing-key")" \
TAPT__STORAGE__CONNECTIONSTRING="$STORAGE" \
TAPT__ACCELERATOR=cpu \
TAPT__ENGINE__THREADS="$ENGINE_THREADS" \
TAPT__ENGINE__TORCHTHREADS="$TORCH_THREADS" \
TAPT__MODELS__ROOT="$ROOT/models" \
TAPT__DASHBOARD__ENABLED="$DASHBOARD" \
LOGGING__CONSOLE__FORMATTERNAME="$LOG_FORMAT" \
ORLEANS__CLUSTERID=tapt-local \
ORLEANS__SERVICEID=tapt-platform \
  spawn gateway "$DATA/logs/gateway.log" dotnet "$GATEWAY_DLL"
GW_PID=$(cat "$PIDS/gateway")
for i in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health/ready" || true)" = 200 ] && break
  running "$GW_PID" || { tail -n 30 "$DATA/logs/gateway.log" >&2; die "the gateway exited (see $DATA/logs/gateway.log)"; }
  [ "$i" = 240 ] && die "the gateway did not become ready in 2 minutes (see $DATA/logs/gateway.log)"
  sleep 0.5
done

# ---- a ready tenant (idempotent) -----------------------------------------------------------------------------------
RESP=$DATA/logs/.response
api() { # api METHOD PATH KEY [JSON] → status in $STATUS, body in $BODY
  local args=(-s -o "$RESP" -w '%{http_code}' -X "$1" "$URL$2" -H "X-Api-Key: $3")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' -d "$4")
  STATUS=$(curl "${args[@]}" || echo 000)
  BODY=$(cat "$RESP" 2>/dev/null || true); rm -f "$RESP"
}
# ---- the default model in the registry (idempotent): silos without the local folder fetch it from storage ----------
api GET "/api/models/$MODEL" "$OPERATOR_KEY"
if [ "$STATUS" = 404 ]; then
  ZIP="$DATA/$MODEL.zip"; rm -f "$ZIP"
  if command -v zip >/dev/null; then (cd "models/$MODEL" && zip -q -r "$ZIP" .)
  else python3 -m zipfile -c "$ZIP" "models/$MODEL"; fi
  STATUS=$(curl -s -o "$RESP" -w '%{http_code}' -X POST "$URL/api/models/$MODEL" -H "X-Api-Key: $OPERATOR_KEY" \
    -H 'Content-Type: application/zip' --data-binary @"$ZIP" || echo 000)
  BODY=$(cat "$RESP" 2>/dev/null || true); rm -f "$RESP" "$ZIP"
  case "$STATUS" in
    200|201) say "registered the default model $MODEL in the model registry" ;;
    *) say "warning: could not register the default model $MODEL ($STATUS): $BODY" ;;
  esac
fi
TENANT_KEY=""
if [ -s "$DATA/tenant-key" ]; then
  TENANT_KEY=$(cat "$DATA/tenant-key")
  api GET /api/usage "$TENANT_KEY"
  [ "$STATUS" = 200 ] || TENANT_KEY=""
fi
if [ -z "$TENANT_KEY" ]; then
  api POST /api/tenants "$OPERATOR_KEY" "{\"id\":\"$TENANT\",\"keyName\":\"run-sh\"}"; body=$BODY
  case "$STATUS" in
    201) TENANT_KEY=$(json key.secret <<<"$body") ;;
    409) api POST "/api/tenants/$TENANT/keys" "$OPERATOR_KEY" '{"name":"run-sh"}'; body=$BODY
         [ "$STATUS" = 201 ] || die "could not issue a key for tenant $TENANT ($STATUS): $body"
         TENANT_KEY=$(json secret <<<"$body") ;;
    *) die "could not create tenant $TENANT ($STATUS): $body" ;;
  esac
  [ -n "$TENANT_KEY" ] || die "no key in the answer: $body"
  printf '%s' "$TENANT_KEY" >"$DATA/tenant-key"
fi
api GET /api/vocabularies/fashion "$TENANT_KEY"
if [ "$STATUS" = 404 ]; then
  api POST /api/vocabularies "$TENANT_KEY" \
    '{"name":"fashion","labels":["t-shirt/top","trouser","pullover","dress","coat","sandal","shirt","sneaker","bag","ankle boot"]}'
  [ "$STATUS" = 201 ] || say "warning: could not create the vocabulary 'fashion' ($STATUS)"
fi
api GET /api/prompt-configurations/default "$TENANT_KEY"
if [ "$STATUS" = 404 ]; then
  api POST /api/prompt-configurations "$TENANT_KEY" "{\"name\":\"default\",\"model\":\"$MODEL\",\"flagging\":{\"minimumConfidence\":0.5,\"flagChangedPrediction\":true,\"flagCloserToAttacked\":false}}"
  [ "$STATUS" = 201 ] || say "warning: could not create the prompt configuration 'default' ($STATUS)"
fi

if [ "$DASHBOARD" = true ]; then DASHBOARD_LINE="$URL/dashboard/  (Orleans Dashboard, from this machine only)"; else DASHBOARD_LINE="off (TAPT_DASHBOARD=0)"; fi
cat >&2 <<EOF

  TaptPlatform is running (all-in-one: Azurite + one silo with every role + gateway + console)

    console       $URL/
    tenant        $TENANT   (vocabulary "fashion", prompt configuration "default" on $MODEL)
    tenant key    $TENANT_KEY
    operator key  $OPERATOR_KEY
    API           $URL/openapi/v1.json  (send the key in X-Api-Key)
    dashboard     $DASHBOARD_LINE
    metrics       $URL/metrics  (Prometheus, with the operator key in X-Api-Key; OTLP export: set OTEL_EXPORTER_OTLP_ENDPOINT)
    keys & data   $DATA   (logs in $DATA/logs)

  Try it: open the console, sign in with the tenant key, and drop the images of $ROOT/samples/fashion on Jobs
  (three of them are attacked at 4/255: plain CLIP gets them wrong, TAPT right, and they show up under Audit), or:
    dotnet run --project $ROOT/src/TaptPlatform.Cli -- submit --server $URL --key \$(cat $DATA/tenant-key) --vocabulary fashion $ROOT/samples/fashion --watch

  Ctrl+C (or ./run.sh stop) stops everything; ./run.sh again resumes with the same tenants, jobs and results.

EOF
# Stay in the foreground until the gateway ends or Ctrl+C (the traps stop both processes). `wait` returns at a signal.
while running "$GW_PID"; do wait "$GW_PID" 2>/dev/null || sleep 1; done
say "the gateway exited (see $DATA/logs/gateway.log)"
