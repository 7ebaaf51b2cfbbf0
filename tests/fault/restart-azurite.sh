#!/usr/bin/env bash
# Fault test on the multi-process topology (infra/local-cluster.sh): Azure Storage goes away mid-job. At 30 %
# of TAPT_FAULT_IMAGES (500) results Azurite is stopped (SIGTERM, so it saves its data as a storage service keeps what it
# acknowledged), stays down TAPT_FAULT_OUTAGE seconds (20), and starts again on the same data folder and ports.
# Checks: every process of the cluster survives the outage; the job completes; each image has exactly one result, and
# it succeeded; every input, result record and audit record is stored and agrees with the listed results.
# Ports: TAPT_CLUSTER_PORT (6320), TAPT_CLUSTER_AZURITE_PORT (11320-11322); workload: TAPT_FAULT_VIEWS (see lib.sh).
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "$0")/lib.sh"
N=${TAPT_FAULT_IMAGES:-500}
OUTAGE=${TAPT_FAULT_OUTAGE:-20}

fault_init restart-azurite 6320 11320
fault_cluster_start
fault_tenant
fault_job "$N"
fault_start_job

fault_wait_completed $((N * 30 / 100))
[ "$POLL_STATE" = completed ] && die "the job finished before the outage: use more images (TAPT_FAULT_IMAGES) or views (TAPT_FAULT_VIEWS)"
stopped_at=$(date +%s)
"$CLUSTER" stop-azurite
FAULT_KILLED_AT=$stopped_at
say "Azurite stopped at $POLL_DONE results (in $(($(date +%s) - stopped_at))s); down for ${OUTAGE}s"
during=()
for _ in $(seq 1 "$OUTAGE"); do poll; during+=("$POLL_DONE"); sleep 1; done
say "what the API answered for the completed count during the outage (-1: no answer): ${during[*]}"
"$CLUSTER" start-azurite
FAULT_KILLED_AT=$(date +%s)
fault_recovery "Azurite's restart"

fault_wait_done
dead=$("$CLUSTER" status | grep -c ' dead' || true)
if [ "$dead" -eq 0 ]; then
  pass "every process of the cluster survived the storage outage"
else
  fail "$dead process(es) of the cluster died: $("$CLUSTER" status | grep ' dead' | tr '\n' ' ')"
fi
fault_verify "$N"
fault_job_log
for f in "$TAPT_CLUSTER_DIR"/logs/silo-*.log; do
  say "$(basename "$f" .log): $(grep -c 'RequestFailedException\|could not save\|dispatcher stopped' "$f" || true) log line(s) of storage failures"
done
fault_finish
