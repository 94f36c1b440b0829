#!/usr/bin/python3
"""Tests of scripts/export_results.py (scripts/ngdreport/export.py, docs/results-database.md): the export of the fixture folders
round-trips (every JSON value of every result file is in the database, and in the CSV files, with its
type), the runs and epochs columns agree with the files, fields the exporter has never heard of become
columns, malformed files are named and skipped, the output is deterministic and written atomically,
and the three example queries of the docs, run as written there, return the expected rows."""
import csv
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
EXPORT = os.path.join(ROOT, "scripts", "export_results.py")
EXPORT_MODULE = os.path.join(ROOT, "scripts", "ngdreport", "export.py")
DOCS = os.path.join(ROOT, "docs", "results-database.md")
REPORT_RUNS = os.path.join(HERE, "fixtures", "runs")  # the report's fixture
EXPORT_RUNS = os.path.join(HERE, "fixtures", "export-runs")  # 3C1F studies, memory fields, divergences
CLAIMS = os.path.join(HERE, "fixtures", "claims.json")
TEST_OUTCOMES = os.path.join(HERE, "fixtures", "test-outcomes", "ctest-junit.xml")
REPORT = os.path.join(ROOT, "scripts", "report.py")
INF = math.inf


def export(results, out, *extra, check=True):
    process = subprocess.run([sys.executable, EXPORT, results, "--out", out, "--claims", CLAIMS, "--test-results",
                              TEST_OUTCOMES, *extra], capture_output=True, text=True)
    if check and process.returncode != 0:
        raise AssertionError(f"export failed ({process.returncode}): {process.stderr}")
    return process


def json_leaves(value, pointer=""):
    """{JSON Pointer: (kind, value)} of every scalar and empty container, written independently of the
    exporter's walker."""
    out = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            out.update(json_leaves(item, pointer + "/" + key.replace("~", "~0").replace("/", "~1")))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            out.update(json_leaves(item, f"{pointer}/{index}"))
    elif isinstance(value, dict):
        out[pointer] = ("object", None)
    elif isinstance(value, list):
        out[pointer] = ("array", None)
    elif value is None:
        out[pointer] = ("null", None)
    elif isinstance(value, bool):
        out[pointer] = ("boolean", int(value))
    elif isinstance(value, int):
        out[pointer] = ("integer", value)
    elif isinstance(value, float):
        out[pointer] = ("real", value)
    else:
        out[pointer] = ("text", value)
    return out


def result_files(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder).replace(os.sep, "/")
                  for d, _, names in os.walk(folder) for n in names if n.endswith(".json"))


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def csv_value(kind, text):
    """A run_values.csv value read back: an empty field is NULL, or an empty text (its kind says which)."""
    if kind == "text":
        return text
    if text == "":
        return None
    return {"integer": int, "boolean": int, "real": float}.get(kind, str)(text)


def docs_queries():
    """{title: SQL} of the ```sql blocks of docs/results-database.md, titled by their first line."""
    with open(DOCS, encoding="utf-8") as file:
        blocks = re.findall(r"```sql\n(.*?)```", file.read(), re.S)
    queries = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("-- query: "):
            queries[first[len("-- query: "):]] = block
    return queries


class RoundTrip(unittest.TestCase):
    def check_round_trip(self, folder):
        with tempfile.TemporaryDirectory() as out:
            export(folder, out)
            connection = sqlite3.connect(os.path.join(out, "results.sqlite"))
            runs = dict(connection.execute("SELECT path, run FROM runs"))
            files = result_files(folder)
            self.assertEqual(sorted(runs), files)
            total = 0
            for path in files:
                with open(os.path.join(folder, path)) as file:
                    expected = json_leaves(json.load(file))
                stored = {p: (k, v) for p, k, v in connection.execute(
                    "SELECT path, kind, value FROM run_values WHERE run = ?", (runs[path],))}
                self.assertEqual(stored, expected, path)
                for pointer, (kind, value) in expected.items():  # same type, not just equal (1 vs 1.0)
                    self.assertIs(type(stored[pointer][1]), type(value), f"{path} {pointer}")
                total += len(expected)
            self.assertEqual(connection.execute("SELECT COUNT(*) FROM run_values").fetchone()[0], total)
            # The CSV holds the same values, floats exactly.
            path_of = {str(run): path for path, run in runs.items()}
            from_csv = {}
            for row in csv_rows(os.path.join(out, "csv", "run_values.csv")):
                from_csv[(path_of[row["run"]], row["path"])] = (row["kind"], csv_value(row["kind"], row["value"]))
            from_db = {(path_of[str(r)], p): (k, v) for r, p, k, v in
                       connection.execute("SELECT run, path, kind, value FROM run_values")}
            self.assertEqual(from_csv, from_db)
            connection.close()
            return total

    def test_report_fixture(self):
        self.assertGreater(self.check_round_trip(REPORT_RUNS), 2000)

    def test_export_fixture(self):
        self.assertGreater(self.check_round_trip(EXPORT_RUNS), 1000)


class Columns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp()
        export(EXPORT_RUNS, cls.out)
        export(REPORT_RUNS, os.path.join(cls.out, "report"))
        cls.db = sqlite3.connect(os.path.join(cls.out, "results.sqlite"))
        cls.db.row_factory = sqlite3.Row

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        shutil.rmtree(cls.out)

    def files(self, folder=EXPORT_RUNS):
        for path in result_files(folder):
            with open(os.path.join(folder, path)) as file:
                yield path, json.load(file)

    def test_runs_columns_agree_with_the_files(self):
        for path, result in self.files():
            row = self.db.execute("SELECT * FROM runs WHERE path = ?", (path,)).fetchone()
            for key in ("experiment", "scale", "run_id", "optimizer", "variant", "seed", "study", "trial", "status",
                        "error", "time_to_target_s", "steps_to_target", "batch_size", "epochs_planned"):
                self.assertEqual(row[key], result.get(key), f"{path} {key}")
            self.assertEqual(row["model"], result["model"]["name"])
            self.assertEqual(row["lr"], result["hparams"]["lr"])
            self.assertEqual(row["report_name"], result["experiment"] + "@cpu")
            self.assertEqual(row["epochs_run"], len(result["epochs"]))
            self.assertEqual(row["code_version"], result["meta"]["git_commit"])
            self.assertEqual(row["host_syncs_total"], result["host_syncs"]["total"])
            self.assertEqual(row["phase_times_s_forward"], result["phase_times_s"].get("forward"))
            self.assertEqual(row["meta_model_parameters"], result["meta"]["model_parameters"])
            settings = json.loads(row["settings_json"])
            self.assertEqual(settings["hparams"], result["hparams"])
            self.assertNotIn("identity", settings)
            if result["epochs"]:
                self.assertEqual(row["last_val_acc"], result["epochs"][-1]["val_acc"])
                self.assertEqual(row["last_cumulative_steps"], result["epochs"][-1]["cumulative_steps"])

    def test_epochs_rows_agree_with_the_files(self):
        for folder in (EXPORT_RUNS, REPORT_RUNS):
            db = self.db if folder == EXPORT_RUNS else sqlite3.connect(os.path.join(self.out, "report", "results.sqlite"))
            db.row_factory = sqlite3.Row
            for path, result in self.files(folder):
                rows = db.execute("SELECT e.* FROM epochs e JOIN runs r USING (run) WHERE r.path = ? ORDER BY e.epoch",
                                  (path,)).fetchall()
                self.assertEqual(len(rows), len(result["epochs"]), path)
                for row, epoch in zip(rows, result["epochs"]):
                    for key, value in epoch.items():
                        if isinstance(value, dict):  # flattened: fidelity.cosine.mean → fidelity_cosine_mean
                            for sub, inner in value.items():
                                if isinstance(inner, dict):
                                    for leaf, number in inner.items():
                                        self.assertEqual(row[f"{key}_{sub}_{leaf}"], number)
                                elif not isinstance(inner, list):
                                    self.assertEqual(row[f"{key}_{sub}"], inner)
                        elif not isinstance(value, list):
                            self.assertEqual(row[key], value, f"{path} epoch {epoch['epoch']} {key}")

    def test_new_fields_become_columns_without_code(self):
        with open(EXPORT_MODULE) as file:
            source = file.read()
        for name in ("peak_rss_bytes", "peak_allocated_bytes", "optimizer_state_bytes", "estimate", "step_time",
                     "p90", "refresh"):
            self.assertNotIn(name, source)  # the exporter knows nothing of these fields
        row = self.db.execute("SELECT * FROM runs WHERE run_id = 'tengrad-0e0a0064-s0'").fetchone()
        self.assertEqual(row["memory_peak_rss_bytes"], 12000000)
        self.assertEqual(row["memory_peak_allocated_bytes"], 6000000)
        self.assertEqual(row["memory_phases_backward_peak_allocated_bytes"], 6000000)
        self.assertEqual(row["memory_cuda_peak_bytes"], None)
        self.assertEqual(row["memory_optimizer_state_bytes"], 64000)
        self.assertEqual(row["memory_estimate_total_bytes"], 7500000)
        self.assertEqual(row["memory_estimate_dominant"], "activations")
        self.assertEqual(row["step_time_s_p90"], 0.08)
        self.assertEqual(row["step_time_s_refresh_steps"], 4)
        self.assertEqual(row["step_time_s_ordinary_mean"], 0.064)
        epoch = self.db.execute("SELECT e.* FROM epochs e JOIN runs r USING (run) WHERE r.run_id = 'tengrad-0e0a0064-s0' "
                                "AND e.epoch = 2").fetchone()
        self.assertEqual((epoch["step_time_s_steps"], epoch["step_time_s_p99"]), (20, 0.16))
        self.assertEqual(row["optimizer_report_inverse_refreshes"], None)
        kfac = self.db.execute("SELECT * FROM runs WHERE run_id = 'kfac-kf3c0002-s1'").fetchone()
        self.assertEqual(kfac["optimizer_report_inverse_refresh_s"], 0.75)
        self.assertEqual(kfac["memory_peak_rss_bytes"], None)

    def test_divergence_epoch_and_step(self):
        rows = {r["run_id"]: (r["diverged_epoch"], r["diverged_step"]) for r in
                self.db.execute("SELECT run_id, diverged_epoch, diverged_step FROM runs")}
        self.assertEqual(rows["kfac-kf3c0001-s0"], (2, 40))  # "… in epoch 2 (by step 40)"
        self.assertEqual(rows["tengrad-0e0a0064-s1"], (1, 20))  # "non-finite val_loss after epoch 1"
        self.assertEqual(rows["tengrad-0e0a0256-s0"], (None, None))  # failed, not diverged
        self.assertEqual(rows["sgd-5a3c0001-s0"], (None, None))
        report = sqlite3.connect(os.path.join(self.out, "report", "results.sqlite"))
        # A message without the step (older files): the run is diverged, its step unknown.
        self.assertEqual(report.execute("SELECT status, diverged_epoch, diverged_step FROM runs "
                                        "WHERE run_id = 'fngd-cccc0003-s2'").fetchone(), ("diverged", None, None))
        report.close()

    def test_claims(self):
        with open(CLAIMS) as file:
            claims = json.load(file)["claims"]
        rows = self.db.execute("SELECT * FROM claims ORDER BY claim").fetchall()
        self.assertEqual(len(rows), len(claims))
        for index, (row, claim) in enumerate(zip(rows, claims), 1):
            self.assertEqual(row["claim"], index)
            self.assertEqual(row["claim_id"], claim.get("claim"))
            self.assertEqual(row["experiment"], claim.get("experiment"))
            self.assertEqual(json.loads(row["experiments"] or "null"),
                             claim.get("experiments") or ([claim["experiment"]] if "experiment" in claim else None))
            self.assertEqual(row["published"], claim["value"])
            self.assertEqual(row["kind"], claim["measure"]["kind"])
            self.assertEqual(row["optimizer"], claim["measure"].get("optimizer"))
            self.assertEqual(row["threshold"], claim["measure"].get("threshold"))
            self.assertEqual(row["margin"], claim["measure"].get("margin"))
            self.assertEqual(json.loads(row["claim_json"]), claim)
        self.assertEqual(len(csv_rows(os.path.join(self.out, "csv", "claims.csv"))), len(claims))

    def test_verdicts_are_the_reports(self):
        """The export's verdicts table holds what the report's verdicts.json says, row for row."""
        with tempfile.TemporaryDirectory() as work:
            subprocess.run([sys.executable, REPORT, REPORT_RUNS, "--out", work, "--claims", CLAIMS, "--test-results",
                            TEST_OUTCOMES, "--no-plots"], check=True, capture_output=True)
            with open(os.path.join(work, "verdicts.json")) as file:
                document = json.load(file)
        expected = []
        for paper in document["papers"]:
            for claim in paper["claims"]:
                for entry in claim["entries"]:
                    expected += [("experiment", entry["index"], claim["claim"], m["experiment"], m["scale"], m["text"],
                                  m["verdict"]) for m in entry["measurements"] if m["experiment"]]
                    expected.append(("entry", entry["index"], claim["claim"], None, None, None, entry["verdict"]))
                expected.append(("claim", None, claim["claim"], None, None, None, claim["verdict"]))
        report = sqlite3.connect(os.path.join(self.out, "report", "results.sqlite"))
        rows = report.execute("SELECT scope, claim, claim_id, experiment, scale, CASE WHEN scope = 'experiment' "
                              "THEN measured_text END, verdict FROM verdicts").fetchall()
        self.assertEqual(rows, expected)
        # One measured row by hand: the fixture's BLEU gain, +4.50 [+2.50, +7.00] at 90 %.
        self.assertEqual(report.execute("SELECT measured, ci_low, ci_high, ci_level, verdict FROM verdicts WHERE "
                                        "claim = 3 AND scope = 'experiment'").fetchone(),
                         (4.5, 2.5, 7.0, 0.9, "reproduced"))
        self.assertEqual(report.execute("SELECT verdict FROM verdicts WHERE scope = 'claim' AND "
                                        "claim_id = 'fngd-identity'").fetchone(), ("reproduced",))
        report.close()

    def test_csv_tables_match_the_database(self):
        for table in ("runs", "epochs", "claims", "verdicts", "skipped"):
            names = [c[1] for c in self.db.execute(f"PRAGMA table_info({table})")]
            rows = csv_rows(os.path.join(self.out, "csv", table + ".csv"))
            db_rows = self.db.execute(f"SELECT * FROM {table}").fetchall()
            self.assertEqual(len(rows), len(db_rows), table)
            for row, db_row in zip(rows, db_rows):
                self.assertEqual(list(row), names)
                for name in names:
                    value = db_row[name]
                    text = "" if value is None else repr(value) if isinstance(value, float) else str(value)
                    self.assertEqual(row[name], text, f"{table}.{name}")


class Queries(unittest.TestCase):
    """The docs' example queries, as written there, on the export fixture."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp()
        export(EXPORT_RUNS, cls.out)
        cls.db = sqlite3.connect(os.path.join(cls.out, "results.sqlite"))
        cls.queries = docs_queries()

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        shutil.rmtree(cls.out)

    def run_query(self, title):
        self.assertIn(title, self.queries, f"docs/results-database.md has no query {title!r}")
        return self.db.execute(self.queries[title]).fetchall()

    def test_four_queries_documented(self):
        self.assertEqual(len(self.queries), 4)

    def test_verdict_of_every_claim(self):
        # On the report's fixture and its claims: the claims' verdicts as the golden report states them.
        with tempfile.TemporaryDirectory() as work:
            export(REPORT_RUNS, work)
            db = sqlite3.connect(os.path.join(work, "results.sqlite"))
            rows = db.execute(self.queries["the verdict of every claim, by paper"]).fetchall()
            db.close()
        self.assertEqual(rows, [
            ("P", "entry 1", "inconclusive"), ("P", "entry 2", "no criterion"), ("P", "entry 3", "reproduced"),
            ("P", "entry 4", "inconclusive"), ("P", "entry 5", "not measured here"),
            ("Q, arXiv 1", "fngd-bleu-unaffected", "not reproduced"), ("Q, arXiv 1", "fngd-cost", "reproduced"),
            ("Q, arXiv 1", "fngd-identity", "reproduced"), ("R", "r-theorem", "not measurable here"),
            ("R", "sngd-equivalence", "not reproduced"), ("R", "tengrad-often-faster-than-sgd", "inconclusive"),
        ])

    def test_median_time_to_target(self):
        # By hand: sgd's studies' fastest trials 4.0, 3.0, 6.0 → 4.0; tengrad 2.0, 3.0 → 2.5; kfac's study 0
        # diverged (its time to target does not count) → ∞, study 1 7.0 → median ∞.
        self.assertEqual(self.run_query("median time to target per optimizer on 3C1F"), [
            ("fixture-3c1f", "cpu", "tengrad", 2.5, 2),
            ("fixture-3c1f", "cpu", "sgd", 4.0, 3),
            ("fixture-3c1f", "cpu", "kfac", INF, 2),
        ])

    def test_peak_memory_against_batch_size(self):
        # The failed batch-256 run has no memory block; sgd is not TENGraD.
        self.assertEqual(self.run_query("peak memory against batch size for TENGraD"), [
            ("3c1f", 128, 2, 50000000, 52000000, 26000000, 4000000, 32500000),
            ("mlp", 32, 1, 10000000, 10000000, 5000000, 32000, 6250000),
            ("mlp", 64, 2, 12000000, 12500000, 6250000, 64000, 7812500),
            ("mlp", 128, 2, 15000000, 16000000, 8000000, 128000, 10000000),
        ])

    def test_diverged_runs_and_their_step(self):
        self.assertEqual(self.run_query("all diverged runs and their step"), [
            ("fixture-3c1f", "cpu", "kfac-kf3c0001-s0", "kfac lr=0.01", 2, 40, 10,
             "non-finite training loss in epoch 2 (by step 40)"),
            ("fixture-memory", "cpu", "tengrad-0e0a0064-s1", "tengrad lr=0.05", 1, 20, 20,
             "non-finite val_loss after epoch 1"),
        ])


class Files(unittest.TestCase):
    def test_malformed_files_are_named_and_skipped(self):
        with tempfile.TemporaryDirectory() as work:
            results = os.path.join(work, "runs")
            shutil.copytree(os.path.join(EXPORT_RUNS, "fixture-memory"), os.path.join(results, "fixture-memory"))
            with open(os.path.join(results, "fixture-memory", "sgd-0e0b0128-s0.json")) as file:
                good = json.load(file)
            bad = {"torn.json": '{"schema_version": 1, "experi', "list.json": "[]",
                   "v1.json": json.dumps(dict(good, schema_version=1)),
                   "no-workload.json": json.dumps({k: v for k, v in good.items() if k != "workload"}),
                   "no-study.json": json.dumps(dict(good, study=None)),
                   "dots.json": json.dumps(dict(good, experiment="..")),
                   "epochs.json": json.dumps(dict(good, epochs={"1": {}})),
                   "binary.json": b"\xff\xfe\x00"}
            os.makedirs(os.path.join(results, "broken"))
            for name, content in bad.items():
                with open(os.path.join(results, "broken", name), "wb") as file:
                    file.write(content if isinstance(content, bytes) else content.encode())
            # Not results: the harness's temporaries and other names.
            for name in ("sgd-0e0b0128-s0.json.tmp.host.1.abc", "notes.txt"):
                with open(os.path.join(results, "broken", name), "w") as file:
                    file.write("{")
            out = os.path.join(work, "out")
            process = export(results, out)
            for name in bad:
                self.assertIn(os.path.join(results, "broken", name), process.stderr)
            self.assertIn("v1.json: schema_version 1 (before the workload field); migrate the folder once with "
                          "`python3 scripts/migrate-results-v2.py RESULTS_DIR`", process.stderr)
            self.assertIn("no-workload.json: workload None is neither", process.stderr)
            self.assertIn("no-study.json: study is missing or not an integer", process.stderr)
            self.assertIn("8 file(s) skipped", process.stderr)
            db = sqlite3.connect(os.path.join(out, "results.sqlite"))
            self.assertEqual(sorted(p for p, in db.execute("SELECT path FROM skipped")),
                             sorted("broken/" + name for name in bad))
            self.assertEqual(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0], 7)
            self.assertEqual(dict(db.execute("SELECT key, value FROM export_info"))["skipped"], "8")
            db.close()
            self.assertEqual(len(csv_rows(os.path.join(out, "csv", "skipped.csv"))), 8)
            self.assertEqual(export(results, out, "--strict", check=False).returncode, 1)

    def test_deterministic_and_atomic(self):
        with tempfile.TemporaryDirectory() as work:
            first, second = os.path.join(work, "a"), os.path.join(work, "b")
            export(REPORT_RUNS, first)
            export(REPORT_RUNS, second)
            names = sorted(os.listdir(os.path.join(first, "csv")))
            self.assertEqual(names, ["claims.csv", "epochs.csv", "run_values.csv", "runs.csv", "skipped.csv",
                                     "verdicts.csv"])
            for name in ["results.sqlite"] + [os.path.join("csv", n) for n in names]:
                with open(os.path.join(first, name), "rb") as a, open(os.path.join(second, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)
            # Exporting another folder over it replaces every table; no temporary is left behind.
            export(EXPORT_RUNS, first)
            self.assertEqual(sorted(os.listdir(first)), ["csv", "results.sqlite"])
            self.assertEqual(sorted(os.listdir(os.path.join(first, "csv"))), names)
            db = sqlite3.connect(os.path.join(first, "results.sqlite"))
            self.assertEqual(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0], len(result_files(EXPORT_RUNS)))
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
            db.close()

    def test_default_out_is_the_parent_and_missing_folder_is_an_error(self):
        with tempfile.TemporaryDirectory() as work:
            shutil.copytree(EXPORT_RUNS, os.path.join(work, "runs"))
            subprocess.run([sys.executable, EXPORT, os.path.join(work, "runs"), "--claims", CLAIMS], check=True,
                           capture_output=True)
            self.assertTrue(os.path.isfile(os.path.join(work, "results.sqlite")))
            process = subprocess.run([sys.executable, EXPORT, os.path.join(work, "absent")], capture_output=True,
                                     text=True)
            self.assertNotEqual(process.returncode, 0)
            self.assertIn("no results folder", process.stderr)
            blocked = os.path.join(work, "file")
            open(blocked, "w").close()
            process = export(os.path.join(work, "runs"), os.path.join(blocked, "out"), check=False)
            self.assertEqual(process.returncode, 1)
            self.assertIn(f"export: cannot write into {os.path.join(blocked, 'out')}", process.stderr)
            self.assertNotIn("Traceback", process.stderr)


if __name__ == "__main__":
    unittest.main()
