#!/usr/bin/env bash
# Bring up a single-node SLURM cluster for the cluster tests (tests/test_cluster.py), from
# Debian 12's packages (slurmctld, slurmd, slurm-client, munge; slurm 22.05): no systemd, no
# cgroups, no slurmdbd. Idempotent: re-running it installs nothing new and leaves running daemons
# alone (they are restarted only when the generated config changed).
# Needs root. Everything except /etc/slurm/{slurm,gres}.conf (symlinks) lives under $BASE.
#
# The node advertises one fake "gpu" GRES backed by /dev/null (slurmd drops a gpu GRES without a
# File=, and File= must be a device): no GPU is behind it, it only lets jobs that request one
# (--gpus=1) be accepted and scheduled, so that the tests can read the request back with
# `scontrol show job`. Such a job sees CUDA_VISIBLE_DEVICES=0 but torch finds no CUDA.
#
# No slurmdbd means no sacct: Snakemake must poll with squeue (slurm-status-command: squeue),
# and MinJobAge below keeps finished jobs visible to squeue/scontrol for 10 minutes.
#
# Usage: bash start-slurm.sh            # install (if needed) + start + smoke test
#        bash start-slurm.sh stop       # stop only the daemons this script started (by PID file)
set -euo pipefail

BASE=${SLURM_CI_BASE:-/tmp/slurm-ci}
ETC=$BASE/etc; STATE=$BASE/state; LOG=$BASE/log; RUN=$BASE/run; MUNGE=$BASE/munge
CONF=$ETC/slurm.conf
GRES_CONF=$ETC/gres.conf
SOCK=$MUNGE/munge.socket.2
NODE=$(hostname -s)
PARTITION=${SLURM_PARTITION_NAME:-debug}
t0=$(date +%s.%N)
log() { printf '[start-slurm %6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a-b}')" "$*"; }

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_pidfile() { for _ in $(seq 50); do [[ -s $1 ]] && return 0; sleep 0.1; done; echo "no pid file $1" >&2; return 1; }

stop_one() {  # stop_one NAME PIDFILE
    local pidf=$2 pid
    if alive "$pidf"; then
        pid=$(cat "$pidf"); kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped $1 (pid $pid)"
    fi
    rm -f "$pidf"
}

if [[ ${1:-start} == stop ]]; then
    stop_one slurmd "$RUN/slurmd.pid"
    stop_one slurmctld "$RUN/slurmctld.pid"
    stop_one munged "$MUNGE/munged.pid"
    exit 0
fi

[[ $(id -u) == 0 ]] || { echo "start-slurm.sh needs root" >&2; exit 1; }
# never clobber a real SLURM installation's config
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [[ -e $f && ! -L $f ]]; then echo "$f exists and is not ours: refusing to touch it" >&2; exit 1; fi
done

# ---- 1. packages -----------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    log "installing packages"
    # keep the packages' init scripts from starting daemons with the default config
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
    [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
    log "packages installed: $(slurmctld -V)"
fi

# ---- 2. dirs, munge key, config ---------------------------------------------
mkdir -p "$ETC" "$STATE/ctld" "$STATE/d" "$LOG" "$RUN" "$MUNGE"
chown munge:munge "$MUNGE"; chmod 755 "$MUNGE"   # munged wants the socket dir world-executable
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
fi

CPUS=$(nproc)
# 90% of MemTotal (stable between runs, so re-running does not rewrite the config)
MEM_MB=$(( $(awk '/^MemTotal:/{print $2}' /proc/meminfo) / 1024 * 90 / 100 ))
cat > "$CONF.new" <<EOF
# single-node CI cluster written by start-slurm.sh
ClusterName=ci
# the address in brackets: no DNS needed for the node name
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# no cgroups in the sandbox
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# no slurmdbd: sacct does not work; snakemake must poll with squeue,
# which needs finished jobs kept in slurmctld memory for a while
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
# (no AccountingStorageTRES=gres/gpu: slurmctld refuses it without slurmdbd; a job's GPU
# request shows as TresPerJob=gres:gpu:1 in scontrol show job)
# jobs without --mem must not take the whole node's memory
DefMemPerCPU=1000
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$GRES_CONF.new" <<EOF
# written by start-slurm.sh: one fake GPU (no device behind it, see the script's header)
NodeName=$NODE Name=gpu File=/dev/null
EOF
conf_changed=0
for f in "$CONF" "$GRES_CONF"; do
    if ! cmp -s "$f.new" "$f"; then mv "$f.new" "$f"; conf_changed=1; else rm -f "$f.new"; fi
done
# The default path matters: the slurm-jobstep plugin strips SLURM_CONF (all SLURM_* vars)
# from the environment of the srun it runs inside each job. gres.conf is read from the
# directory of slurm.conf.
mkdir -p /etc/slurm
ln -sfn "$CONF" /etc/slurm/slurm.conf
ln -sfn "$GRES_CONF" /etc/slurm/gres.conf
unset SLURM_CONF

# ---- 3. daemons -----------------------------------------------------------
if ! alive "$MUNGE/munged.pid"; then
    runuser -u munge -- munged --socket="$SOCK" --pid-file="$MUNGE/munged.pid" \
        --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
    log "munged started (pid $(cat "$MUNGE/munged.pid"))"
fi
munge -S "$SOCK" -n | unmunge -S "$SOCK" >/dev/null

if [[ $conf_changed == 1 ]] && { alive "$RUN/slurmctld.pid" || alive "$RUN/slurmd.pid"; }; then
    log "config changed: restarting slurm daemons"
    stop_one slurmd "$RUN/slurmd.pid"; stop_one slurmctld "$RUN/slurmctld.pid"
fi
if ! alive "$RUN/slurmctld.pid"; then
    rm -f "$RUN/slurmctld.pid"
    slurmctld            # daemonizes, writes $RUN/slurmctld.pid
    wait_pidfile "$RUN/slurmctld.pid"
    log "slurmctld started (pid $(cat "$RUN/slurmctld.pid"))"
fi
if ! alive "$RUN/slurmd.pid"; then
    rm -f "$RUN/slurmd.pid"
    slurmd               # daemonizes, writes $RUN/slurmd.pid
    wait_pidfile "$RUN/slurmd.pid"
    log "slurmd started (pid $(cat "$RUN/slurmd.pid"))"
fi

# ---- 4. wait for the node, smoke test ----------------------------------------
for i in $(seq 60); do
    st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case $st in
        idle|mixed|allocated|completing) break ;;
        *drain*|down*) scontrol update NodeName="$NODE" State=RESUME || true ;;
    esac
    sleep 1
done
[[ $st =~ ^(idle|mixed|allocated|completing) ]] || { echo "node $NODE not up (state '$st')" >&2; tail -n 20 "$LOG"/*.log >&2; exit 1; }
sinfo
out=$(srun -N1 -n1 -t 1 hostname)
[[ $out == "$NODE" || $out == "$(hostname)" ]] || { echo "srun smoke test failed: '$out'" >&2; exit 1; }
log "SLURM up: node $NODE state $st, srun ok"
