"""Exports ngdbench result files as tables: an SQLite database and tidy CSV files.

    scripts/export_results.py RESULTS_DIR [--out DIR] [--claims FILE] [--test-results FILE] [--strict]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 2) through the report's loader (load.py)
and writes into --out (default: the parent of RESULTS_DIR, like the report):
  results.sqlite   tables runs, epochs, run_values, claims, verdicts, skipped, export_info
  csv/<table>.csv  the same tables (all but export_info) as CSV with a header row

runs        one row per result file: identity, settings (well-known ones as columns, all of them in
            settings_json), status, divergence epoch and step, time/steps to target, the last epoch's
            metrics (last_*), and every scalar of the cost blocks (meta, phase_times_s, host_syncs,
            final, optimizer_report and any block added later) flattened into <block>_<key> columns
epochs      one row per run and epoch: every scalar field of the epoch, nested blocks flattened
            (fidelity_cosine_mean)
run_values  one row per JSON value of every result file (run, JSON Pointer, kind, value): nothing in a
            file is lost, whatever new fields the harness writes
claims      the claims file (default results/paper-claims.json, as for the report)
verdicts    every claim's verdict as the report computes it (claims.py): per entry and experiment with
            its value and interval, per entry, and per claim (column scope)
skipped     files that are not readable schema-2 results, and why

Columns beyond the fixed ones come from the files (new numeric fields appear without code changes);
docs/results-database.md has the schema and example queries. Output is deterministic (files sorted by
path, columns sorted) and each file is written to a temporary file and renamed over the target.
"""
import argparse
import csv
import io
import json
import os
import re
import sqlite3
import sys
import tempfile
import time

from . import claims as claims_module
from .load import checkout_file, group, read_results
from .model import Metric
from .render import write
from .testresults import load_test_outcomes

# Version of the export's table layout (PRAGMA user_version and export_info).
FORMAT_VERSION = 2
DATABASE_NAME = "results.sqlite"
CSV_FOLDER = "csv"

# Top-level blocks that configure a run: kept in settings_json (and run_values), not flattened into
# runs columns. Every other top-level object is flattened (meta, phase_times_s, host_syncs, final,
# optimizer_report and whatever cost accounting adds: memory, step times, ...).
SETTINGS_BLOCKS = ("batch_size", "data_order", "dataset", "decoding", "epochs_planned", "eval_batch_size",
                   "fidelity", "grid_values", "hparams", "model", "optimizer", "schedule", "seed", "target",
                   "tuning", "variant")
# Top-level fields neither flattened nor kept as settings: the epochs table, and the identity (what the
# config hash covers; a copy of the settings).
NOT_FLATTENED = ("epochs", "identity")

# runs: the fixed columns (always present, NULL where a file lacks the field) and their SQL types.
RUN_COLUMNS = [
    ("run", "INTEGER PRIMARY KEY"), ("path", "TEXT"), ("experiment", "TEXT"), ("scale", "TEXT"),
    ("report_name", "TEXT"), ("run_id", "TEXT"), ("config_hash", "TEXT"), ("label", "TEXT"),
    ("optimizer", "TEXT"), ("variant", "TEXT"), ("model", "TEXT"), ("dataset", "TEXT"), ("workload", "TEXT"),
    ("seed", "INTEGER"),
    ("study", "INTEGER"), ("trial", "INTEGER"), ("lr", "REAL"), ("batch_size", "INTEGER"),
    ("eval_batch_size", "INTEGER"), ("epochs_planned", "INTEGER"), ("data_order", "TEXT"), ("schedule", "TEXT"),
    ("status", "TEXT"), ("error", "TEXT"), ("diverged_epoch", "INTEGER"), ("diverged_step", "INTEGER"),
    ("target_metric", "TEXT"), ("target_value", "REAL"), ("time_to_target_s", "REAL"),
    ("epochs_to_target", "INTEGER"), ("steps_to_target", "INTEGER"), ("epochs_run", "INTEGER"),
    ("timing_suspect", "INTEGER"), ("code_version", "TEXT"), ("schema_version", "INTEGER"),
    ("settings_json", "TEXT"),
]
# Top-level scalar fields the fixed columns already hold.
RUN_FIELDS_AS_COLUMNS = ("experiment", "scale", "run_id", "config_hash", "label", "workload", "status", "error",
                         "study", "trial", "time_to_target_s", "epochs_to_target", "steps_to_target",
                         "timing_suspect", "schema_version")
# epochs: the fixed columns; every other scalar of an epoch gets a column of its own.
EPOCH_COLUMNS = [
    ("run", "INTEGER"), ("epoch", "INTEGER"), ("train_loss", "REAL"), ("train_acc", "REAL"), ("val_loss", "REAL"),
    ("val_acc", "REAL"), ("val_bleu", "REAL"), ("test_loss", "REAL"), ("test_acc", "REAL"),
    ("train_time_s", "REAL"), ("cumulative_train_time_s", "REAL"), ("cumulative_steps", "INTEGER"),
    ("learning_rate", "REAL"),
]
CLAIM_COLUMNS = [
    ("claim", "INTEGER PRIMARY KEY"), ("claim_id", "TEXT"), ("paper", "TEXT"), ("experiment", "TEXT"),
    ("experiments", "TEXT"), ("description", "TEXT"), ("quote", "TEXT"), ("published", "TEXT"), ("source", "TEXT"),
    ("claim_scale", "TEXT"), ("kind", "TEXT"), ("optimizer", "TEXT"), ("reference", "TEXT"), ("metric", "TEXT"),
    ("direction", "TEXT"), ("threshold", "REAL"), ("margin", "REAL"), ("finding", "TEXT"), ("claim_json", "TEXT"),
]
# The report's verdicts (claims.verdict_rows): scope experiment / entry / claim.
VERDICT_COLUMNS = [
    ("scope", "TEXT"), ("claim", "INTEGER"), ("claim_id", "TEXT"), ("paper", "TEXT"), ("experiment", "TEXT"),
    ("scale", "TEXT"), ("kind", "TEXT"), ("measured", "REAL"), ("ci_low", "REAL"), ("ci_high", "REAL"),
    ("ci_level", "REAL"), ("measured_text", "TEXT"), ("verdict", "TEXT"), ("note", "TEXT"),
]
RUN_VALUE_COLUMNS = [("run", "INTEGER"), ("path", "TEXT"), ("kind", "TEXT"), ("value", "")]
SKIPPED_COLUMNS = [("path", "TEXT"), ("problem", "TEXT")]

INT64 = (-(1 << 63), (1 << 63) - 1)
# The runner's divergence messages (harness/run/runner.cpp): "non-finite training loss in epoch 2 (by step 99)",
# "<optimizer's reason> in epoch 2 (step 99)", "non-finite val_loss after epoch 3".
DIVERGED_IN = re.compile(r"in epoch (\d+) \((?:by )?step (\d+)\)\s*$")
DIVERGED_AFTER = re.compile(r"after epoch (\d+)\s*$")


def pointer_token(key):
    """One JSON Pointer (RFC 6901) reference token."""
    return str(key).replace("~", "~0").replace("/", "~1")


def sql_value(value):
    """A JSON scalar as SQLite stores it: booleans 0/1, integers beyond 64 bits as REAL."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        return float(value)
    return value


def kind_of(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "object" if isinstance(value, dict) else "array"


def leaves(value, pointer=""):
    """(JSON Pointer, kind, value) of every scalar and every empty object or array in `value`, in
    document order; empty containers have value None."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, pointer + "/" + pointer_token(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, f"{pointer}/{index}")
    elif isinstance(value, (dict, list)):
        yield pointer, kind_of(value), None
    else:
        yield pointer, kind_of(value), sql_value(value)


def flat_scalars(value, prefix):
    """{prefix_key_subkey: scalar} of the scalars in nested objects (lists are left to run_values)."""
    out = {}
    for key, item in value.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(item, dict):
            out.update(flat_scalars(item, name))
        elif not isinstance(item, list):
            out[name] = sql_value(item)
    return out


def name_of(block, key="name"):
    return block.get(key) if isinstance(block, dict) else None


def divergence(result):
    """(epoch, step) at which a diverged run stopped, read off the runner's message; (None, None) for
    runs that did not diverge. A held-out loss that turned non-finite ends the run after its epoch was
    recorded: the step is that epoch's cumulative_steps."""
    if result.get("status") != "diverged" or not isinstance(result.get("error"), str):
        return None, None
    error = result["error"]
    match = DIVERGED_IN.search(error)
    if match:
        return int(match.group(1)), int(match.group(2))
    match = DIVERGED_AFTER.search(error)
    if match:
        epoch = int(match.group(1))
        steps = [e.get("cumulative_steps") for e in result.get("epochs", []) if e.get("epoch") == epoch]
        return epoch, steps[0] if steps and isinstance(steps[0], int) else None
    return None, None


def settings_of(result):
    """The resolved configuration: the top-level settings blocks (the documented result fields)."""
    return {key: result[key] for key in sorted(SETTINGS_BLOCKS) if key in result}


def run_row(run, path, result):
    """(fixed columns, flattened extra columns) of one result."""
    epochs = result.get("epochs", [])
    target = result.get("target") if isinstance(result.get("target"), dict) else {}
    hparams = result.get("hparams") if isinstance(result.get("hparams"), dict) else {}
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
    scale = result.get("scale", "")
    diverged_epoch, diverged_step = divergence(result)
    fixed = {
        "run": run, "path": path, "experiment": result["experiment"], "scale": scale,
        "report_name": result["experiment"] + (f"@{scale}" if scale else ""),
        "run_id": result.get("run_id"), "config_hash": result.get("config_hash"), "label": result.get("label"),
        "optimizer": result.get("optimizer"), "variant": result.get("variant"),
        "model": name_of(result.get("model")), "dataset": name_of(result.get("dataset")),
        "workload": result.get("workload"), "seed": result.get("seed"), "study": result.get("study"), "trial": result.get("trial"),
        "lr": hparams.get("lr"), "batch_size": result.get("batch_size"),
        "eval_batch_size": result.get("eval_batch_size"), "epochs_planned": result.get("epochs_planned"),
        "data_order": result.get("data_order"), "schedule": name_of(result.get("schedule")),
        "status": result.get("status"), "error": result.get("error"),
        "diverged_epoch": diverged_epoch, "diverged_step": diverged_step,
        "target_metric": target.get("metric"), "target_value": target.get("value"),
        "time_to_target_s": result.get("time_to_target_s"), "epochs_to_target": result.get("epochs_to_target"),
        "steps_to_target": result.get("steps_to_target"), "epochs_run": len(epochs),
        "timing_suspect": result.get("timing_suspect"), "code_version": meta.get("git_commit"),
        "schema_version": result.get("schema_version"),
        "settings_json": json.dumps(settings_of(result), sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False),
    }
    fixed = {key: sql_value(value) if not isinstance(value, (dict, list)) else
             json.dumps(value, sort_keys=True, separators=(",", ":")) for key, value in fixed.items()}
    extra = {}
    for key, value in result.items():
        if key in NOT_FLATTENED or key in SETTINGS_BLOCKS or key in RUN_FIELDS_AS_COLUMNS:
            continue
        if isinstance(value, dict):
            extra.update(flat_scalars(value, str(key)))
        elif not isinstance(value, list):
            extra[str(key)] = sql_value(value)
    if epochs:
        last = {k: v for k, v in epochs[-1].items() if not isinstance(v, (dict, list)) and k != "epoch"}
        extra.update({f"last_{k}": sql_value(v) for k, v in last.items()})
    return fixed, extra


def epoch_rows(run, result):
    return [dict(flat_scalars(epoch, ""), run=run) for epoch in result.get("epochs", [])]


def sql_type(values):
    """The declared type of a generated column, from the values it holds (no affinity when mixed, so
    SQLite keeps each value as written)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds or kinds <= {int}:
        return "INTEGER" if kinds else ""
    if kinds <= {int, float}:
        return "REAL"
    if kinds <= {str}:
        return "TEXT"
    return ""


def add_columns(fixed, rows, what, warnings, rows_fill_fixed):
    """The fixed columns, then one per other key of `rows` (sorted). A key that clashes with a fixed
    column (unless `rows_fill_fixed`: the rows hold the fixed columns' values) or with another key
    ignoring case (SQLite column names are case-insensitive) stays out of the table, with a warning;
    its values are still in run_values."""
    columns = list(fixed)
    taken = {name.lower() for name, _ in fixed}
    keys = sorted({key for row in rows for key in row})
    for key in keys:
        if key.lower() in taken:
            if not (rows_fill_fixed and key in dict(fixed)):
                warnings.append(f"{what}: column {key!r} clashes with another column; its values are in run_values")
            continue
        taken.add(key.lower())
        columns.append((key, sql_type(row.get(key) for row in rows)))
    return columns


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def claim_rows(claims):
    rows = []
    for index, claim in enumerate(claims, 1):
        claim = claim if isinstance(claim, dict) else {}
        measure = claim.get("measure") if isinstance(claim.get("measure"), dict) else {}
        text = lambda value: value if isinstance(value, str) or value is None else json.dumps(value)
        real = lambda value: sql_value(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        experiments = claims_module.experiments_of(claim) if isinstance(claim.get("experiments", []), list) else []
        rows.append({
            "claim": index, "claim_id": text(claim.get("claim")), "paper": text(claim.get("paper")),
            "experiment": text(claim.get("experiment")),
            "experiments": json.dumps(experiments, ensure_ascii=False) if experiments else None,
            "description": text(claim.get("description")), "quote": text(claim.get("quote")),
            "published": text(claim.get("value")), "source": text(claim.get("source")),
            "claim_scale": text(claim.get("scale")), "kind": text(measure.get("kind")),
            "optimizer": text(measure.get("optimizer")), "reference": text(measure.get("reference")),
            "metric": text(measure.get("metric")), "direction": text(measure.get("direction")),
            "threshold": real(measure.get("threshold")), "margin": real(measure.get("margin")),
            "finding": text(claim.get("finding")),
            "claim_json": json.dumps(claim, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        })
    return rows


def load_claims(path):
    """The claims list of a claims file (missing file: none); an unreadable one is an error."""
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as file:
            claims = json.load(file)
    except (OSError, ValueError) as error:
        raise SystemExit(f"export: {path}: cannot read the claims: {error}")
    if not isinstance(claims, dict) or not isinstance(claims.get("claims"), list):
        raise SystemExit(f"export: {path}: not a claims file (no \"claims\" list)")
    return claims["claims"]


def evaluate_claims(experiments, claims, tests):
    """The claims' verdicts on `experiments` ({(experiment, scale): results}) as the report computes them;
    none when a claim cannot be evaluated (the claims table still holds it)."""
    metrics = {key: Metric(results) for key, results in experiments.items()}
    return claims_module.evaluate(claims, experiments, metrics, tests)


class Export:
    """The tables of one results folder: {name: (columns [(name, type)], rows [dict])}."""

    def __init__(self, results_dir, claims, tests=None):
        self.tables = {}
        self.warnings = []
        loaded, skipped = read_results(results_dir)
        self.skipped = [{"path": path, "problem": problem} for path, problem in skipped]
        runs, extras, epochs, values = [], [], [], []
        for path, result in loaded:
            run = len(runs) + 1
            fixed, extra = run_row(run, path, result)
            runs.append(fixed)
            extras.append(extra)
            epochs += epoch_rows(run, result)
            values += [{"run": run, "path": pointer, "kind": kind, "value": value}
                       for pointer, kind, value in leaves(result)]
        run_columns = add_columns(RUN_COLUMNS, extras, "runs", self.warnings, False)
        for fixed, extra in zip(runs, extras):
            fixed.update({k: v for k, v in extra.items() if k not in fixed})
        self.tables["runs"] = (run_columns, runs)
        self.tables["epochs"] = (add_columns(EPOCH_COLUMNS, epochs, "epochs", self.warnings, True), epochs)
        self.tables["run_values"] = (RUN_VALUE_COLUMNS, values)
        self.tables["claims"] = (CLAIM_COLUMNS, claim_rows(claims))
        entries = evaluate_claims(group(result for _, result in loaded), claims, tests)
        self.tables["verdicts"] = (VERDICT_COLUMNS, [{k: sql_value(v) for k, v in row.items()}
                                                     for row in claims_module.verdict_rows(entries)])
        self.tables["skipped"] = (SKIPPED_COLUMNS, self.skipped)
        self.info = [("format_version", str(FORMAT_VERSION)), ("result_files", str(len(runs) + len(self.skipped))),
                     ("runs", str(len(runs))), ("skipped", str(len(self.skipped))),
                     ("test_results", "given" if tests is not None else "none: test claims are not measured")]


INDEXES = {
    "runs": [("runs_experiment", "experiment, scale, optimizer"), ("runs_run_id", "run_id")],
    "epochs": [("epochs_run", "run, epoch")],
}


def write_database(export, path):
    """Writes the tables to `path` through a temporary file beside it, renamed over it at the end."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=os.path.basename(path) + ".tmp.")
    os.close(descriptor)
    try:
        connection = sqlite3.connect(temporary)
        try:
            connection.execute("PRAGMA journal_mode = MEMORY")
            connection.execute("PRAGMA synchronous = OFF")
            connection.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            with connection:
                for table, (columns, rows) in export.tables.items():
                    definition = ", ".join(f"{quote(name)} {kind}".rstrip() for name, kind in columns)
                    suffix = ""
                    if table == "run_values":
                        definition += ", PRIMARY KEY (run, path)"
                        suffix = " WITHOUT ROWID"
                    connection.execute(f"CREATE TABLE {table} ({definition}){suffix}")
                    names = [name for name, _ in columns]
                    connection.executemany(
                        f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})",
                        ([row.get(name) for name in names] for row in rows))
                    for index, on in INDEXES.get(table, []):
                        connection.execute(f"CREATE INDEX {index} ON {table} ({on})")
                connection.execute("CREATE TABLE export_info (key TEXT PRIMARY KEY, value TEXT)")
                connection.executemany("INSERT INTO export_info VALUES (?, ?)", export.info)
            connection.execute("VACUUM")
        finally:
            connection.close()
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def csv_text(columns, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [name for name, _ in columns]
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if row.get(name) is None else csv_cell(row.get(name)) for name in names])
    return buffer.getvalue()


def csv_cell(value):
    """repr() of a float is the shortest text that reads back as the same double (inf, -inf, nan too)."""
    return repr(value) if isinstance(value, float) else value


def export(results_dir, out, claims_path=None, test_results=None):
    """Exports `results_dir` into `out`; returns the Export (its tables, skipped files, warnings)."""
    tables = Export(results_dir, load_claims(claims_path), load_tests(test_results))
    os.makedirs(os.path.join(out, CSV_FOLDER), exist_ok=True)
    write_database(tables, os.path.join(out, DATABASE_NAME))
    for table, (columns, rows) in tables.tables.items():
        write(os.path.join(out, CSV_FOLDER, table + ".csv"), csv_text(columns, rows))
    return tables


def load_tests(path):
    """Test outcomes from `path` (None when there is no such file); an unreadable one is an error."""
    if not path or not os.path.exists(path):
        return None
    try:
        return load_test_outcomes(path)
    except ValueError as error:
        raise SystemExit(f"export: {error}")


DEFAULT_CLAIMS = checkout_file("results", "paper-claims.json")
DEFAULT_TEST_RESULTS = checkout_file("results", "test-verdicts.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/runs")
    parser.add_argument("--out", default=None, help="output folder (default: the parent of RESULTS_DIR)")
    parser.add_argument("--claims", default=DEFAULT_CLAIMS,
                        help="claims file (default: results/paper-claims.json; a missing file means no claims)")
    parser.add_argument("--test-results", default=DEFAULT_TEST_RESULTS,
                        help="test outcomes for the test claims (default: results/test-verdicts.json when present)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a file was skipped")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.results):
        sys.exit(f"export: {args.results}: no results folder (run `make reproduce` first)")
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    started = time.monotonic()
    try:
        tables = export(args.results, out, args.claims, args.test_results)
    except (OSError, sqlite3.Error) as error:
        sys.exit(f"export: cannot write into {out}: {error}")
    for skipped in tables.skipped:
        print(f"export: skipping {os.path.join(args.results, skipped['path'])}: {skipped['problem']}", file=sys.stderr)
    for warning in tables.warnings:
        print(f"export: warning: {warning}", file=sys.stderr)
    counts = ", ".join(f"{table} {len(rows)}" for table, (_, rows) in tables.tables.items())
    print(f"export: wrote {os.path.join(out, DATABASE_NAME)} and {os.path.join(out, CSV_FOLDER)}/*.csv "
          f"({counts} rows; {time.monotonic() - started:.2f} s)")
    if tables.skipped:
        print(f"export: {len(tables.skipped)} file(s) skipped (listed above and in the skipped table)", file=sys.stderr)
        if args.strict:
            return 1
    return 0

