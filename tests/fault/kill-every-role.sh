#!/usr/bin/env bash
# Fault test on the multi-process topology (infra/local-cluster.sh): during one job of TAPT_FAULT_IMAGES
# (500) Fashion-MNIST images, with a SignalR client (tests/fault/live-client.cjs, the web console's protocol) following it:
#   1. kill -9 the accelerator silo at 15 % of the results, start another accelerator silo;
#   2. kill -9 the cpu-only silo at 40 %, start another cpu-only silo;
#   3. kill -9 the gateway at 65 % while the client is connected, start another gateway on the same port.
# Checks: the job completes; each image has exactly one result, and it succeeded; every input, result record and audit
# record is in blob storage and agrees with the listed results; the client kept receiving results through the silo
# kills, reconnected by itself after the gateway kill and ended with the final state and the same results as the API.
# Ports: TAPT_CLUSTER_PORT (6310), TAPT_CLUSTER_AZURITE_PORT (11310-11312); workload: TAPT_FAULT_VIEWS (see lib.sh).
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "$0")/lib.sh"
N=${TAPT_FAULT_IMAGES:-500}

fault_init kill-every-role 6310 11310
fault_cluster_start
fault_tenant
fault_job "$N"
say "$N images uploaded"

# The live client subscribes before the start, so it follows the whole job.
node "$LIVE_CLIENT" "$URL" "$KEY" "$JOB" "$FAULT_WORK/client.json" >"$TAPT_CLUSTER_DIR/logs/live-client.log" 2>&1 &
CLIENT_PID=$!
FAULT_PIDS+=("$CLIENT_PID")
for _ in $(seq 1 120); do grep -qs '"event":"snapshot"' "$TAPT_CLUSTER_DIR/logs/live-client.log" && break; kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.5; done
grep -q '"event":"snapshot"' "$TAPT_CLUSTER_DIR/logs/live-client.log" || { cat "$TAPT_CLUSTER_DIR/logs/live-client.log" >&2; die "the live client did not subscribe"; }
fault_start_job

fault_wait_completed $((N * 15 / 100))
fault_kill9 silo-accelerator
"$CLUSTER" start-silo silo-accelerator-2 accelerator
fault_recovery "the kill of the accelerator silo"

fault_wait_completed $((N * 40 / 100))
fault_kill9 silo-cpu
"$CLUSTER" start-silo silo-cpu-2 cpu-only
fault_recovery "the kill of the cpu-only silo"

fault_wait_completed $((N * 65 / 100))
if ! kill -0 "$CLIENT_PID" 2>/dev/null || grep -q '"event":"closed"' "$TAPT_CLUSTER_DIR/logs/live-client.log"; then
  die "the live client is not connected before the gateway kill"
fi
# Live events went on after the silo kills (the job grain may have been reactivated elsewhere): within two renewal
# intervals of the gateway (2 × 15 s) the client holds every result the API listed a moment ago.
api_done=$POLL_DONE held=0
for i in $(seq 1 60); do
  held=$(json held <"$FAULT_WORK/client.json.status" 2>/dev/null || echo 0)
  [ "${held:-0}" -ge "$api_done" ] && break
  sleep 0.5
done
if [ "${held:-0}" -ge "$api_done" ]; then
  pass "the live client kept up through the silo kills: it holds $held results, the API listed $api_done (checked after $((i / 2)) s)"
else
  fail "the live client fell behind after the silo kills: it holds ${held:-0} results 30 s after the API listed $api_done"
fi
fault_kill9 gateway
"$CLUSTER" start-gateway
say "the gateway is ready again $(($(date +%s) - FAULT_KILLED_AT))s after its kill"
fault_recovery "the kill of the gateway"

fault_wait_done
say "waiting for the live client to finish"
client_rc=0
for _ in $(seq 1 240); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$CLIENT_PID" 2>/dev/null; then fail "the live client did not see the end of the job in 2 minutes"; kill "$CLIENT_PID"; fi
wait "$CLIENT_PID" || client_rc=$?
grep -E '"event":"(connected|reconnecting|reconnected|closed|snapshot|summary|error)"' "$TAPT_CLUSTER_DIR/logs/live-client.log" | cut -c1-400 >&2 || true
summary=$(grep '"event":"summary"' "$TAPT_CLUSTER_DIR/logs/live-client.log" || echo '{}')
reconnected=$(json reconnected <<<"$summary")
if [ "${reconnected:-0}" -ge 1 ]; then
  pass "the live client reconnected by itself after the gateway kill ($reconnected reconnection(s), down $(json outages <<<"$summary") s)"
else
  fail "the live client did not reconnect"
fi
if [ "$client_rc" -eq 0 ]; then pass "the live client caught up: final state and every result"; else fail "the live client did not catch up (exit $client_rc)"; fi

fault_verify "$N" "$FAULT_WORK/client.json"
fault_job_log
fault_finish
