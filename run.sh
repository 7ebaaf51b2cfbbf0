#!/usr/bin/env bash
# TaptPlatform in one command: Azurite (data in .data/azurite) + the gateway in its all-in-one mode (one silo with every
# role, the HTTP API, the SignalR hub and the web console), running the default model models/fashion-clip-small.
# Prints the console URL and a ready tenant key. Ctrl+C stops everything; a restart keeps tenants, jobs and results.
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

command -v dotnet >/dev/null || die "the .NET SDK is required (https://dot.net)"
command -v npm >/dev/null || die "Node.js and npm are required (apt-get install nodejs npm)"
mkdir -p "$DATA/azurite" "$DATA/logs"
chmod 700 "$DATA"

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

# ---- start ---------------------------------------------------------------------------------------------------------
# Azurite and the gateway run in their own sessions (setsid), so Ctrl+C reaches only this script, which then stops
# the gateway first (its silo leaves the cluster while storage is still up) and Azurite last.
AZ_PID="" GW_PID=""
stop() {
  trap - INT TERM EXIT
  say "stopping"
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$GW_PID" 2>/dev/null || true
  fi
  if [ -n "$AZ_PID" ] && kill -0 "$AZ_PID" 2>/dev/null; then
    kill -TERM "$AZ_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$AZ_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$AZ_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  say "stopped (data kept in $DATA)"
}
trap stop INT TERM EXIT

for p in "$BLOB" "$QUEUE" "$TABLE"; do port_busy "$p" && die "port $p is in use (another Azurite?); set TAPT_AZURITE_PORT"; done
port_busy "$PORT" && die "port $PORT is in use; set TAPT_PORT"

say "starting Azurite on 127.0.0.1:$BLOB-$TABLE (data in $DATA/azurite)"
setsid "$AZURITE" --silent --skipApiVersionCheck --loose --location "$DATA/azurite" \
  --blobHost 127.0.0.1 --blobPort "$BLOB" --queueHost 127.0.0.1 --queuePort "$QUEUE" \
  --tableHost 127.0.0.1 --tablePort "$TABLE" >"$DATA/logs/azurite.log" 2>&1 &
AZ_PID=$!
for _ in $(seq 1 120); do port_busy "$BLOB" && port_busy "$TABLE" && break; kill -0 "$AZ_PID" 2>/dev/null || die "Azurite exited (see $DATA/logs/azurite.log)"; sleep 0.5; done
port_busy "$TABLE" || die "Azurite did not start"

ACCOUNT=devstoreaccount1
ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
STORAGE="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$ACCOUNT_KEY;BlobEndpoint=http://127.0.0.1:$BLOB/$ACCOUNT;QueueEndpoint=http://127.0.0.1:$QUEUE/$ACCOUNT;TableEndpoint=http://127.0.0.1:$TABLE/$ACCOUNT;"

say "starting the gateway (all-in-one) on $URL"
ASPNETCORE_URLS="http://$HOST:$PORT" \
TAPT__GATEWAY__MODE=all-in-one \
TAPT__GATEWAY__OPERATORKEY="$OPERATOR_KEY" \
TAPT__STORAGE__CONNECTIONSTRING="$STORAGE" \
TAPT__ACCELERATOR=cpu \
TAPT__ENGINE__THREADS="$ENGINE_THREADS" \
TAPT__ENGINE__TORCHTHREADS="$TORCH_THREADS" \
TAPT__MODELS__ROOT="$ROOT/models" \
TAPT__DASHBOARD__ENABLED="$DASHBOARD" \
LOGGING__CONSOLE__FORMATTERNAME="$LOG_FORMAT" \
ORLEANS__CLUSTERID=tapt-local \
ORLEANS__SERVICEID=tapt-platform \
  setsid dotnet "$GATEWAY_DLL" >"$DATA/logs/gateway.log" 2>&1 &
GW_PID=$!
for i in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health/ready" || true)" = 200 ] && break
  kill -0 "$GW_PID" 2>/dev/null || { tail -n 30 "$DATA/logs/gateway.log" >&2; die "the gateway exited (see $DATA/logs/gateway.log)"; }
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
    metrics       $URL/metrics  (Prometheus; OTLP export: set OTEL_EXPORTER_OTLP_ENDPOINT)
    keys & data   $DATA   (logs in $DATA/logs)

  Try it:
    dotnet run --project src/TaptPlatform.Cli -- submit --server $URL --key \$(cat $DATA/tenant-key) --vocabulary fashion IMAGES_DIR --watch

  Ctrl+C stops everything; ./run.sh again resumes with the same tenants, jobs and results.

EOF
# Stay in the foreground until the gateway ends or Ctrl+C (the trap stops both processes).
wait "$GW_PID" || true
