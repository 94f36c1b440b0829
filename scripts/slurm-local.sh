#!/usr/bin/env bash
# A one-node Slurm on this machine, for the `slurm` tests (docs/checkpoints.md#clusters):
#   scripts/slurm-local.sh up     installs what is missing (slurmctld, slurmd, slurm-client, munge), writes a
#                                 minimal slurm.conf for localhost with 2 CPUs and starts munged and slurmctld
#                                 as this user and slurmd as root (it starts the jobs as their users) under
#                                 $SLURM_LOCAL_DIR; prints the line that points the Slurm commands at it (also
#                                 in $SLURM_LOCAL_DIR/env)
#   scripts/slurm-local.sh down   cancels its jobs, stops the daemons and removes $SLURM_LOCAL_DIR
# Exit status 1 (with the daemons' log paths) when the node does not come up within 60 s.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/ngdbench-slurm}"
CPUS="${SLURM_LOCAL_CPUS:-2}"
CTLD_PORT="${SLURM_LOCAL_PORT:-16817}"
HOST="$(hostname -s)"
CONF="$DIR/slurm.conf"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local missing=()
  for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "slurm-local: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system daemons with the default configuration; this node runs its own.
  for service in slurmctld slurmd munge; do as_root service "$service" stop >/dev/null 2>&1 || true; done
}

up() {
  install_missing
  export PATH="$PATH:/usr/sbin"
  mkdir -p "$DIR"/{state,spool,munge}
  chmod 700 "$DIR/munge"
  [ -f "$DIR/munge/munge.key" ] || { dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$DIR/munge/munge.key"; }
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
  local user
  user="$(id -un)"
  cat >"$CONF" <<CONF
# One node, this machine, run by $user (scripts/slurm-local.sh).
ClusterName=ngdbench-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
SlurmUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MaxArraySize=1001
KillWait=30
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  echo "export SLURM_CONF=$CONF" >"$DIR/env"
  export SLURM_CONF="$CONF"
  slurmctld -f "$CONF"
  as_root slurmd -f "$CONF"
  for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx 'idle'; then
      echo "slurm-local: node $HOST up with $CPUS CPUs; for the Slurm commands: export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  echo "slurm-local: the node did not come up in 60 s; see $DIR/slurmctld.log, $DIR/slurmd.log, $DIR/munge/munged.log" >&2
  return 1
}

down() {
  export PATH="$PATH:/usr/sbin" SLURM_CONF="$CONF"
  [ -f "$CONF" ] && scancel --user "$(id -un)" >/dev/null 2>&1 || true
  [ -f "$DIR/slurmd.pid" ] && as_root kill "$(cat "$DIR/slurmd.pid")" 2>/dev/null || true
  for pid_file in "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  sleep 1
  as_root rm -rf "$DIR"  # slurmd's spool files are root's
  echo "slurm-local: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
