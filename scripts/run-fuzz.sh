#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from the seed corpus in tests/fuzz/corpus/ and reports
# executions and findings (crash-*, timeout-*, oom-* files). Exit status 1 when anything was found.
set -uo pipefail
build_dir=$1
seconds=$2
findings=0
for target in spec readers; do
  corpus="$build_dir/corpus-$target"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/$target/* "$corpus"/ 2>/dev/null || true
  log="$build_dir/fuzz-$target.log"
  ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0 \
    "$build_dir/tests/ngdbench_fuzz_$target" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$build_dir/finding-$target-" >"$log" 2>&1
  status=$?
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
  found=$(ls "$build_dir"/finding-$target-* 2>/dev/null | wc -l)
  echo "fuzz $target: ${runs:-no summary} in ${seconds}s, exit $status, findings $found (log $log)"
  [ "$status" -eq 0 ] && [ "$found" -eq 0 ] || findings=1
done
exit $findings
