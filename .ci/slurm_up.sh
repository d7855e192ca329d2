#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (munge + slurmctld + slurmd, no accounting) for the
# `@pytest.mark.slurm` tests. Needs root. Prints the temp dir and, last, `export SLURM_CONF=...`:
#   eval "$(.ci/slurm_up.sh | tail -1)"      # ... run tests ...      .ci/slurm_down.sh "$SLURM_TMP"
# Env: SLURM_TMP (default: a new mktemp dir), SLURM_CPUS (default 2), SLURM_PORT_BASE (default 16817),
#      SLURM_UP_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

log() { echo "[slurm_up] $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq slurm-wlm munge >&2
fi

SLURM_TMP=${SLURM_TMP:-$(mktemp -d /tmp/slurm.XXXXXX)}
mkdir -p "$SLURM_TMP/state" "$SLURM_TMP/spool"
CPUS=${SLURM_CPUS:-2}
PORT=${SLURM_PORT_BASE:-16817}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
HOST=$(hostname -s)
FREE_MB=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MB=$(( FREE_MB * 3 / 4 ))
(( REAL_MB > 16384 )) && REAL_MB=16384

# munge: start our own daemon unless one already answers
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  [ -s /etc/munge/munge.key ] || { log "creating /etc/munge/munge.key"; (command -v mungekey >/dev/null && mungekey -c -f -k /etc/munge/munge.key) || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; chmod 400 /etc/munge/munge.key; }
  chown munge:munge /run/munge
  chown -R munge:munge /var/log/munge /var/lib/munge /etc/munge
  runuser -u munge -- munged
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$SLURM_TMP/munged.pid"   # ours: slurm_down.sh stops it
  log "munged started (pid $(cat "$SLURM_TMP/munged.pid"))"
else
  log "munged already running: left alone"
fi

for port in "$PORT" "$((PORT + 1))"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port is in use (another Slurm cluster on this machine?): set SLURM_PORT_BASE to a free pair"
    exit 1
  fi
done

cat > "$SLURM_TMP/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_TMP/state
SlurmdSpoolDir=$SLURM_TMP/spool
SlurmctldPidFile=$SLURM_TMP/slurmctld.pid
SlurmdPidFile=$SLURM_TMP/slurmd.pid
SlurmctldLogFile=$SLURM_TMP/ctld.log
SlurmdLogFile=$SLURM_TMP/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MB
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$SLURM_TMP/slurm.conf

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

deadline=$(( $(date +%s) + TIMEOUT ))
until [ -s "$SLURM_TMP/slurmctld.pid" ] && kill -0 "$(cat "$SLURM_TMP/slurmctld.pid")" 2>/dev/null \
      && sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; do
  if (( $(date +%s) > deadline )); then
    log "node not idle after ${TIMEOUT}s: sinfo says '$(sinfo -h -N -o '%T' 2>&1 | head -1)'; logs in $SLURM_TMP"
    tail -5 "$SLURM_TMP/ctld.log" "$SLURM_TMP/d.log" >&2 || true
    "$(dirname "$0")/slurm_down.sh" "$SLURM_TMP" >&2
    exit 1
  fi
  sleep 1
done
log "node $HOST idle (CPUs=$CPUS RealMemory=${REAL_MB}MB, ports $PORT/$((PORT + 1)))"
echo "SLURM_TMP=$SLURM_TMP"
echo "export SLURM_CONF=$SLURM_CONF SLURM_TMP=$SLURM_TMP"
