#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests/test_slurm.py: Debian's munge, slurmctld and slurmd,
# no accounting database. Idempotent: installs what is missing, (re)writes the config, starts what is not
# running, and waits until the node takes jobs. Needs root (CI runs as root). Undo with teardown_cluster.sh.
#
# The config lives at Slurm's default path, /etc/slurm/slurm.conf: the executor plugin's job step drops every
# SLURM_* variable (SLURM_CONF too) before its inner srun, so a config elsewhere would not be found there.
# The node declares one GPU backed by /dev/null: GPU jobs (--gpus=N) are accepted and scheduled for real,
# with no GPU in the machine.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "setup_cluster.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

packages=(munge slurmctld slurmd slurm-client)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} )); then
    echo "setup_cluster.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm

cat > /etc/slurm/slurm.conf <<CONF
# Written by prefdisco's tests/slurm/setup_cluster.sh: a one-node test cluster on localhost.
ClusterName=prefdisco-test
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# No accounting database: jobs are followed with squeue (finished jobs stay listed for MinJobAge seconds, at
# least 3x the plugin's first status wait) and every finished job is logged to the job-completion file.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=3600
GresTypes=gpu
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=${node} Name=gpu File=/dev/null
CONF

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
fi

# slurmctld and slurmd fork into the background; a start that fails (a bad config) is told by their log.
if timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; then
    scontrol reconfigure
else
    /usr/sbin/slurmctld || { tail -5 /var/log/slurm/slurmctld.log >&2; exit 1; }
fi
pgrep -F /run/slurmd.pid >/dev/null 2>&1 || /usr/sbin/slurmd || { tail -5 /var/log/slurm/slurmd.log >&2; exit 1; }

state=none
for _ in $(seq 60); do
    if ! pgrep -F /run/slurmctld.pid >/dev/null 2>&1; then
        echo "setup_cluster.sh: slurmctld stopped:" >&2; tail -5 /var/log/slurm/slurmctld.log >&2; exit 1
    fi
    state=$(timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in
        idle|mixed|allocated) echo "setup_cluster.sh: node $node is $state"; exit 0 ;;
        down*|drain*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
echo "setup_cluster.sh: node $node did not come up (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
