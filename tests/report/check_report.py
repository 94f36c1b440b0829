#!/usr/bin/python3
"""Golden-file test of scripts/report.py: the report of the fixed result files in fixtures/runs (medians,
min–max, speedups with unreached targets, a diverged seed, a grid point with a missing seed, a translation
experiment, results without a validation split, a tuned experiment with studies, drawn trials, validation
metrics, steps and phase times; claims with verdicts; scores across experiments whose values docs/protocol.md
derives by hand; an experiment with fidelity probes; one claim of every measure kind, the test claims judged
from fixtures/test-outcomes/ctest-junit.xml) must equal golden/ byte for byte, verdicts.json included; plots
must be written.

    check_report.py            compare (exit 1 with a diff on a mismatch)
    check_report.py --update   rewrite golden/ after a deliberate change (review the diff)
Then the timing flag: with one run's timing marked suspect (as the runner marks a contended
measurement), the table gains a "timing suspect" column that names that row only.
"""
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "..", "scripts", "report.py")
GOLDEN = os.path.join(HERE, "golden")
COMPARED = ["report.md", "report.html", "verdicts.json", "tables/fixture-vision@cpu.md", "tables/fixture-vision@cpu.tex",
            "tables/fixture-translation.md", "tables/fixture-translation.tex", "tables/fixture-tuned@cpu.md",
            "tables/fixture-tuned@cpu.tex", "tables/fixture-fidelity@probe.md", "tables/fixture-fidelity@probe.tex"]
STEMS = ["fixture-vision@cpu", "fixture-translation", "fixture-tuned@cpu", "fixture-fidelity@probe"]
# Per experiment its validation and train-loss figures (a fidelity figure where probes ran), the profiles
# per scale; each as PNG (Markdown) and SVG (HTML).
PLOTS = [f"plots/{name}.{kind}" for stem in STEMS for name in (stem, stem + "-train-loss")
         for kind in ("png", "svg")] + \
        [f"plots/{name}.{kind}" for name in ("fixture-fidelity@probe-fidelity", "profiles@cpu", "profiles@as-written",
                                              "profiles@probe") for kind in ("png", "svg")]


def main():
    with tempfile.TemporaryDirectory() as out:
        shutil.copy(os.path.join(HERE, "fixtures", "discussion.md"), out)
        subprocess.run([sys.executable, REPORT, os.path.join(HERE, "fixtures", "runs"), "--out", out,
                        "--claims", os.path.join(HERE, "fixtures", "claims.json"), "--test-results",
                        os.path.join(HERE, "fixtures", "test-outcomes", "ctest-junit.xml")], check=True)
        if "--update" in sys.argv:
            for name in COMPARED:
                os.makedirs(os.path.dirname(os.path.join(GOLDEN, name)), exist_ok=True)
                shutil.copy(os.path.join(out, name), os.path.join(GOLDEN, name))
            print(f"check_report: rewrote {GOLDEN}")
            return 0
        failures = 0
        for name in COMPARED:
            with open(os.path.join(GOLDEN, name)) as file:
                expected = file.read()
            with open(os.path.join(out, name)) as file:
                actual = file.read()
            if actual != expected:
                failures += 1
                sys.stdout.writelines(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                           "golden/" + name, "generated/" + name))
        for name in PLOTS:
            path = os.path.join(out, name)
            if not os.path.exists(path) or os.path.getsize(path) < 1000:
                failures += 1
                print(f"check_report: {name} missing or empty")
        print(f"check_report: {len(COMPARED)} files compared, {len(PLOTS)} plots checked, {failures} failures")
        return 1 if failures or not timing_flag_reported() else 0


def timing_flag_reported():
    """True when a suspect run's row, and only it, is marked in a new column of its table."""
    with tempfile.TemporaryDirectory() as out:
        runs = os.path.join(out, "runs")
        shutil.copytree(os.path.join(HERE, "fixtures", "runs", "fixture-vision"), os.path.join(runs, "fixture-vision"))
        flagged = os.path.join(runs, "fixture-vision", "kfac-bbbb0002-s1.json")
        with open(flagged) as file:
            result = json.load(file)
        result["timing_suspect"] = True
        with open(flagged, "w") as file:
            json.dump(result, file)
        subprocess.run([sys.executable, REPORT, runs, "--out", out, "--no-plots"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "tables", "fixture-vision@cpu.md")) as file:
            lines = file.read().splitlines()
    header = next(line for line in lines if line.startswith("| optimizer"))
    marked = [line.split(" | ")[0] for line in lines if line.endswith("| 1/3 suspect |")]
    ok = header.endswith("| timing suspect (runs) |") and len(marked) == 1 and "kfac" in marked[0]
    print(f"check_report: timing flag {'shown on the suspect row only' if ok else 'NOT shown as expected'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
