#!/usr/bin/env bash
# The stop path of run.sh: run it under `timeout` with SIGINT (as Ctrl+C), SIGTERM, SIGHUP and SIGKILL, and once with SIGINT
# while it waits for the gateway to start, and check each time that nothing it started is left: no Azurite, no gateway,
# no watcher, no port still listening. Its own data folder (a temporary one) and ports TAPT_PORT (6330) and
# TAPT_AZURITE_PORT (11330-11332). TAPT_RUNSH_SECONDS (120): how long each run lasts before the signal;
# TAPT_RUNSH_CASES (INT TERM HUP KILL STARTING): which of them to run.
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "$0")/lib.sh"
SECONDS_UP=${TAPT_RUNSH_SECONDS:-120}
export TAPT_PORT=${TAPT_PORT:-6330} TAPT_AZURITE_PORT=${TAPT_AZURITE_PORT:-11330} TAPT_TORCH_THREADS=${TAPT_TORCH_THREADS:-1}
DATA=$(mktemp -d)
export TAPT_DATA=$DATA/data
trap '"$FAULT_ROOT/run.sh" stop || true; rm -rf "$DATA"' EXIT

# leftovers: what of this run.sh still runs, one "pid command" per line: Azurite (its data folder is on its command
# line), the gateway of this checkout, the watcher.
leftovers() {
  ps -eww -o pid=,stat=,args= | D=$TAPT_DATA G=$FAULT_ROOT/src/TaptPlatform.Gateway/ W=$FAULT_ROOT/run.sh awk '
    $2 !~ /^Z/ && (index($0, ENVIRON["D"]) || index($0, ENVIRON["G"]) || (index($0, "run-sh-watcher") && index($0, ENVIRON["W"]))) {
      print $1, substr($0, index($0, $3), 120) }'
}
listening() { local q; for q in "$TAPT_PORT" "$TAPT_AZURITE_PORT" $((TAPT_AZURITE_PORT + 1)) $((TAPT_AZURITE_PORT + 2)); do (exec 3<>"/dev/tcp/127.0.0.1/$q") 2>/dev/null && echo "$q"; done; return 0; }

# check NAME SIGNAL SECONDS: runs run.sh under timeout, then waits up to 60 s for everything it started to be gone.
check() {
  local name=$1 signal=$2 seconds=$3 rc=0 started left ports
  [ -z "$(leftovers)" ] || die "processes of an earlier run are still there: $(leftovers)"
  started=$(date +%s)
  # Shortly before the signal, what the detector sees: it must see Azurite, the gateway and the watcher then.
  [ "$seconds" -gt 20 ] && (sleep $((seconds - 10)); leftovers >"$DATA/$name.during") &
  timeout -s "$signal" "$seconds" "$FAULT_ROOT/run.sh" >"$DATA/$name.log" 2>&1 || rc=$?
  wait
  local up=no; grep -q 'TaptPlatform is running' "$DATA/$name.log" && up=yes
  if [ "$seconds" -gt 20 ]; then
    if [ "$up" = yes ] && [ "$(grep -c . "$DATA/$name.during")" -ge 3 ]; then
      pass "$name: run.sh was up, and its Azurite, gateway and watcher were seen running 10 s before the signal"
    else
      fail "$name: run.sh was not up 10 s before the signal (up: $up; seen: $(tr '\n' ';' <"$DATA/$name.during"))"
    fi
  fi
  local exited; exited=$(date +%s)
  for _ in $(seq 1 120); do left=$(leftovers); ports=$(listening); [ -z "$left$ports" ] && break; sleep 0.5; done
  say "$name: run.sh exited with $rc after $((exited - started))s (was up: $up); all gone $(($(date +%s) - exited))s later; its last lines:"
  tail -n 3 "$DATA/$name.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' >&2
  if [ -z "$left$ports" ]; then
    pass "$name: nothing of run.sh is left (no Azurite, gateway or watcher process; ports free)"
  else
    fail "$name: left behind: ${left//$'\n'/; } ports: ${ports//$'\n'/ }"
    "$FAULT_ROOT/run.sh" stop || true
  fi
}

# check_starting: Ctrl+C (SIGINT to run.sh's process group) while run.sh waits for the gateway to become ready.
check_starting() {
  local name="SIGINT while the gateway starts" rc=0 pid left ports
  [ -z "$(leftovers)" ] || die "processes of an earlier run are still there: $(leftovers)"
  # With job control, run.sh gets its own process group, as in a terminal, and SIGINT is not ignored (bash ignores it
  # in the background jobs of a script, and a signal ignored at a script's start cannot be trapped).
  set -m
  "$FAULT_ROOT/run.sh" >"$DATA/$name.log" 2>&1 &
  pid=$!
  set +m
  for _ in $(seq 1 600); do grep -q 'starting the gateway' "$DATA/$name.log" && break; sleep 0.5; done
  grep -q 'starting the gateway' "$DATA/$name.log" || die "$name: run.sh did not get to start the gateway"
  sleep 1
  kill -INT -- "-$pid"
  wait "$pid" || rc=$?
  for _ in $(seq 1 120); do left=$(leftovers); ports=$(listening); [ -z "$left$ports" ] && break; sleep 0.5; done
  grep -q 'TaptPlatform is running' "$DATA/$name.log" && fail "$name: the gateway was already ready: the signal came too late to test the start"
  say "$name: run.sh exited with $rc; its last lines:"
  tail -n 3 "$DATA/$name.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' >&2
  if [ -z "$left$ports" ]; then pass "$name: nothing of run.sh is left"; else fail "$name: left behind: ${left//$'\n'/; } ports: ${ports//$'\n'/ }"; "$FAULT_ROOT/run.sh" stop || true; fi
}

for c in ${TAPT_RUNSH_CASES:-INT TERM HUP KILL STARTING}; do
  case "$c" in
    INT)
      check "SIGINT after ${SECONDS_UP}s (Ctrl+C)" INT "$SECONDS_UP"
      if grep -q 'the gateway exited with status 0' "$DATA/SIGINT after ${SECONDS_UP}s (Ctrl+C).log"; then
        pass "SIGINT: the gateway stopped cleanly (exit status 0)"
      else
        fail "SIGINT: the gateway did not exit with status 0"
      fi ;;
    TERM) check "SIGTERM after ${SECONDS_UP}s" TERM "$SECONDS_UP" ;;
    HUP) check "SIGHUP after ${SECONDS_UP}s (terminal closed)" HUP "$SECONDS_UP" ;;
    KILL) check "SIGKILL after ${SECONDS_UP}s" KILL "$SECONDS_UP" ;;
    STARTING) check_starting ;;
    *) die "unknown case $c (INT TERM HUP KILL STARTING)" ;;
  esac
done
fault_finish
