#!/usr/bin/python3
"""The report's memory and step-time parts (scripts/ngdreport/tables.py, figures.py) on the export fixture
(tests/report/fixtures/export-runs, whose TENGraD runs carry "memory" and "step_time_s" blocks as the runner
writes them, and whose other runs predate them): the summary's memory column against hand-computed medians,
"—" for results without the fields, the points of the time-to-target-against-memory figure and the boxes of
the step-time figure, and which figures an experiment gets."""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ngdreport import figures  # noqa: E402
from ngdreport.load import load_results  # noqa: E402
from ngdreport.model import Metric  # noqa: E402
from ngdreport.styles import Styles  # noqa: E402
from ngdreport.tables import MEMORY_COLUMN, chosen_summary_header, chosen_summary_rows, memory_cell  # noqa: E402

MIB = 2 ** 20


class MemoryReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.experiments = load_results(os.path.join(HERE, "fixtures", "export-runs"))
        cls.three_c_one_f = cls.experiments[("fixture-3c1f", "cpu")]
        cls.memory = cls.experiments[("fixture-memory", "cpu")]
        cls.runs = {r["run_id"]: r for results in cls.experiments.values() for r in results}

    def test_memory_cell_is_the_medians_in_mebibytes(self):
        # tengrad-0e0a0064-s0: peak RSS 12000000 B = 11.44 MiB, tensors 6000000 B = 5.72 MiB, estimate
        # 7500000 B = 7.15 MiB, optimizer state 64000 B = 0.06 MiB.
        self.assertEqual(memory_cell([self.runs["tengrad-0e0a0064-s0"]]), "11.4 · 5.7 (7.2) · 0.1")
        # Two runs: medians 51000000 B = 48.64 MiB, 25500000 B = 24.32 MiB, estimate 31875000 B = 30.40 MiB,
        # state 4000000 B = 3.81 MiB.
        self.assertEqual(memory_cell([self.runs["tengrad-7e3c0001-s0"], self.runs["tengrad-7e3c0002-s1"]]),
                         "48.6 · 24.3 (30.4) · 3.8")
        self.assertEqual(memory_cell([self.runs["sgd-5a3c0001-s0"]]), "—")  # written before memory accounting

    def test_summary_table_has_the_memory_column(self):
        metric = Metric(self.three_c_one_f)
        header = chosen_summary_header(metric)
        self.assertEqual(header[-1], MEMORY_COLUMN)
        rows = {row[0]: row for row in chosen_summary_rows(self.three_c_one_f, metric)}
        self.assertEqual(rows["tengrad"][-1], "48.6 · 24.3 (30.4) · 3.8")
        self.assertEqual(rows["sgd"][-1], "—")
        self.assertEqual(rows["kfac"][-1], "—")

    def test_memory_figure_points(self):
        # tengrad's chosen runs: tensor peaks 25000000 and 26000000 B, time to target 2.0 and 3.0 s (the
        # export test's query computes the same median, 2.5); sgd and kfac recorded no memory.
        points = figures.memory_points(self.three_c_one_f, Metric(self.three_c_one_f))
        self.assertEqual(points, [("tengrad", 25500000, 2.5)])

    def test_step_time_boxes(self):
        stats = figures.step_time_stats(self.three_c_one_f, Metric(self.three_c_one_f))
        self.assertEqual(len(stats), 1)
        box = stats[0]
        self.assertEqual((box["label"], box["whislo"], box["q1"], box["med"], box["q3"], box["whishi"], box["fliers"]),
                         ("tengrad", 0.05, 0.075, 0.1, 0.1125, 0.25, [0.5]))
        self.assertEqual(box["refresh"], {"steps": 3, "mean": 0.25})
        self.assertEqual(box["ordinary"], {"steps": 27, "mean": 0.1})

    def test_figures_only_where_the_fields_are(self):
        styles = Styles.of([r for results in self.experiments.values() for r in results])
        with tempfile.TemporaryDirectory() as folder:
            written = figures.experiment_figures(self.three_c_one_f, Metric(self.three_c_one_f), "m", folder, styles)
            stems = [stem for stem, _ in written]
            self.assertIn("m-memory", stems)
            self.assertIn("m-step-times", stems)
            for stem in ("m-memory", "m-step-times"):
                for kind in ("png", "svg"):
                    self.assertTrue(os.path.getsize(os.path.join(folder, f"{stem}.{kind}")) > 0)
            old = [r for r in self.three_c_one_f if r["optimizer"] != "tengrad"]
            stems = [stem for stem, _ in figures.experiment_figures(old, Metric(old), "old", folder, styles)]
            self.assertNotIn("old-memory", stems)
            self.assertNotIn("old-step-times", stems)

    def test_step_time_figure_is_logarithmic_and_styled_per_optimizer(self):
        styles = Styles.of(self.memory)
        figure = figures.step_time_figure(self.memory, Metric(self.memory), "m", None, styles)
        axis = figure.axes[0]
        self.assertEqual(axis.get_yscale(), "log")
        self.assertEqual([label.get_text() for label in axis.get_xticklabels()], ["tengrad"])
        figures.pyplot().close(figure)
        figure = figures.memory_figure(self.memory, Metric(self.memory), "m", None, styles)
        drawn = [line for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")]
        self.assertEqual([line.get_label() for line in drawn], ["sgd", "tengrad"])  # sgd's run has memory too
        self.assertEqual([line.get_color() for line in drawn], [styles["sgd"].color, styles["tengrad"].color])
        figures.pyplot().close(figure)


if __name__ == "__main__":
    unittest.main()
