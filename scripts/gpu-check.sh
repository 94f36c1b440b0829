#!/usr/bin/env bash
# GPU acceptance in one command (docs/gpu.md). On a GPU machine (NVIDIA GPU, nvcc, CMake, a CUDA PyTorch
# 2.x in its python3), in the repository root, with third_party/carried/ (scripts/gpu-check.sh --pack)
# carried along:
#
#   bash scripts/gpu-check.sh --out "$OUT"
#
# Stages, each timed and bounded so that the whole ends within --budget seconds (default 450):
#   probe        the GPU, driver, torch, nvcc, cmake, compiler
#   data         the CIFAR-10 copy in third_party/carried/data/ (else --data-root, else synthetic images)
#   configure    scripts/build-gpu.sh configure build-gpu (LibTorch's CMake config, else the torch package)
#   build        the ngdbench CLI, with every core
#   anchor       SGD on ResNet-18 for 2 epochs (experiments/gpu/resnet18-cifar10-sgd-anchor.json) and the
#                same step in plain PyTorch eager (benchmarks/peers/eager_resnet18.py), twice, interleaved
#   acceptance   one epoch of SGD, KFAC, TENGraD and FNGD on ResNet-18 / CIFAR-10 at batch 128
#                (experiments/gpu/resnet18-cifar10-acceptance.json), with and without --no-phase-timing
#   build-tests  the test executable
#   cuda-tests   ctest -L cuda
# The acceptance runs before the tests are built, so a slow build costs the tests, not the measurements.
# OUT gets summary.md (one page, printed last), summary.json and bundle.tar.gz (logs, result files):
# three files, within what a device call brings back. Exit status 0 when every stage passed.
#
#   scripts/gpu-check.sh --pack       here, before the device call: build-gpu.sh pack, the CIFAR-10 copy
#                                     in third_party/carried/data/, and the sizes against the device limit
#   scripts/gpu-check.sh --dry-run [--build DIR] [--out DIR]
#                                     on the CPU (CTest gpu_check_dry_run): no configure or build; checks
#                                     the plan, the carried size, the specs and the scripts, then runs the
#                                     anchor and the acceptance at the specs' cpu scale on --device cpu with
#                                     DIR's ngdbench, lists the cuda tests and writes the summary
# Other options: --build DIR (default build-gpu; dry run: build), --data-root DIR, --budget SECONDS,
# --python PY (the interpreter of the eager loop, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
SELF="$PWD/scripts/gpu-check.sh"

readonly kCarried=third_party/carried
readonly kCarriedData=$kCarried/data/cifar10-mini
readonly kAcceptanceSpec=experiments/gpu/resnet18-cifar10-acceptance.json
readonly kAnchorSpec=experiments/gpu/resnet18-cifar10-sgd-anchor.json
# What a device call carries: the working tree and the carried paths, 64 MiB in all; stay under with a
# margin. The committed results are most of the tree (34.9 MiB with the low-rank suites, 2026-12-08, when
# the carried training images went from 1,000 to 900 per file to fit): the next large result set must
# carry fewer CIFAR records or move figures out of the tree.
readonly kTreeLimitMiB=60
# CIFAR-10 training records carried (or generated) per batch file, five files; and test records.
readonly kCarriedTrainPerFile=900
readonly kCarriedTest=1000

say() { echo "gpu-check: $*"; }

# ---- stages (each runs as `gpu-check.sh --stage NAME` under timeout, its output in logs/NAME.log) ----

note() { echo "$*" > "$W/notes/$STAGE"; }

stage_probe() {
  python3 scripts/gpu_check.py probe "$W/probe.json"
  command -v nvidia-smi > /dev/null && nvidia-smi || echo "no nvidia-smi"
  local gpu
  gpu=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p.get("gpu") or "no GPU")' "$W/probe.json")
  note "$gpu"
  if [ "$MODE" = run ]; then
    # Without a GPU that the torch package sees, every later stage would fail the same way: say it here.
    python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
      || { echo "python3's torch sees no CUDA device"; return 1; }
  fi
}

stage_data() {
  case "$DATA_SOURCE" in
    synthetic)
      local per_file=$kCarriedTrainPerFile test=$kCarriedTest
      [ "$MODE" = dry-run ] && per_file=200 test=200
      python3 scripts/gpu_check.py synthetic-cifar "$DATA" --train-per-file "$per_file" --test "$test"
      note "synthetic images (no CIFAR-10 copy found): timings are real, accuracies are not" ;;
    *) ls -l "$DATA/cifar-10-batches-bin"; note "$DATA" ;;
  esac
}

stage_configure() {
  TORCH_CONFIG_TIMEOUT=75 scripts/build-gpu.sh configure "$BUILD"
  note "$(grep -h "^build-gpu: configured" "$W/logs/configure.log" | tail -1 | sed 's/^build-gpu: configured [^ ]* //')"
}

# Link errors after LibTorch's CMake config (a CUDA library it names that this machine lacks): configure
# again from the torch package alone and build once more; compile errors would only repeat.
stage_build() {
  if cmake --build "$BUILD" -j "$JOBS" --target ngdbench; then return 0; fi
  if grep -q "with LibTorch's CMake config" "$W/logs/configure.log" 2>/dev/null \
     && grep -Eq "undefined reference|cannot find -l|No rule to make target|ld returned" "$W/logs/build.log"; then
    echo "gpu-check: link errors with LibTorch's CMake config: configuring with TORCH_FROM=python and building again"
    note "rebuilt with TORCH_FROM=python after link errors"
    TORCH_FROM=python scripts/build-gpu.sh configure "$BUILD"
    cmake --build "$BUILD" -j "$JOBS" --target ngdbench
  else
    return 1
  fi
}

# Dry run only: what the GPU run relies on, checked on the CPU.
stage_plan() {
  local status=0
  bash -n "$SELF" scripts/build-gpu.sh
  python3 -m py_compile scripts/gpu_check.py benchmarks/peers/eager_resnet18.py
  python3 benchmarks/peers/eager_resnet18.py --help > /dev/null
  # The specs parse and expand at both scales.
  for scale in paper cpu; do
    "$NGDBENCH" run "$kAcceptanceSpec" "$kAnchorSpec" --dry-run --device cpu --scale "$scale" || status=1
  done
  # What --pack stages, measured against the device call's limit.
  if [ -d /usr/include/nlohmann ] && [ -d /usr/src/googletest ]; then
    scripts/build-gpu.sh pack "$W/carried-check"
    local source
    source=$(find_cifar_source)
    [ -n "$source" ] && python3 scripts/gpu_check.py trim-cifar "$source" "$W/carried-check/data/cifar10-mini" \
                          --train-per-file "$kCarriedTrainPerFile" --test "$kCarriedTest"
    python3 scripts/gpu_check.py sizes "$W/carried-check" --limit-mib "$kTreeLimitMiB" || status=1
    rm -rf "$W/carried-check"
  else
    echo "pack not checked: scripts/install-deps.sh's packages are not installed here"
    note "pack not checked (packages missing)"
  fi
  # The budget: the stages' minimum times fit it.
  echo "plan: budget $BUDGET s; caps: configure 120, build 240, anchor 120, acceptance 180, build-tests 180, cuda-tests 150"
  return "$status"
}

stage_anchor() {
  local status=0 repetitions=2 eager_args=()
  [ "$MODE" = dry-run ] && repetitions=1 eager_args=(--epochs 1 --steps 1)
  for repetition in $(seq 1 "$repetitions"); do
    "$NGDBENCH" run "$kAnchorSpec" --device "$DEVICE" --scale "$SCALE" --data-root "$DATA" \
      --out "$W/results/anchor-$repetition" --no-phase-timing --force || status=1
    "$PY" benchmarks/peers/eager_resnet18.py --spec "$kAnchorSpec" --scale "$SCALE" --data-root "$DATA" \
      --device "$DEVICE" --out "$W/eager-$repetition.json" "${eager_args[@]}" || status=1
  done
  if grep -q '"skipped"' "$W/eager-1.json" 2>/dev/null; then note "PyTorch eager skipped: see summary"; fi
  return "$status"
}

stage_acceptance() {
  local status=0
  "$NGDBENCH" run "$kAcceptanceSpec" --device "$DEVICE" --scale "$SCALE" --data-root "$DATA" \
    --out "$W/results/phase-timing" --force || status=1
  "$NGDBENCH" run "$kAcceptanceSpec" --device "$DEVICE" --scale "$SCALE" --data-root "$DATA" \
    --out "$W/results/no-phase-timing" --no-phase-timing --force || status=1
  return "$status"
}

stage_build-tests() {
  cmake --build "$BUILD" -j "$JOBS" --target ngdbench_tests
}

stage_cuda-tests() {
  if [ "$MODE" = dry-run ]; then
    # Listed, not run: without a GPU they skip. At least the CudaTraining family must be there. From a
    # copy of the CTest files: even `ctest -N` rewrites Testing/Temporary/LastTest.log, which the CTest
    # run this dry run may be part of is writing.
    local listed copy=$W/ctest-listing
    (cd "$BUILD" && find . -name CTestTestfile.cmake -not -path './gpu-check*') | while read -r file; do
      mkdir -p "$copy/$(dirname "$file")"
      cp "$BUILD/$file" "$copy/$file"
    done
    (cd "$copy" && ctest -N -L cuda) | tee "$W/cuda-tests.list"
    listed=$(sed -n 's/^Total Tests: //p' "$W/cuda-tests.list")
    [ "${listed:-0}" -ge 5 ] || { echo "only ${listed:-0} tests labelled cuda"; return 1; }
    note "$listed tests labelled cuda (listed, not run)"
  else
    cd "$BUILD"
    ctest -L cuda --output-on-failure -j "$JOBS" --timeout 150
  fi
}

find_cifar_source() {
  local candidate
  for candidate in "${DATA_ARG:-}" ../shared/datasets/cifar10-mini /work/shared/datasets/cifar10-mini \
                   $(echo "${NGDBENCH_DATA:-}" | tr ':' ' '); do
    if [ -n "$candidate" ] && [ -e "$candidate/cifar-10-batches-bin/test_batch.bin" ]; then
      echo "$candidate"
      return
    fi
  done
}

if [ "${1:-}" = --stage ]; then
  STAGE=$2
  "stage_$STAGE"
  exit
fi

# ---- the driver ------------------------------------------------------------------------------------

MODE=run OUT="" BUILD="" DATA_ARG="" BUDGET=450 PY=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --dry-run) MODE=dry-run; shift ;;
    --pack) MODE=pack; shift ;;
    --build) BUILD=$2; shift 2 ;;
    --data-root) DATA_ARG=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODE" = pack ]; then
  scripts/build-gpu.sh pack
  source=$(find_cifar_source)
  if [ -n "$source" ]; then
    python3 scripts/gpu_check.py trim-cifar "$source" "$kCarriedData" --train-per-file "$kCarriedTrainPerFile" \
      --test "$kCarriedTest"
  else
    say "no CIFAR-10 data root found (--data-root DIR): the check will generate synthetic images on the device"
  fi
  python3 scripts/gpu_check.py sizes "$kCarried" --limit-mib "$kTreeLimitMiB"
  say "ready: on the GPU machine, in this checkout's root: bash scripts/gpu-check.sh --out \"\$OUT\" (carry $kCarried; docs/gpu.md)"
  exit 0
fi

if [ "$MODE" = dry-run ]; then
  BUILD=${BUILD:-build} DEVICE=cpu SCALE=cpu
  [ -x "$BUILD/ngdbench" ] || { say "--dry-run needs a built $BUILD/ngdbench (make cli, or --build DIR)"; exit 2; }
else
  BUILD=${BUILD:-build-gpu} DEVICE=cuda SCALE=paper
fi
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)
W=${GPU_CHECK_WORK:-$BUILD/gpu-check}
OUT=${OUT:-$W/out}
rm -rf "$W"
mkdir -p "$W/logs" "$W/notes" "$W/results" "$OUT"
OUT=$(cd "$OUT" && pwd)
NGDBENCH=$BUILD/ngdbench
JOBS=$(nproc)
# The data root: --data-root, else the carried copy, else a CIFAR-10 copy on this machine, else synthetic.
source=$(find_cifar_source)
if [ -n "$DATA_ARG" ]; then
  DATA=$(cd "$DATA_ARG" && pwd) DATA_SOURCE=given
elif [ -e "$kCarriedData/cifar-10-batches-bin/test_batch.bin" ]; then
  DATA=$PWD/$kCarriedData DATA_SOURCE=carried
elif [ -n "$source" ]; then
  DATA=$(cd "$source" && pwd) DATA_SOURCE=found
else
  DATA=$W/data DATA_SOURCE=synthetic
fi
export MODE BUILD W DEVICE SCALE DATA DATA_SOURCE DATA_ARG NGDBENCH JOBS PY BUDGET
START=$(date +%s)
DEADLINE=$((START + BUDGET))
: > "$W/stages.tsv"
say "$MODE: device $DEVICE, scale $SCALE, build $BUILD, data $DATA ($DATA_SOURCE), out $OUT, budget $BUDGET s"

# run_stage NAME CAP KEEP: runs the stage for at most CAP seconds, or fewer so that KEEP seconds are left
# for the stages after it; skips it when under 10 seconds remain for it.
run_stage() {
  local name=$1 cap=$2 keep=$3 now left limit rc=0 started seconds status
  now=$(date +%s)
  left=$((DEADLINE - now))
  limit=$((left - keep))
  [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt 10 ]; then
    printf '%s\tskipped\t0\t%s\t%s\n' "$name" "$limit" "no time left ($left s, $keep s kept for later stages)" >> "$W/stages.tsv"
    say "$name: skipped: no time left ($left s of the budget, $keep s kept for later stages)"
    return 1
  fi
  say "$name: started (limit $limit s, $left s of the budget left)"
  started=$(date +%s.%N)
  STAGE=$name timeout -k 10 "$limit" bash "$SELF" --stage "$name" > "$W/logs/$name.log" 2>&1 || rc=$?
  seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status="failed (exit $rc)" ;;
  esac
  local stage_note=""
  [ -f "$W/notes/$name" ] && stage_note=$(tr '\t\n' '  ' < "$W/notes/$name" | sed 's/ *$//')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$seconds" "$limit" "$stage_note" >> "$W/stages.tsv"
  say "$name: $status in $seconds s${stage_note:+ ($stage_note)}"
  if [ "$rc" -ne 0 ]; then
    echo "---- last lines of logs/$name.log:"
    tail -n 25 "$W/logs/$name.log" | cut -c1-300 | sed 's/^/    /'
  fi
  return "$rc"
}

skip_stage() {  # NAME REASON
  printf '%s\tskipped\t0\t0\t%s\n' "$1" "$2" >> "$W/stages.tsv"
  say "$1: skipped: $2"
}

# Caps, and the time each stage leaves to the essential ones after it (their minimum: build 90 s, anchor
# 40 s, acceptance 100 s, cuda-tests 30 s, the summary 20 s).
run_stage probe 60 0 || true
run_stage data 60 0 || true
built=false
if [ "$MODE" = dry-run ]; then
  run_stage plan 240 160 || true
  built=true
elif run_stage configure 120 250; then
  run_stage build 240 160 && built=true
else
  skip_stage build "configure failed"
fi
if $built; then
  run_stage anchor 120 120 || true
  run_stage acceptance 180 20 || true
else
  skip_stage anchor "no ngdbench binary"
  skip_stage acceptance "no ngdbench binary"
fi
if [ "$MODE" = dry-run ]; then
  run_stage cuda-tests 60 15 || true
elif $built && run_stage build-tests 180 50; then
  run_stage cuda-tests 150 15 || true
else
  skip_stage cuda-tests "the tests were not built"
fi

# The record: summary.md, summary.json and a bundle of the logs and raw results.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# How LibTorch was found (build-gpu.sh's last word on it).
build_note=$(grep -h "^build-gpu: configured" "$W/logs/configure.log" "$W/logs/build.log" 2>/dev/null | tail -1 \
             | sed 's/^build-gpu: //' || true)
[ "$MODE" = dry-run ] && build_note="none (dry run: $NGDBENCH as built)"
python3 - "$W/config.json" "$MODE" "$DEVICE" "$SCALE" "$DATA ($DATA_SOURCE)" "$BUDGET" "$commit" "$build_note" \
  "$(( $(date +%s) - START ))" <<'EOF'
import json, sys
keys = ["mode", "device", "scale", "data", "budget", "commit", "build", "seconds"]
values = dict(zip(keys, sys.argv[2:]))
values["budget"], values["seconds"] = int(values["budget"]), int(values["seconds"])
json.dump(values, open(sys.argv[1], "w"), indent=2)
EOF
# Logs past 2 MB keep their end (the bundle must stay far under the 16 MiB a returned file may have).
find "$W/logs" -type f -size +2M -exec sh -c 'tail -c 2000000 "$1" > "$1.tail" && mv "$1.tail" "$1"' _ {} \;
verdict=0
python3 scripts/gpu_check.py summary "$W" "$OUT" || verdict=$?
(cd "$W" && tar czf "$OUT/bundle.tar.gz" logs results notes stages.tsv config.json \
   $(ls probe.json eager-*.json 2>/dev/null)) || say "bundle.tar.gz could not be written"
say "done in $(( $(date +%s) - START )) s: $OUT/summary.md, summary.json, bundle.tar.gz"
echo
cat "$OUT/summary.md"
exit "$verdict"
