#!/usr/bin/python3
"""scripts/report.py writes only inside --out, whatever names the result files hold: experiment or
scale names that are "..", ".", absolute or hold '/' (or control characters) are skipped with a
warning naming the file, as the C++ side refuses them in specs (harness/spec/spec_input.h,
folder_name_problem); so are result files that are not JSON objects. A name that is allowed but holds
raw HTML ("<img src=x ...>") reaches neither report.html nor report.md as HTML. Exit 1 on a file
written outside --out, a crash, a missing warning, or raw HTML from a name.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "..", "scripts", "report.py")
FIXTURE = os.path.join(HERE, "fixtures", "runs", "fixture-vision", "sgd-aaaa0001-s0.json")


def all_files(root):
    return {os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names}


def main():
    failures = []
    with tempfile.TemporaryDirectory() as work:
        results = os.path.join(work, "deep", "er", "runs")
        out = os.path.join(work, "deep", "er", "out")
        with open(FIXTURE) as file:
            fixture = json.load(file)
        bad_names = {"dots": ("../..", "cpu"), "dot": (".", ""), "absolute": (os.path.join(work, "abs"), ""),
                     "slash": ("a/b", ""), "scale": ("fine", "../../../scale-escape"), "newline": ("x\ny", "")}
        for folder, (experiment, scale) in bad_names.items():
            os.makedirs(os.path.join(results, folder))
            with open(os.path.join(results, folder, "sgd-aaaa0001-s0.json"), "w") as file:
                json.dump(dict(fixture, experiment=experiment, scale=scale), file)
        crafted = "<img src=x onerror=alert(1)>&lt;b&gt;"
        os.makedirs(os.path.join(results, "html"))
        with open(os.path.join(results, "html", "sgd-aaaa0001-s0.json"), "w") as file:
            json.dump(dict(fixture, experiment=crafted), file)
        os.makedirs(os.path.join(results, "shapes"))
        for name, content in {"list.json": "[]", "number.json": "5", "no-experiment.json": '{"schema_version": 2}',
                              "number-experiment.json": '{"schema_version": 2, "experiment": 5}'}.items():
            with open(os.path.join(results, "shapes", name), "w") as file:
                file.write(content)
        before = all_files(work)
        run = subprocess.run([sys.executable, REPORT, results, "--out", out, "--no-plots"], capture_output=True,
                             text=True)
        if run.returncode != 0:
            failures.append(f"report.py exited {run.returncode}: {run.stderr}")
        outside = sorted(path for path in all_files(work) - before if not path.startswith(out + os.sep))
        if outside:
            failures.append(f"written outside --out: {outside}")
        for folder in list(bad_names) + ["shapes"]:
            if os.path.join(results, folder) not in run.stderr:
                failures.append(f"no warning naming {folder}/: {run.stderr}")
        for report in ("report.md", "report.html"):
            path = os.path.join(out, report)
            if not os.path.exists(path):
                failures.append(f"no {report}")
                continue
            with open(path) as file:
                text = file.read()
            if "<img src=x" in text or "&lt;b&gt;" in text.replace("&amp;lt;b&amp;gt;", ""):
                failures.append(f"{report} passes the name's raw HTML through")
            if "img src=x" not in text:
                failures.append(f"{report} does not show the crafted name at all")
    for failure in failures:
        print("check_report_names:", failure)
    print(f"check_report_names: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
