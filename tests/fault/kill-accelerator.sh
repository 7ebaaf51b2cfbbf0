#!/usr/bin/env bash
# Fault test on the multi-process topology (infra/local-cluster.sh), the short one: kill -9 the accelerator silo in the
# middle of a job, start another one, and check that the job completes with exactly one result per image and every
# artifact stored. TAPT_FAULT_IMAGES (60) images; ports TAPT_CLUSTER_PORT (6300) and TAPT_CLUSTER_AZURITE_PORT (11300);
# see tests/fault/lib.sh for the other settings.
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "$0")/lib.sh"
N=${TAPT_FAULT_IMAGES:-60}

fault_init kill-accelerator 6300 11300
fault_cluster_start
fault_tenant
fault_job "$N"
fault_start_job

fault_wait_completed $((N / 4))
fault_kill9 silo-accelerator
"$CLUSTER" start-silo silo-accelerator-2 accelerator
fault_recovery "the kill of the accelerator silo"

fault_wait_done
fault_verify "$N"
fault_job_log
fault_finish
