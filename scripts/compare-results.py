#!/usr/bin/env python3
"""Whether two folders of result files hold the same numbers, bit for bit, clocks and machine data aside.

    scripts/compare-results.py REFERENCE_DIR OTHER_DIR [--count N] [--resumed]

Used by the preemption checks (tests/slurm/requeue_test.sh, scripts/kill-resume-check.sh): a run that
was stopped and resumed from checkpoints must end with the numbers of one never stopped. Ignored: wall
and CPU clocks, load averages, timing flags, step-time distributions, measured memory, machine
metadata, the optimizer's phase report and a model's inference time. Also checks that no checkpoint or temporary
file is left in OTHER_DIR. --count N: both folders hold N results; --resumed: at least one result of
OTHER_DIR says it resumed. Exit status 1 with a line per difference."""
import argparse
import glob
import json
import os
import sys

EPOCH_CLOCKS = ("train_time_s", "cumulative_train_time_s", "cpu_time_s", "load_average", "timing_suspect",
                "step_time_s")
RUN_CLOCKS = ("meta", "phase_times_s", "time_to_target_s", "timing_suspect", "optimizer_report", "memory",
              "step_time_s")


def numbers(path):
    with open(path) as f:
        result = json.load(f)
    for epoch in result["epochs"]:
        for key in EPOCH_CLOCKS:
            epoch.pop(key, None)
    for key in RUN_CLOCKS:
        result.pop(key, None)
    result.get("host_syncs", {}).pop("per_step", None)
    result.get("model_cost", {}).pop("inference_s_per_eval_batch", None)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("other")
    parser.add_argument("--count", type=int)
    parser.add_argument("--resumed", action="store_true")
    args = parser.parse_args()
    reference = {os.path.basename(p): p for p in glob.glob(os.path.join(args.reference, "*.json"))}
    other = {os.path.basename(p): p for p in glob.glob(os.path.join(args.other, "*.json"))}
    failures = []
    if args.count is not None and len(reference) != args.count:
        failures.append(f"{args.reference} holds {len(reference)} results, not {args.count}")
    if sorted(reference) != sorted(other):
        failures.append(f"missing in {args.other}: {sorted(set(reference) - set(other))}; "
                        f"extra: {sorted(set(other) - set(reference))}")
    for name in sorted(set(reference) & set(other)):
        if numbers(reference[name]) != numbers(other[name]):
            failures.append(f"{name}: the numbers differ from {reference[name]}'s")
    left = glob.glob(os.path.join(args.other, "*.ckpt")) + glob.glob(os.path.join(args.other, "*.tmp.*"))
    if left:
        failures.append(f"left behind: {left}")
    resumed = []
    for name, path in sorted(other.items()):
        with open(path) as f:
            if json.load(f)["meta"].get("resumes", 0) > 0:
                resumed.append(name)
    if args.resumed and not resumed:
        failures.append(f"no result in {args.other} says it resumed (nothing was stopped half-way)")
    for failure in failures:
        print("FAIL:", failure)
    if failures:
        return 1
    print(f"ok: {len(other)} results equal {args.reference}'s bit for bit; resumed: {', '.join(resumed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
