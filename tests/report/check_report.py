#!/usr/bin/python3
"""Golden-file test of scripts/report.py: the report of the fixed result files in fixtures/runs (medians,
min–max, speedups with unreached targets, a diverged seed, a grid point with a missing seed, a translation
experiment, results without a validation split, a tuned experiment with studies, drawn trials, validation
metrics, steps and phase times; claims with verdicts; scores across experiments whose values docs/protocol.md
derives by hand; an experiment with fidelity probes) must equal golden/ byte for byte; plots must be written.

    check_report.py            compare (exit 1 with a diff on a mismatch)
    check_report.py --update   rewrite golden/ after a deliberate change (review the diff)
"""
import difflib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "..", "scripts", "report.py")
GOLDEN = os.path.join(HERE, "golden")
COMPARED = ["report.md", "report.html", "tables/fixture-vision@cpu.md", "tables/fixture-vision@cpu.tex",
            "tables/fixture-translation.md", "tables/fixture-translation.tex", "tables/fixture-tuned@cpu.md",
            "tables/fixture-tuned@cpu.tex", "tables/fixture-fidelity@probe.md", "tables/fixture-fidelity@probe.tex"]
PLOTS = ["plots/fixture-vision@cpu.png", "plots/fixture-translation.png", "plots/fixture-tuned@cpu.png",
         "plots/fixture-fidelity@probe.png", "plots/profiles@cpu.png", "plots/profiles@as-written.png",
         "plots/profiles@probe.png"]


def main():
    with tempfile.TemporaryDirectory() as out:
        shutil.copy(os.path.join(HERE, "fixtures", "discussion.md"), out)
        subprocess.run([sys.executable, REPORT, os.path.join(HERE, "fixtures", "runs"), "--out", out,
                        "--claims", os.path.join(HERE, "fixtures", "claims.json")], check=True)
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
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
