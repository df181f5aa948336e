#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm/setup.sh:
# cancel remaining jobs, then stop slurmd, slurmctld and munged (by pid file).
# Safe to run when nothing is running.
set -uo pipefail

say() { printf '[slurm-stop] %s\n' "$*"; }

RUN_DIR=/run/slurm

if command -v scancel >/dev/null && [ -s "$RUN_DIR/slurmctld.pid" ]; then
    timeout 10 scancel --full --user="$(id -un)" >/dev/null 2>&1 || true
fi

stop_pidfile() {
    local name="$1" pidfile="$2" pid
    if [ -s "$pidfile" ] && pid="$(cat "$pidfile")" && kill -0 "$pid" 2>/dev/null; then
        say "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name did not stop in 10 s, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        say "$name not running"
    fi
    rm -f "$pidfile"
}

stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid
say "done"
