#!/usr/bin/env bash
# The cluster topology as plain processes on loopback (what docker-compose.yml describes, without Docker):
#   Azurite, one accelerator silo (Tapt:Accelerator=cpu), one cpu-only silo, one gateway in client mode,
#   all joined through Azure Table clustering.
#
#   infra/local-cluster.sh start        builds (Release), starts everything, waits until the gateway is ready
#   infra/local-cluster.sh stop         stops the gateway, the silos, then Azurite (by their recorded pids)
#   infra/local-cluster.sh status       what runs
#   infra/local-cluster.sh start-silo NAME accelerator|cpu-only   one more silo (e.g. to replace a killed one)
#   infra/local-cluster.sh start-gateway   the gateway again (e.g. after kill -9 of it), waits until it is ready
#   infra/local-cluster.sh stop-azurite / start-azurite   stops (SIGTERM: it saves its data) / starts Azurite on the same data
#
# Every process runs in its own session (so signals to this script or its caller spare it); its pid, which is also its
# process group, is written to $TAPT_CLUSTER_DIR/pids/NAME by the process itself before it execs.
#
# Environment: TAPT_CLUSTER_DIR (.data/cluster: data, pids, logs, keys), TAPT_CLUSTER_PORT (5100: gateway HTTP),
#   TAPT_CLUSTER_AZURITE_PORT (10010: blob; queue and table the next two), TAPT_TORCH_THREADS (1), TAPT_ENGINE_THREADS (1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
DIR=${TAPT_CLUSTER_DIR:-$ROOT/.data/cluster}
PORT=${TAPT_CLUSTER_PORT:-5100}
BLOB=${TAPT_CLUSTER_AZURITE_PORT:-10010}
QUEUE=$((BLOB + 1)); TABLE=$((BLOB + 2))
TORCH_THREADS=${TAPT_TORCH_THREADS:-1}
ENGINE_THREADS=${TAPT_ENGINE_THREADS:-1}
CLUSTER_ID=${TAPT_CLUSTER_ID:-tapt-local-cluster}
ACCOUNT=devstoreaccount1
ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
STORAGE="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$ACCOUNT_KEY;BlobEndpoint=http://127.0.0.1:$BLOB/$ACCOUNT;QueueEndpoint=http://127.0.0.1:$QUEUE/$ACCOUNT;TableEndpoint=http://127.0.0.1:$TABLE/$ACCOUNT;"
SILO_DLL=$ROOT/src/TaptPlatform.Silo/bin/Release/net10.0/TaptPlatform.Silo.dll
GATEWAY_DLL=$ROOT/src/TaptPlatform.Gateway/bin/Release/net10.0/TaptPlatform.Gateway.dll
URL=http://127.0.0.1:$PORT

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# running PID: the process exists and is not a zombie (a killed process whose parent has not reaped it yet).
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }
alive() { [ -s "$DIR/pids/$1" ] && running "$(cat "$DIR/pids/$1")"; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# spawn NAME COMMAND...: runs COMMAND in a new session, logging to logs/NAME.log; the pid file holds COMMAND's own pid.
spawn() {
  local name=$1; shift
  rm -f "$DIR/pids/$name"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/pids/$name" "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do [ -s "$DIR/pids/$name" ] && return 0; sleep 0.05; done
  die "$name did not start"
}

# start_silo NAME ROLE: a silo process on free loopback ports.
start_silo() {
  local name=$1 role=$2 accel
  case "$role" in accelerator) accel=cpu ;; cpu-only) accel=cpu-only ;; *) die "role must be accelerator or cpu-only" ;; esac
  alive "$name" && die "$name already runs"
  TAPT__STORAGE__CONNECTIONSTRING="$STORAGE" TAPT__ACCELERATOR=$accel TAPT__APIKEYS__SIGNINGKEY="$(cat "$DIR/api-key-signing-key")" \
  TAPT__ENGINE__THREADS=$ENGINE_THREADS TAPT__ENGINE__TORCHTHREADS=$TORCH_THREADS TAPT__MODELS__ROOT="$ROOT/models" \
  ORLEANS__CLUSTERID=$CLUSTER_ID ORLEANS__SERVICEID=tapt-platform ORLEANS__SILOPORT=$(free_port) ORLEANS__GATEWAYPORT=$(free_port) \
  DOTNET_gcServer=0 spawn "$name" dotnet "$SILO_DLL"
  say "silo $name ($role) pid $(cat "$DIR/pids/$name")"
}

start_azurite() {
  alive azurite && return 0
  for p in "$BLOB" "$QUEUE" "$TABLE"; do port_busy "$p" && die "port $p is in use"; done
  spawn azurite .tools/azurite/node_modules/.bin/azurite --silent --skipApiVersionCheck --loose --disableTelemetry --location "$DIR/azurite" \
    --blobHost 127.0.0.1 --blobPort "$BLOB" --queueHost 127.0.0.1 --queuePort "$QUEUE" --tableHost 127.0.0.1 --tablePort "$TABLE"
  for _ in $(seq 1 120); do port_busy "$BLOB" && port_busy "$TABLE" && break; alive azurite || die "Azurite exited (see $DIR/logs/azurite.log)"; sleep 0.5; done
  say "azurite pid $(cat "$DIR/pids/azurite") on 127.0.0.1:$BLOB-$TABLE"
}

# start_gateway: the gateway (client mode) unless it runs, then waits until it is ready.
start_gateway() {
  if ! alive gateway; then
    port_busy "$PORT" && die "port $PORT is in use"
    ASPNETCORE_URLS=$URL TAPT__GATEWAY__MODE=client TAPT__GATEWAY__OPERATORKEY="$(cat "$DIR/operator-key")" \
    TAPT__APIKEYS__SIGNINGKEY="$(cat "$DIR/api-key-signing-key")" \
    TAPT__STORAGE__CONNECTIONSTRING="$STORAGE" ORLEANS__CLUSTERID=$CLUSTER_ID ORLEANS__SERVICEID=tapt-platform \
      spawn gateway dotnet "$GATEWAY_DLL"
    say "gateway pid $(cat "$DIR/pids/gateway") on $URL"
  fi
  for i in $(seq 1 360); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health/ready" || true)" = 200 ] && break
    alive gateway || die "the gateway exited (see $DIR/logs/gateway.log)"
    [ "$i" = 360 ] && die "the gateway did not become ready in 3 minutes"
    sleep 0.5
  done
}

stop_one() { # stop_one NAME [SECONDS]: SIGTERM to its process group, SIGKILL after SECONDS (30)
  local name=$1 wait=${2:-30} pid
  [ -s "$DIR/pids/$name" ] || return 0
  pid=$(cat "$DIR/pids/$name")
  if running "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((wait * 2))); do running "$pid" || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name"
  fi
  rm -f "$DIR/pids/$name"
}

case "${1:-}" in
  start)
    mkdir -p "$DIR/azurite" "$DIR/logs" "$DIR/pids"
    [ -x .tools/azurite/node_modules/.bin/azurite ] ||
      npm install --prefix .tools/azurite --no-audit --no-fund --loglevel=error azurite@3.37.0 >/dev/null
    if [ "${TAPT_CLUSTER_NO_BUILD:-}" != 1 ]; then
      say "building the silo and the gateway (Release)"
      dotnet build src/TaptPlatform.Gateway/TaptPlatform.Gateway.csproj -c Release -v quiet -clp:ErrorsOnly >"$DIR/logs/build.log" 2>&1 ||
        { tail -n 20 "$DIR/logs/build.log" >&2; die "build failed"; }
      dotnet build src/TaptPlatform.Silo/TaptPlatform.Silo.csproj -c Release -v quiet -clp:ErrorsOnly >>"$DIR/logs/build.log" 2>&1 ||
        { tail -n 20 "$DIR/logs/build.log" >&2; die "build failed"; }
    fi
    [ -s "$DIR/operator-key" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$DIR/operator-key")
    [ -s "$DIR/api-key-signing-key" ] || (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48 >"$DIR/api-key-signing-key")
    start_azurite
    alive silo-accelerator || start_silo silo-accelerator accelerator
    alive silo-cpu || start_silo silo-cpu cpu-only
    start_gateway
    say "ready: $URL (operator key in $DIR/operator-key, logs in $DIR/logs)"
    ;;
  start-silo) start_silo "${2:?name}" "${3:?accelerator|cpu-only}" ;;
  start-gateway) start_gateway; say "ready: $URL" ;;
  start-azurite) start_azurite ;;
  stop-azurite) stop_one azurite 20 ;;
  stop)
    stop_one gateway 20
    for f in "$DIR"/pids/silo-*; do [ -e "$f" ] && stop_one "$(basename "$f")" 30; done
    stop_one azurite 10
    ;;
  status)
    for f in "$DIR"/pids/*; do [ -e "$f" ] || continue; n=$(basename "$f"); alive "$n" && echo "$n running (pid $(cat "$f"))" || echo "$n dead"; done
    ;;
  *) echo "usage: $0 start|stop|status|start-silo NAME accelerator|cpu-only|start-gateway|stop-azurite|start-azurite" >&2; exit 2 ;;
esac
