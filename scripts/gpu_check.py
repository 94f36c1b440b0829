#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh (standard library only: it runs under any python3).

    gpu_check.py trim-cifar SRC DEST --train-per-file N --test N   copy the first records of a CIFAR-10 data root
    gpu_check.py synthetic-cifar DEST --train-per-file N --test N  write random CIFAR-10 files (labels 0..9 in turn)
    gpu_check.py sizes CARRIED [--limit-mib N]                     working tree + carried folder against the limit
    gpu_check.py probe OUT.json                                    the machine, its GPU and its tools
    gpu_check.py summary WORK OUT_DIR                              summary.md and summary.json of a check
"""
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
ACCEPTANCE_OPTIMIZERS = ["sgd", "kfac", "tengrad", "fngd"]
PHASES = ["data", "forward", "backward", "step", "curvature"]
ANCHOR_GOAL = 1.1


# ---- data ---------------------------------------------------------------------------------------

def trim_cifar(src, dest, train_per_file, test):
    source = os.path.join(src, "cifar-10-batches-bin")
    target = os.path.join(dest, "cifar-10-batches-bin")
    os.makedirs(target, exist_ok=True)
    for name, records in [(n, train_per_file) for n in TRAIN_FILES] + [("test_batch.bin", test)]:
        with open(os.path.join(source, name), "rb") as file:
            data = file.read(records * RECORD)
        if len(data) != records * RECORD:
            raise SystemExit(f"trim-cifar: {name} has fewer than {records} records")
        with open(os.path.join(target, name), "wb") as file:
            file.write(data)
    meta = os.path.join(source, "batches.meta.txt")
    if os.path.exists(meta):
        shutil.copy(meta, target)
    print(f"trim-cifar: {5 * train_per_file} training and {test} test images from {src} in {dest}")


def synthetic_cifar(dest, train_per_file, test):
    target = os.path.join(dest, "cifar-10-batches-bin")
    os.makedirs(target, exist_ok=True)
    for name, records in [(n, train_per_file) for n in TRAIN_FILES] + [("test_batch.bin", test)]:
        noise = os.urandom(records * (RECORD - 1))
        with open(os.path.join(target, name), "wb") as file:
            for i in range(records):
                file.write(bytes([i % 10]))
                file.write(noise[i * (RECORD - 1):(i + 1) * (RECORD - 1)])
    with open(os.path.join(dest, "SYNTHETIC"), "w") as file:
        file.write("random pixels, labels 0..9 in turn: timings are real, accuracies are not\n")
    print(f"synthetic-cifar: {5 * train_per_file} training and {test} test images of noise in {dest}")


def sizes(carried, limit_mib):
    """The working tree a device call sends (tracked and untracked-not-ignored files) plus the carried
    folder, against limit_mib; 1 when over."""
    def folder_bytes(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
                   if not os.path.islink(os.path.join(d, f)))
    carried_bytes = folder_bytes(carried) if os.path.isdir(carried) else 0
    data_bytes = folder_bytes(os.path.join(carried, "data")) if os.path.isdir(os.path.join(carried, "data")) else 0
    tree_bytes = None
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True)
    if listing.returncode == 0:
        tree_bytes = sum(os.path.getsize(path) for path in set(listing.stdout.split("\0"))
                         if path and os.path.isfile(path) and not os.path.islink(path))
    mib = 2 ** 20
    total = carried_bytes + (tree_bytes or 0)
    print(f"sizes: carried {carried_bytes / mib:.1f} MiB ({data_bytes / mib:.1f} MiB of it data) in {carried}; "
          f"working tree {'unknown (not a git checkout)' if tree_bytes is None else f'{tree_bytes / mib:.1f} MiB'}; "
          f"together {total / mib:.1f} MiB of the {limit_mib} MiB this check allows (a device call takes 64 MiB)")
    if total > limit_mib * mib:
        print("sizes: TOO LARGE: carry less (fewer data records) or ignore large untracked files", file=sys.stderr)
        return 1
    return 0


# ---- probe --------------------------------------------------------------------------------------

def command(*args, timeout=30):
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        return (result.stdout or result.stderr).strip() if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def first_line(text, pattern=None):
    if not text:
        return None
    for line in text.splitlines():
        if pattern is None or re.search(pattern, line):
            return line.strip()
    return None


def probe(out):
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "cores": os.cpu_count(), "python": sys.version.split()[0], "python_path": sys.executable}
    try:
        with open("/proc/meminfo") as file:
            info["memory_gib"] = round(int(file.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    info["cpu"] = first_line(open("/proc/cpuinfo").read(), r"^model name") if os.path.exists("/proc/cpuinfo") else None
    if info["cpu"]:
        info["cpu"] = info["cpu"].split(":", 1)[1].strip()
    info["gpu"] = command("nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                          "--format=csv,noheader")
    info["nvcc"] = first_line(command("nvcc", "--version"), r"release")
    info["cmake"] = first_line(command("cmake", "--version"))
    info["ninja"] = command("ninja", "--version")
    info["cxx"] = first_line(command("c++", "--version"))
    torch = command(sys.executable, "-c",
                    "import json, torch; print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, "
                    "'cudnn': torch.backends.cudnn.version(), 'devices': torch.cuda.device_count(), "
                    "'cxx11_abi': bool(torch._C._GLIBCXX_USE_CXX11_ABI), "
                    "'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))", timeout=120)
    try:
        info["torch"] = json.loads(torch.splitlines()[-1]) if torch else None
    except ValueError:
        info["torch"] = None
    with open(out, "w") as file:
        json.dump(info, file, indent=2)
        file.write("\n")
    for key, value in info.items():
        print(f"probe: {key}: {value}")


# ---- summary ------------------------------------------------------------------------------------

def read_json(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def results_in(folder):
    """Result documents under folder (any experiment), by variant or else optimizer name; warm-up runs
    (variant ending in -warmup) left out."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*", "*.json"))):
        document = read_json(path)
        if isinstance(document, dict) and "optimizer" in document:
            name = document.get("variant") or document["optimizer"]
            if not name.endswith("-warmup"):
                found[name] = document
    return found


def ms_per_step(result, epoch_index=0):
    if not result or result.get("status") != "completed" or len(result.get("epochs", [])) <= epoch_index:
        return None
    epoch = result["epochs"][epoch_index]
    previous = result["epochs"][epoch_index - 1]["cumulative_steps"] if epoch_index > 0 else 0
    steps = epoch["cumulative_steps"] - previous
    return 1e3 * epoch["train_time_s"] / steps if steps else None


def fmt(value, digits=2, suffix=""):
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def read_stages(work):
    stages = []
    path = os.path.join(work, "stages.tsv")
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                name, status, seconds, limit, note = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
                stages.append({"stage": name, "status": status, "seconds": float(seconds or 0),
                               "limit": float(limit or 0), "note": note})
    return stages


def first_errors(log, count=6):
    """The first lines of a log that look like errors (compiler, CMake, test failures)."""
    if not os.path.exists(log):
        return []
    pattern = re.compile(r"(error|Error|ERROR|FAILED|undefined reference|Failed|\*\*\*Failed|Timeout|"
                         r"Traceback|terminate called|what\(\))")
    lines = []
    with open(log, errors="replace") as file:
        for line in file:
            if pattern.search(line):
                lines.append(line.rstrip()[:300])
                if len(lines) == count:
                    break
    return lines


def ctest_counts(log):
    """passed, failed, skipped, total and the failed tests' names from a ctest log."""
    counts = {"passed": None, "failed": None, "skipped": 0, "total": None, "failed_tests": [], "listed": None}
    if not os.path.exists(log):
        return counts
    text = open(log, errors="replace").read()
    match = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    counts["skipped"] = len(re.findall(r"\*\*\*Skipped", text))
    if match:  # ctest counts a skipped test as passed
        counts["failed"], counts["total"] = int(match.group(2)), int(match.group(3))
        counts["passed"] = counts["total"] - counts["failed"] - counts["skipped"]
    counts["failed_tests"] = re.findall(r"^\s*\d+ - (\S+) \((?:Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)",
                                        text, re.M)
    listed = re.search(r"Total Tests: (\d+)", text)
    counts["listed"] = int(listed.group(1)) if listed else None
    return counts


def summary(work, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    config = read_json(os.path.join(work, "config.json")) or {}
    probe_info = read_json(os.path.join(work, "probe.json")) or {}
    stages = read_stages(work)
    dry_run = config.get("mode") == "dry-run"
    problems = []

    # Acceptance: 4 optimizers x {phase timing, --no-phase-timing}.
    timed = results_in(os.path.join(work, "results", "phase-timing"))
    untimed = results_in(os.path.join(work, "results", "no-phase-timing"))
    rows = []
    sgd_untimed = ms_per_step(untimed.get("sgd"))
    for name in ACCEPTANCE_OPTIMIZERS:
        a, b = timed.get(name), untimed.get(name)
        row = {"optimizer": name, "status": [a.get("status") if a else "missing", b.get("status") if b else "missing"],
               "ms_per_step_phase_timing": ms_per_step(a), "ms_per_step_no_phase_timing": ms_per_step(b)}
        for result in (a, b):
            if result and result.get("status") != "completed":
                problems.append(f"acceptance: {name} {result.get('status')}: {str(result.get('error'))[:300]}")
        if row["ms_per_step_phase_timing"] and row["ms_per_step_no_phase_timing"]:
            row["phase_timing_cost"] = row["ms_per_step_phase_timing"] / row["ms_per_step_no_phase_timing"]
        if row["ms_per_step_no_phase_timing"] and sgd_untimed:
            row["vs_sgd"] = row["ms_per_step_no_phase_timing"] / sgd_untimed
        source = b or a
        if source:
            row["host_syncs_per_step"] = (source.get("host_syncs") or {}).get("per_step")
            epoch = source["epochs"][-1] if source.get("epochs") else {}
            row["test_acc"], row["train_loss"] = epoch.get("test_acc"), epoch.get("train_loss")
            row["steps"] = epoch.get("cumulative_steps")
            meta = source.get("meta", {})
            row["parameters"] = meta.get("model_parameters")
            row["gpu"] = meta.get("gpu")
            row["device"] = meta.get("device")
        if a and a.get("phase_times_s") and a.get("epochs"):
            steps = a["epochs"][-1]["cumulative_steps"]
            row["phase_ms_per_step"] = {p: 1e3 * a["phase_times_s"].get(p, 0) / steps for p in PHASES}
        rows.append(row)

    # Anchor: ngdbench SGD (epoch 2, --no-phase-timing) against PyTorch eager, interleaved repetitions.
    anchor = {"ngdbench_ms": [], "eager_ms": {}, "parameters": {}, "goal": ANCHOR_GOAL}
    for folder in sorted(glob.glob(os.path.join(work, "results", "anchor-*"))):
        result = results_in(folder).get("sgd")
        if result and result.get("status") != "completed":
            problems.append(f"anchor: ngdbench sgd {result.get('status')}: {str(result.get('error'))[:300]}")
        value = ms_per_step(result, -1) if result and len(result.get("epochs", [])) > 1 else ms_per_step(result)
        if value is not None:
            anchor["ngdbench_ms"].append(value)
            anchor["parameters"]["ngdbench"] = result.get("meta", {}).get("model_parameters")
    eager_skipped = None
    for path in sorted(glob.glob(os.path.join(work, "eager-*.json"))):
        document = read_json(path)
        if not document:
            problems.append(f"anchor: {os.path.basename(path)} is not a JSON document (see logs/anchor.log)")
            continue
        if "skipped" in document:
            eager_skipped = document["skipped"]
            continue
        anchor.setdefault("eager", {k: document.get(k) for k in ("torch", "cuda", "cudnn", "gpu", "tf32", "threads")})
        for run in document.get("runs", []):
            epochs = run.get("epochs", [])
            if epochs:
                anchor["eager_ms"].setdefault(run["variant"], []).append(epochs[-1]["ms_per_step"])
            anchor["parameters"]["eager"] = run.get("parameters")
    if anchor["ngdbench_ms"] and anchor["eager_ms"].get("default"):
        anchor["ratio"] = statistics.median(anchor["ngdbench_ms"]) / statistics.median(anchor["eager_ms"]["default"])
        anchor["met"] = anchor["ratio"] <= ANCHOR_GOAL
    if anchor["ngdbench_ms"] and anchor["eager_ms"].get("off"):
        anchor["ratio_foreach_off"] = (statistics.median(anchor["ngdbench_ms"]) /
                                       statistics.median(anchor["eager_ms"]["off"]))
    if anchor["parameters"].get("ngdbench") and anchor["parameters"].get("eager") and \
            anchor["parameters"]["ngdbench"] != anchor["parameters"]["eager"]:
        problems.append(f"anchor: the models differ: ngdbench {anchor['parameters']['ngdbench']} parameters, "
                        f"eager {anchor['parameters']['eager']}")

    tests = ctest_counts(os.path.join(work, "logs", "cuda-tests.log"))
    for stage in stages:
        if stage["status"] not in ("ok", "skipped"):
            lines = first_errors(os.path.join(work, "logs", stage["stage"] + ".log"))
            problems.append(f"stage {stage['stage']}: {stage['status']}" + (": " + " | ".join(lines) if lines else ""))
        elif stage["status"] == "skipped":
            problems.append(f"stage {stage['stage']}: skipped ({stage['note']})")
    incomplete = [r["optimizer"] for r in rows if r["status"] != ["completed", "completed"]]
    if incomplete:
        problems.append(f"acceptance: no completed run with and without phase timing for {', '.join(incomplete)}")
    if not anchor["ngdbench_ms"]:
        problems.append("anchor: no ngdbench SGD time")
    passed = bool(stages) and all(s["status"] == "ok" for s in stages) and not incomplete and bool(anchor["ngdbench_ms"])
    document = {"verdict": "PASS" if passed else "FAIL", "mode": config.get("mode"), "config": config,
                "probe": probe_info, "stages": stages, "acceptance": rows, "anchor": anchor,
                "eager_skipped": eager_skipped, "cuda_tests": tests, "problems": problems}
    with open(os.path.join(out_dir, "summary.json"), "w") as file:
        json.dump(document, file, indent=2)
        file.write("\n")

    # summary.md: one page.
    torch = probe_info.get("torch") or {}
    lines = [f"# ngdbench GPU check: {document['verdict']}" + (" (dry run on the CPU)" if dry_run else ""), ""]
    lines.append(f"{probe_info.get('date', '?')}, commit {config.get('commit', '?')}, device `{config.get('device')}`, "
                 f"scale `{config.get('scale')}`, data: {config.get('data', '?')}.")
    lines.append(f"GPU: {probe_info.get('gpu') or 'none'}; torch {torch.get('version', '–')} (CUDA "
                 f"{torch.get('cuda', '–')}, cuDNN {torch.get('cudnn', '–')}); nvcc: {probe_info.get('nvcc') or '–'}; "
                 f"{probe_info.get('cmake') or 'no cmake'}; ninja {probe_info.get('ninja') or '–'}; "
                 f"{probe_info.get('cxx') or 'no c++'}; {probe_info.get('cores')} cores, "
                 f"{probe_info.get('memory_gib', '?')} GiB.")
    if config.get("build"):
        lines.append(f"Build: {config['build']}.")
    total = sum(s["seconds"] for s in stages)
    lines += ["", f"## Stages ({total:.0f} s of the {config.get('budget', '?')} s budget)", "",
              "| stage | status | seconds | limit | note |", "|---|---|---|---|---|"]
    for s in stages:
        lines.append(f"| {s['stage']} | {s['status']} | {s['seconds']:.1f} | {s['limit']:.0f} | {s['note']} |")
    steps = next((r.get("steps") for r in rows if r.get("steps")), None)
    lines += ["", f"## Acceptance: ResNet-18 / CIFAR-10, batch 128, one epoch ({steps or '?'} steps)", "",
              "| optimizer | status | ms/step | ms/step `--no-phase-timing` | phase-timing cost | × SGD | "
              "host syncs/step | test acc | data / fwd / bwd / step / curv ms/step |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        phases = r.get("phase_ms_per_step")
        phase_text = " / ".join(fmt(phases[p], 1) for p in PHASES) if phases else "–"
        status = r["status"][0] if r["status"][0] == r["status"][1] else "/".join(r["status"])
        lines.append(f"| {r['optimizer']} | {status} | {fmt(r['ms_per_step_phase_timing'])} | "
                     f"{fmt(r['ms_per_step_no_phase_timing'])} | {fmt(r.get('phase_timing_cost'), 2, '×')} | "
                     f"{fmt(r.get('vs_sgd'), 2, '×')} | {fmt(r.get('host_syncs_per_step'), 3)} | "
                     f"{fmt(r.get('test_acc'), 3)} | {phase_text} |")
    lines.append("")
    lines.append("Each ms/step is one epoch's train_time_s / steps, first step included (a warm-up SGD epoch runs "
                 "first in each process and is left out); × SGD compares the `--no-phase-timing` column.")
    lines += ["", "## Anchor: ngdbench SGD vs PyTorch eager (steady-state epoch, `--no-phase-timing`)", ""]
    if eager_skipped and not anchor["eager_ms"]:
        lines.append(f"PyTorch eager skipped: {eager_skipped}.")
    lines.append(f"ngdbench: {', '.join(fmt(v) for v in anchor['ngdbench_ms']) or '–'} ms/step; "
                 f"eager (foreach, PyTorch's default): {', '.join(fmt(v) for v in anchor['eager_ms'].get('default', [])) or '–'}; "
                 f"eager (foreach off, as LibTorch's SGD): {', '.join(fmt(v) for v in anchor['eager_ms'].get('off', [])) or '–'} "
                 f"(one value per interleaved repetition).")
    if "ratio" in anchor:
        lines.append(f"**ngdbench / eager = {anchor['ratio']:.2f}** (goal ≤ {ANCHOR_GOAL}: "
                     f"{'met' if anchor['met'] else 'MISSED'}); against eager without foreach: "
                     f"{fmt(anchor.get('ratio_foreach_off'))}. Parameters: ngdbench {anchor['parameters'].get('ngdbench')}, "
                     f"eager {anchor['parameters'].get('eager')}.")
    lines += ["", "## CUDA tests (`ctest -L cuda`)", ""]
    if tests["total"] is not None:
        lines.append(f"{tests['passed']} passed, {tests['failed']} failed of {tests['total']} "
                     f"({tests['skipped']} skipped)" + (f"; failed: {', '.join(tests['failed_tests'])}"
                                                        if tests["failed_tests"] else "") + ".")
    elif tests["listed"] is not None:
        lines.append(f"{tests['listed']} tests labelled `cuda` listed (not run: {'dry run' if dry_run else 'see stages'}).")
    else:
        lines.append("not run (see stages).")
    lines += ["", "## Problems", ""] + ([f"- {p}" for p in problems] or ["none"])
    lines += ["", "Files: summary.json (every number above), bundle.tar.gz (logs/, results/, eager-*.json, "
              "probe.json). docs/gpu.md says what to expect and what to do on a failure."]
    with open(os.path.join(out_dir, "summary.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    return 0 if passed else 1


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    verb = args[0]

    def option(name, default=None):
        return int(args[args.index(name) + 1]) if name in args else default

    if verb == "trim-cifar":
        trim_cifar(args[1], args[2], option("--train-per-file", 1000), option("--test", 1000))
    elif verb == "synthetic-cifar":
        synthetic_cifar(args[1], option("--train-per-file", 1000), option("--test", 1000))
    elif verb == "sizes":
        return sizes(args[1], option("--limit-mib", 60))
    elif verb == "probe":
        probe(args[1])
    elif verb == "summary":
        return summary(args[1], args[2])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
