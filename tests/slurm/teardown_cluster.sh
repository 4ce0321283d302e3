#!/usr/bin/env bash
# Stop the test cluster that setup_cluster.sh started: slurmctld and slurmd, then munged. The packages and
# /etc/slurm stay, so the next setup is quick.
set -uo pipefail

stop() {  # stop the daemon named by a pid file, and wait for it to go
    local pidfile=$1 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

stop /run/slurmd.pid
stop /run/slurmctld.pid
stop /run/munge/munged.pid
echo "teardown_cluster.sh: slurm and munge stopped"
