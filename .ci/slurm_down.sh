#!/usr/bin/env bash
# Stop what .ci/slurm_up.sh started (by its pid files) and remove its temp dir. munged is stopped only when
# slurm_up.sh started it and no other slurmctld/slurmd on this machine is left to need it.
#   .ci/slurm_down.sh [SLURM_TMP]      (default: $SLURM_TMP)
set -uo pipefail
SLURM_TMP=${1:-${SLURM_TMP:-}}
if [ -z "$SLURM_TMP" ] || [ ! -f "$SLURM_TMP/slurm.conf" ]; then
  echo "[slurm_down] usage: $0 SLURM_TMP (a folder made by slurm_up.sh)" >&2
  exit 2
fi

stop() {  # stop <pidfile> <name>: TERM, wait up to 10 s, then KILL
  local file=$1 name=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "[slurm_down] stopped $name (pid $pid)" >&2
  fi
}

stop "$SLURM_TMP/slurmd.pid" slurmd
stop "$SLURM_TMP/slurmctld.pid" slurmctld
# munged is machine-wide: other Slurm daemons (another cluster on this machine) may still need it
others=$( (pgrep -x slurmctld; pgrep -x slurmd) | tr '\n' ' ')
if [ -n "$others" ]; then
  [ -s "$SLURM_TMP/munged.pid" ] && echo "[slurm_down] munged left running: other Slurm daemons use it (pids $others)" >&2
else
  stop "$SLURM_TMP/munged.pid" munged
fi
case "$SLURM_TMP" in
  /tmp/*) rm -rf "$SLURM_TMP" ;;
  *) echo "[slurm_down] $SLURM_TMP is not under /tmp: left in place" >&2 ;;
esac
