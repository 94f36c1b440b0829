"""Reading result files: RESULTS_DIR/<experiment>/<run-id>.json (schema_version 2), grouped by experiment
and scale; files that cannot be reported, or whose names could not name a file under the output folder,
are skipped with a warning. The report and the export (export.py) read through the same functions."""
import json
import os
import sys
from collections import OrderedDict


# Bytes an experiment or scale name may have: kMaxNameBytes of harness/spec/spec_input.h.
MAX_NAME_BYTES = 100

# The result layout this package reads: kResultSchemaVersion of harness/results/results.h.
SCHEMA_VERSION = 2


class ResultProblem(Exception):
    """A file that is not a readable schema-2 result."""


def name_problem(name):
    """Why `name` cannot name a file under the output folder, or None: the rule of
    folder_name_problem() in harness/spec/spec_input.cpp, which specs are held to."""
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
    """Why a parsed result file cannot be reported or exported, or None: a schema-2 object whose names
    can name files, whose epochs are a list of objects, with a run id, optimizer, variant, workload
    ("image" or "translation"), status and study."""
    if not isinstance(result, dict):
        return "not a JSON object"
    if result.get("schema_version") == 1:
        return ("schema_version 1 (before the workload field); migrate the folder once with "
                "`python3 scripts/migrate-results-v2.py RESULTS_DIR`")
    if result.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {result.get('schema_version')!r:.40}, not {SCHEMA_VERSION}"
    problem = name_problem(result.get("experiment"))
    if problem:
        return f"experiment name {result.get('experiment')!r:.80} {problem}"
    scale = result.get("scale", "")
    problem = name_problem(scale) if scale != "" else None
    if problem:
        return f"scale name {scale!r:.80} {problem}"
    epochs = result.get("epochs", [])
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
        return "epochs is not a list of objects"
    for key in ("run_id", "optimizer", "variant", "status"):
        if not isinstance(result.get(key), str):
            return f"{key} is missing or not a string"
    if result.get("workload") not in ("image", "translation"):
        return f"workload {result.get('workload')!r:.40} is neither \"image\" nor \"translation\""
    if not isinstance(result.get("study"), int) or isinstance(result.get("study"), bool):
        return "study is missing or not an integer"
    return None


def result_files(results_dir):
    """(relative path, absolute path) of every RESULTS_DIR/<folder>/*.json, sorted (temporaries
    RUN.json.tmp.* and other names are not results); an unreadable folder is listed as "<folder>/"."""
    files = []
    for folder in sorted(os.listdir(results_dir)):
        directory = os.path.join(results_dir, folder)
        if not os.path.isdir(directory):
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:  # an unreadable folder: reported like an unreadable file
            files.append((folder + "/", directory))
            continue
        for name in names:
            if name.endswith(".json"):
                files.append((folder + "/" + name, os.path.join(directory, name)))
    return files


def load_result(path):
    """The parsed result at `path`; ResultProblem says why it is not one."""
    try:
        if os.path.isdir(path):
            os.listdir(path)  # raises why the folder cannot be listed
            raise ResultProblem("a folder, not a result file")
        with open(path, encoding="utf-8") as file:
            result = json.load(file)
    except (OSError, UnicodeDecodeError) as error:
        raise ResultProblem(f"unreadable: {error}") from None
    except ValueError as error:
        raise ResultProblem(f"not valid JSON: {error}") from None
    except RecursionError:
        raise ResultProblem("not valid JSON: nested too deeply") from None
    problem = result_problem(result)
    if problem:
        raise ResultProblem(problem)
    return result


def read_results(results_dir):
    """([(relative path, result)], [(relative path, problem)]) of every result file, in path order."""
    loaded, skipped = [], []
    for path, absolute in result_files(results_dir):
        try:
            loaded.append((path, load_result(absolute)))
        except ResultProblem as problem:
            skipped.append((path, str(problem)))
    return loaded, skipped


def group(results):
    """{(experiment, scale): [result, ...]} in the order of first appearance."""
    experiments = OrderedDict()
    for result in results:
        experiments.setdefault((result["experiment"], result.get("scale", "")), []).append(result)
    return experiments


def load_results(results_dir, who="report"):
    """{(experiment, scale): [result, ...]} from every readable schema-2 result file; the others are
    named on stderr."""
    loaded, skipped = read_results(results_dir)
    for path, problem in skipped:
        print(f"{who}: skipping {os.path.join(results_dir, path)}: {problem}", file=sys.stderr)
    return group(result for _, result in loaded)


def checkout_file(*parts):
    """A path in the checkout this package is in (scripts/ngdreport/ → the checkout's root)."""
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", *parts))
