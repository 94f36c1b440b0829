#!/usr/bin/env bash
# CTest `slurm_requeue` (label slurm; `make test-slurm`): a sweep as a Slurm job array of shards on a
# one-node Slurm (scripts/slurm-local.sh), one task requeued half-way with `scontrol requeue`; every
# result equals a local run's bit for bit (times and machine data aside), none missing or duplicated,
# no checkpoint left. Skips (exit 77) with a line unless NGDBENCH_SLURM_TEST=1 or when Slurm does not come up.
#   tests/slurm/requeue_test.sh NGDBENCH SOURCE_DIR
set -euo pipefail
NGDBENCH="$1"
SOURCE_DIR="$2"
if [ "${NGDBENCH_SLURM_TEST:-0}" != 1 ]; then
  echo "skipped: brings up a Slurm on this machine; run it with make test-slurm (NGDBENCH_SLURM_TEST=1)"
  exit 77
fi
WORK="$(mktemp -d /tmp/ngdbench-slurm-test.XXXXXX)"
export SLURM_LOCAL_DIR="$WORK/slurm"
cleanup() { "$SOURCE_DIR/scripts/slurm-local.sh" down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
if ! "$SOURCE_DIR/scripts/slurm-local.sh" up; then
  echo "skipped: a one-node Slurm could not be brought up here (see the lines above)"
  exit 77
fi
source "$SLURM_LOCAL_DIR/env"
export PATH="$PATH:/usr/sbin"

# Synthetic Fashion-MNIST-shaped data (each class brightens its own band of rows) and a sweep of
# 8 runs, 3 epochs of 32 steps, a checkpoint every 8 steps.
/usr/bin/python3 - "$WORK/data/fashion-mnist" <<'PY'
import gzip, os, random, struct, sys
root = sys.argv[1]; os.makedirs(root, exist_ok=True)
def write(name, dims, payload):
    with gzip.open(os.path.join(root, name), "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload))
rng = random.Random(0)
for split, n in (("train", 1024), ("t10k", 128)):
    labels = [rng.randrange(10) for _ in range(n)]
    images = []
    for label in labels:
        for row in range(28):
            bright = 200 if 2 * label <= row < 2 * label + 3 else 0
            images.extend(min(255, bright + rng.randrange(40)) for _ in range(28))
    write(f"{split}-images-idx3-ubyte.gz", [n, 28, 28], images)
    write(f"{split}-labels-idx1-ubyte.gz", [n], labels)
PY
cat >"$WORK/sweep.json" <<'JSON'
{"name": "slurm-sweep", "dataset": {"name": "fashion-mnist"}, "model": {"name": "mlp", "hidden": [256]},
 "epochs": 3, "batch_size": 32, "seeds": [0, 1],
 "checkpoint": {"every_steps": 8},
 "optimizers": [{"name": "sgd", "hparams": {"lr": [0.01, 0.02, 0.05, 0.1]}}]}
JSON
"$NGDBENCH" run "$WORK/sweep.json" --out "$WORK/local" --data-root "$WORK/data" --threads 1 --quiet >/dev/null

cd "$WORK"
"$NGDBENCH" slurm "$WORK/sweep.json" --out "$WORK/cluster" --shards 4 --cpus-per-task 1 --requeue \
  --signal-seconds 60 --time 00:20:00 --data-root "$WORK/data" --script "$WORK/sweep.sbatch"
job="$(sbatch --parsable "$WORK/sweep.sbatch")"
job="${job%%;*}"
echo "submitted job array $job"

# Requeue the first task seen running once it has written a checkpoint: SIGTERM, a checkpoint, exit 75,
# and the task runs again from it.
requeued=""
for _ in $(seq 600); do
  if ls "$WORK/cluster/slurm-sweep/"*.ckpt >/dev/null 2>&1; then
    requeued="$(squeue -h -j "$job" -t RUNNING -o '%i' | head -n 1)"
    if [ -n "$requeued" ]; then
      scontrol requeue "$requeued"
      echo "requeued $requeued"
      break
    fi
  fi
  sleep 0.5
done
[ -n "$requeued" ] || { echo "FAIL: no running task with a checkpoint to requeue"; exit 1; }

for _ in $(seq 1200); do
  [ -z "$(squeue -h -j "$job" -o '%i' 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$job" -o '%i' 2>/dev/null)" ] || { echo "FAIL: the job array did not finish in 20 minutes"; exit 1; }

/usr/bin/python3 "$SOURCE_DIR/scripts/compare-results.py" "$WORK/local/slurm-sweep" "$WORK/cluster/slurm-sweep" \
  --count 8 --resumed
