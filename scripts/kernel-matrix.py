#!/usr/bin/env python3
"""Runs the tests under other CPUs' kernels: OpenBLAS kernels × ATen CPU capabilities × threads.

Another CPU picks other OpenBLAS kernels and other ATen vectorised kernels, so float32 results differ in
their last bits and a chaotic training run ends anywhere (docs/testing.md). This runs the numerical
tests (and the tests that still bound a training outcome) under each combination, then checks every
outcome's margin: the worst value over the matrix must clear its bound by at least 3× the spread the
matrix showed. Exit status 1 on a failed test or a margin below that rule.

Usage: kernel-matrix.py [--build DIR] [--combos K/C,...] [--threads 1,2] [--jobs N]

A combination K/C sets OPENBLAS_CORETYPE=K and ATEN_CPU_CAPABILITY=C; "auto" leaves the variable as the
environment has it (the machine's own choice). Default: every kernel of KERNELS × every capability this
CPU runs (avx512 only where /proc/cpuinfo has it).
"""
import argparse
import concurrent.futures
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

# Prescott: OpenBLAS's fallback on CPUs its release does not know (0.3.21 on Intel model 207).
KERNELS = ["auto", "Haswell", "Zen", "Sandybridge", "Nehalem", "Prescott"]
# The unit tests (ngdbench_tests) that bound a training outcome; the numerical binary runs whole.
UNIT_OUTCOME_TESTS = ":".join([
    "Runner.LearnsAndRecordsEpochsStepsAndTimeToTarget",
    "ValidationProtocol.RunsRecordValidationAndTestAndReachValidationTargets",
    "Optimizers/ResNet20OnCifarMini.*",
    "TranslationRun.CompletesWithValidationMetricsBleuAndFinalTestScore",
    "TranslationRun.FinalTestBleuIsTheBestValidationCheckpointsScore",
])
MARGIN_FACTOR = 3.0


def capabilities():
    flags = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    found = ["default"]
    if " avx2" in flags:
        found.append("avx2")
    if all(f" {flag}" in flags for flag in ("avx512f", "avx512bw", "avx512vl", "avx512dq")):
        found.append("avx512")
    return found


def environment(kernel, capability, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if kernel != "auto":
        env["OPENBLAS_CORETYPE"] = kernel
    if capability != "auto":
        env["ATEN_CPU_CAPABILITY"] = capability
    return env


def run_binary(binary, gtest_filter, env, folder, name):
    """Runs one gtest binary; returns (failed test names, {test: {outcome: (value, bound)}}, seconds)."""
    report = pathlib.Path(folder) / f"{name}.xml"
    command = [str(binary), "--gtest_brief=1", f"--gtest_output=xml:{report}"]
    if gtest_filter:
        command.append(f"--gtest_filter={gtest_filter}")
    start = time.monotonic()
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - start
    if not report.exists():
        return [f"{binary.name} crashed (exit {completed.returncode}):\n{completed.stdout[-2000:]}"], {}, seconds
    failed, outcomes = [], {}
    for case in ElementTree.parse(report).iter("testcase"):
        test = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None:
            failed.append(test)
        properties = dict(case.attrib)
        for prop in case.iter("property"):
            properties[prop.get("name")] = prop.get("value")
        for key, value in properties.items():
            if key.startswith("outcome.") and not key.endswith(".bound"):
                outcomes.setdefault(test, {})[key[len("outcome."):]] = (float(value), properties[key + ".bound"])
    if completed.returncode != 0 and not failed:
        failed.append(f"{binary.name} exited {completed.returncode}:\n{completed.stdout[-2000:]}")
    return failed, outcomes, seconds


def run_combination(build, combo, threads, folder):
    kernel, capability = combo
    env = environment(kernel, capability, threads)
    name = f"{kernel}-{capability}-{threads}"
    failed, outcomes, seconds = [], {}, 0.0
    for binary, gtest_filter in ((build / "tests" / "ngdbench_numerical_tests", None),
                                 (build / "tests" / "ngdbench_tests", UNIT_OUTCOME_TESTS)):
        more_failed, more_outcomes, more_seconds = run_binary(binary, gtest_filter, env, folder, f"{name}-{binary.name}")
        failed += more_failed
        outcomes.update(more_outcomes)
        seconds += more_seconds
    return (kernel, capability, threads), failed, outcomes, seconds


def margins(results):
    """Per outcome: bound, values by combination, worst margin and the matrix's spread."""
    table = {}
    for combo, _, outcomes, _ in results:
        for test, values in outcomes.items():
            for name, (value, bound) in values.items():
                entry = table.setdefault((test, name), {"bound": bound, "values": {}})
                entry["values"][combo] = value
    rows = []
    for (test, name), entry in sorted(table.items()):
        relation, bound = entry["bound"].split()
        bound = float(bound)
        values = list(entry["values"].values())
        low, high = min(values), max(values)
        margin = (low - bound) if relation == ">=" else (bound - high)
        spread = high - low
        ok = margin > 0 and margin >= MARGIN_FACTOR * spread
        rows.append({"test": test, "outcome": name, "bound": entry["bound"], "min": low, "max": high,
                     "spread": spread, "margin": margin, "ok": ok, "runs": len(values)})
    return rows


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--combos", help="K/C,... (default: KERNELS × this CPU's capabilities)")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts (OMP_NUM_THREADS)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv[1:])
    build = pathlib.Path(args.build).resolve()
    if args.combos:
        combos = [tuple(item.split("/")) for item in args.combos.split(",")]
    else:
        combos = [(kernel, capability) for kernel in KERNELS for capability in capabilities()]
    threads = [int(t) for t in args.threads.split(",")]
    jobs = [(combo, t) for combo in combos for t in threads]
    print(f"kernel-matrix: {len(jobs)} combination(s), {args.jobs} at a time; machine: "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(autodetected)')}, "
          f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(best available)')}", flush=True)
    with tempfile.TemporaryDirectory() as folder, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_combination, build, combo, t, folder) for combo, t in jobs]
        results = []
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            (kernel, capability, t), failed, _, seconds = result
            print(f"  OPENBLAS_CORETYPE={kernel:<11} ATEN_CPU_CAPABILITY={capability:<8} threads {t}: "
                  f"{'FAILED ' + ', '.join(failed) if failed else 'passed'} ({seconds:.0f} s)", flush=True)
            results.append(result)
    rows = margins(results)
    print(f"\noutcome bounds (margin = worst value's distance to the bound; rule: margin >= {MARGIN_FACTOR:g} × spread)")
    print(f"{'test / outcome':<84} {'bound':>9} {'min':>8} {'max':>8} {'spread':>8} {'margin':>8}  verdict")
    for row in rows:
        print(f"{row['test'] + ' / ' + row['outcome']:<84} {row['bound']:>9} {row['min']:>8.4f} {row['max']:>8.4f} "
              f"{row['spread']:>8.4f} {row['margin']:>8.4f}  {'ok' if row['ok'] else 'TOO THIN'} ({row['runs']} runs)")
    failed_any = any(failed for _, failed, _, _ in results)
    thin = [row for row in rows if not row["ok"]]
    print(f"kernel-matrix: {'tests FAILED; ' if failed_any else ''}"
          f"{len(thin)} outcome bound(s) too thin" if failed_any or thin else "kernel-matrix: passed")
    return 1 if failed_any or thin else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
