#!/usr/bin/env bash
# The preemption check of docs/checkpoints.md: a sweep killed with SIGKILL at random moments, KILLS times,
# then run to the end from its checkpoints, must end with the numbers of the same sweep never stopped
# (scripts/compare-results.py: bit for bit, clocks and machine data aside).
#   scripts/kill-resume-check.sh NGDBENCH SPEC [KILLS] [-- RUN ARGS...]
# RUN ARGS go to both `ngdbench run` calls (e.g. --filter, --scale, --data-root); the killed sweep adds
# --checkpoint-every-steps ${CHECKPOINT_EVERY_STEPS:-20}. The kills fall uniformly in the middle 80 % of
# the uninterrupted sweep's wall time, measured first; RANDOM_SEED fixes them. Work in $WORK (default: a
# new temporary folder, removed unless KEEP=1). Exit status 0 when the numbers match and a run resumed.
set -euo pipefail
NGDBENCH="$1"; SPEC="$2"; shift 2
KILLS=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then KILLS="$1"; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
SOURCE_DIR="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$(mktemp -d /tmp/ngdbench-kill-check.XXXXXX)}"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
RANDOM="${RANDOM_SEED:-$$}"

start=$(date +%s%N)
"$NGDBENCH" run "$SPEC" --out "$WORK/whole" --quiet "$@" >/dev/null
wall=$(/usr/bin/python3 -c "print(round(($(date +%s%N) - $start) / 1e9, 2))")
echo "uninterrupted sweep: ${wall} s"

for kill in $(seq "$KILLS"); do
  # A moment in the middle 80 % of the whole sweep's time (each piece resumes, so it runs at most that long).
  delay=$(/usr/bin/python3 -c "print(round($wall * (0.1 + 0.8 * $RANDOM / 32767), 2))")
  "$NGDBENCH" run "$SPEC" --out "$WORK/killed" --quiet --checkpoint-every-steps "${CHECKPOINT_EVERY_STEPS:-20}" "$@" \
    >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    echo "kill $kill: SIGKILL after ${delay} s; checkpoints: $(find "$WORK/killed" -name '*.ckpt' | wc -l)"
  else
    wait "$pid" || true
    echo "kill $kill: the sweep had finished before ${delay} s"
  fi
done
"$NGDBENCH" run "$SPEC" --out "$WORK/killed" --quiet --checkpoint-every-steps "${CHECKPOINT_EVERY_STEPS:-20}" "$@" \
  >/dev/null
for experiment in "$WORK/whole"/*/; do
  /usr/bin/python3 "$SOURCE_DIR/scripts/compare-results.py" "$experiment" "$WORK/killed/$(basename "$experiment")" \
    --resumed
done
