"""Reading result files: RESULTS_DIR/<experiment>/<run-id>.json (schema_version 1), grouped by experiment
and scale; files that cannot be reported, or whose names could not name a file under the output folder,
are skipped with a warning."""
import json
import os
import sys
from collections import OrderedDict


# Bytes an experiment or scale name may have: kMaxNameBytes of harness/spec_input.h.
MAX_NAME_BYTES = 100


def name_problem(name):
    """Why `name` cannot name a file under the output folder, or None: the rule of
    folder_name_problem() in harness/spec_input.cpp, which specs are held to."""
    if not isinstance(name, str):
        return "is not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return 'is "." or ".."'
    if "/" in name:
        return "contains '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        return "contains a control character"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def result_problem(result):
    """Why a parsed result file cannot be reported, or None."""
    if not isinstance(result, dict):
        return "not a JSON object"
    if result.get("schema_version") != 1:
        return f"schema_version {result.get('schema_version')}"
    problem = name_problem(result.get("experiment"))
    if problem:
        return f"experiment name {result.get('experiment')!r:.80} {problem}"
    scale = result.get("scale", "")
    problem = name_problem(scale) if scale != "" else None
    if problem:
        return f"scale name {scale!r:.80} {problem}"
    return None


def load_results(results_dir):
    """{(experiment, scale): [result, ...]} from every readable schema-1 result file."""
    experiments = OrderedDict()
    for experiment in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, experiment)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(folder, name)
            try:
                with open(path) as file:
                    result = json.load(file)
            except (OSError, ValueError) as error:
                print(f"report: skipping {path}: {error}", file=sys.stderr)
                continue
            problem = result_problem(result)
            if problem:
                print(f"report: skipping {path}: {problem}", file=sys.stderr)
                continue
            experiments.setdefault((result["experiment"], result.get("scale", "")), []).append(result)
    return experiments
