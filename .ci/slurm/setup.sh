#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on this machine (Debian 12, as root,
# no systemd): install Slurm 22.05 + munge from Debian, write slurm.conf and
# gres.conf for this host, start munged, slurmctld and slurmd directly, wait
# until the node is idle and check that jobs (including a GPU job) really run.
#
# Idempotent: re-running it when the cluster is already up with the same
# configuration only re-checks it. A changed configuration restarts the daemons.
#
# The node declares one GPU of type `ci` (`Gres=gpu:ci:1`, gres.conf
# `File=/dev/null`) with select/cons_tres, so that jobs asking for `--gpus=1`,
# `--gpus=ci:1`, `--gres=gpu:1` or `--gres=gpu:ci:1` are scheduled on a CPU-only
# machine; they see CUDA_VISIBLE_DEVICES=0, and `scontrol show job` lists the GPU
# they asked for (TresPerJob or TresPerNode) and got (AllocTRES, where tracked).
#
# Environment:
#   SLURM_PARTITION   partition name to create (default: debug)
#   SLURM_SKIP_CHECK  set to 1 to skip the srun/sbatch smoke test
#
# Stop the cluster with .ci/slurm/stop.sh.
set -euo pipefail

PARTITION="${SLURM_PARTITION:-debug}"
CONF_DIR=/etc/slurm
STATE_DIR=/var/lib/slurm
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm

say() { printf '[slurm-setup] %s\n' "$*"; }
die() { printf '[slurm-setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- 1. packages -------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurmctld slurmd slurm-client munge (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Keep the packages' post-install scripts from starting the services through
    # /etc/init.d (other pid files than ours); we start the daemons below.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    rc=0
    apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null || rc=$?
    [ "$policy_added" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || die "apt-get install failed (exit $rc)"
else
    say "packages already installed: $(slurmctld -V)"
fi

# --- 2. configuration --------------------------------------------------------
HOST="$(hostname -s)"
# `slurmd -C` prints the hardware as slurmd sees it, e.g.
# NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
HW="$(slurmd -C | head -n1)"
case "$HW" in NodeName=*) ;; *) die "unexpected 'slurmd -C' output: $HW" ;; esac
NODE_HW="$(printf '%s\n' "$HW" | sed -E 's/^NodeName=[^ ]+ //')"
CPUS="$(printf '%s\n' "$HW" | sed -nE 's/.* CPUs=([0-9]+).*/\1/p')"
MEM="$(printf '%s\n' "$HW" | sed -nE 's/.* RealMemory=([0-9]+).*/\1/p')"
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not read CPUs/RealMemory from: $HW"
say "node $HOST: $CPUS CPUs, $MEM MB memory, 1 scheduling-only GPU (type ci)"

# Address the node through the loopback when the host name does not resolve.
NODE_ADDR=""
if ! getent hosts "$HOST" >/dev/null; then NODE_ADDR=" NodeAddr=127.0.0.1"; fi

mkdir -p "$CONF_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" "$RUN_DIR"
chown slurm:slurm "$STATE_DIR/slurmctld" "$LOG_DIR" "$RUN_DIR"

new_conf="$(mktemp)"
new_gres="$(mktemp)"
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat >"$new_conf" <<EOF
# Written by .ci/slurm/setup.sh: a single-node cluster for CI (no accounting).
ClusterName=tissuefate-ci
SlurmctldHost=${HOST}
SlurmUser=slurm
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 10 minutes: the Snakemake
# Slurm plugin reads job states from squeue (no accounting database here) and
# requires MinJobAge >= 3 x slurm-init-seconds-before-status-checks.
MinJobAge=600
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=${STATE_DIR}/slurmctld
SlurmdSpoolDir=${STATE_DIR}/slurmd
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
NodeName=${HOST}${NODE_ADDR} ${NODE_HW} Gres=gpu:ci:1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$new_gres" <<EOF
# Written by .ci/slurm/setup.sh. File=/dev/null: a GPU for scheduling only
# (without File= slurmd drops the GPU and the node is drained).
NodeName=${HOST} Name=gpu Type=ci File=/dev/null
EOF

changed=0
if ! cmp -s "$new_conf" "$CONF_DIR/slurm.conf"; then
    install -m 0644 "$new_conf" "$CONF_DIR/slurm.conf"; changed=1
fi
if ! cmp -s "$new_gres" "$CONF_DIR/gres.conf"; then
    install -m 0644 "$new_gres" "$CONF_DIR/gres.conf"; changed=1
fi
if [ "$changed" -eq 1 ]; then
    say "wrote $CONF_DIR/slurm.conf and $CONF_DIR/gres.conf"
else
    say "configuration unchanged"
fi

# --- 3. daemons --------------------------------------------------------------
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

MUNGE_PID=/run/munge/munged.pid
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if pid_alive "$MUNGE_PID"; then
    say "munged already running (pid $(cat "$MUNGE_PID"))"
else
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 1 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n </dev/null | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

if [ "$changed" -eq 1 ]; then
    for d in slurmd slurmctld; do
        if pid_alive "$RUN_DIR/$d.pid"; then
            say "configuration changed: stopping $d"
            kill "$(cat "$RUN_DIR/$d.pid")"
            for _ in $(seq 1 50); do pid_alive "$RUN_DIR/$d.pid" || break; sleep 0.2; done
        fi
    done
fi

if pid_alive "$RUN_DIR/slurmctld.pid"; then
    say "slurmctld already running (pid $(cat "$RUN_DIR/slurmctld.pid"))"
else
    say "starting slurmctld"
    # -c: start from a clean state (no jobs or node states from an earlier run)
    /usr/sbin/slurmctld -c
fi
if pid_alive "$RUN_DIR/slurmd.pid"; then
    say "slurmd already running (pid $(cat "$RUN_DIR/slurmd.pid"))"
else
    say "starting slurmd"
    /usr/sbin/slurmd
fi

# --- 4. wait for the node ----------------------------------------------------
say "waiting for node $HOST to become idle"
state=""
for i in $(seq 1 120); do
    state="$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle|mixed|allocated) break ;;
        drained|draining|down|down\*|drained\*)
            # e.g. left drained by an earlier configuration
            scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated) ;;
    *) tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
       die "node $HOST is '$state', not idle (logs in $LOG_DIR)" ;;
esac
sinfo -o '%P %a %D %T %N %c %m %G'

# --- 5. smoke test -----------------------------------------------------------
if [ "${SLURM_SKIP_CHECK:-0}" != 1 ]; then
    say "check: srun -n1 hostname"
    out="$(timeout 60 srun -n1 hostname)" || die "srun failed"
    [ "$out" = "$(hostname)" ] || die "srun printed '$out', expected '$(hostname)'"
    say "  -> $out"

    say "check: sbatch --gres=gpu:1 sees CUDA_VISIBLE_DEVICES"
    tmp="$(mktemp -d)"
    jid="$(sbatch --parsable --gres=gpu:1 -o "$tmp/gpu.out" -D "$tmp" \
           --wrap 'echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"')"
    for _ in $(seq 1 120); do
        st="$(squeue -h -j "$jid" --states=all -o '%T' 2>/dev/null || true)"
        case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
        sleep 0.5
    done
    [ "$st" = COMPLETED ] || die "GPU test job $jid ended as '$st'"
    gpu_out="$(cat "$tmp/gpu.out")"
    rm -rf "$tmp"
    [ "$gpu_out" = "CUDA_VISIBLE_DEVICES=0" ] || die "GPU test job printed '$gpu_out'"
    say "  -> job $jid: $gpu_out"
fi

say "Slurm cluster is up: partition '$PARTITION' on node '$HOST' (stop with .ci/slurm/stop.sh)"
