#!/usr/bin/python3
"""The figures at matplotlib's level (scripts/ngdreport/figures.py, styles.py): every optimizer of the
registry has a style of its own, variants get shades of their base, no two optimizers drawn in one figure
share a style and each keeps its style across figures, legends sit outside the axes, and titles, labels
and panels neither overlap nor leave the figure. On the report's fixture (tests/report/fixtures/runs)."""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from ngdreport import figures  # noqa: E402
from ngdreport.load import load_results  # noqa: E402
from ngdreport.model import Metric  # noqa: E402
from ngdreport.scores import cross_experiment_scores  # noqa: E402
from ngdreport.styles import BASE_STYLES, Styles  # noqa: E402


def registry_names():
    """The optimizers docs/optimizers.md documents, one settings block each (the docs_optimizer_settings test
    keeps those equal to the registry's)."""
    with open(os.path.join(ROOT, "docs", "optimizers.md"), encoding="utf-8") as file:
        return re.findall(r"<!-- settings: ([a-z0-9-]+) -->", file.read())


def drawn_lines(figure):
    """{(axes index, name): Line2D} of the labelled lines (one per optimizer) of each data axes."""
    lines = {}
    for index, axis in enumerate(figure.axes):
        for line in axis.get_lines():
            if not line.get_label().startswith("_"):
                lines[(index, line.get_label())] = line
    return lines


def line_style(line):
    return (line.get_color(), line.get_marker(), str(line.get_linestyle()), line.get_markerfacecolor())


class StyleTable(unittest.TestCase):
    def test_every_registry_optimizer_has_a_style(self):
        names = registry_names()
        self.assertGreaterEqual(len(names), 15)
        self.assertEqual(sorted(set(names) - set(BASE_STYLES)), [])

    def test_no_two_optimizers_share_a_colour_or_a_marker(self):
        colours = [style.color for style in BASE_STYLES.values()]
        markers = [style.marker for style in BASE_STYLES.values()]
        self.assertEqual(len(set(colours)), len(colours))
        self.assertEqual(len(set(markers)), len(markers))

    def test_variants_are_shades_of_their_base(self):
        styles = Styles({"fngd": "fngd", "fngd-refresh1": "fngd", "fngd-clamp": "fngd", "sgd": "sgd", "gd": "sgd",
                         "psgd-d40": "dldr-psgd", "unknown-a": "unknown-a", "unknown-b": "unknown-b"})
        all_styles = [styles[name] for name in styles.styles]
        self.assertEqual(len(set(all_styles)), len(all_styles))
        for variant, base in (("fngd-refresh1", "fngd"), ("fngd-clamp", "fngd"), ("gd", "sgd")):
            self.assertEqual(styles[variant].marker, styles[base].marker)
            self.assertNotEqual(styles[variant].color, styles[base].color)
            self.assertNotEqual(styles[variant].linestyle, "-")
        self.assertEqual(styles["fngd"], BASE_STYLES["fngd"])  # a variant does not move its base
        self.assertEqual(Styles({"fngd": "fngd"})["fngd"], styles["fngd"])


class Figures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.experiments = load_results(os.path.join(HERE, "fixtures", "runs"))
        cls.styles = Styles.of([r for results in cls.experiments.values() for r in results])
        cls.figures = {}
        for (experiment, scale), results in cls.experiments.items():
            metric = Metric(results)
            cls.figures[experiment] = figures.curve_figure(results, metric, experiment, metric.curve_key,
                                                           metric.curve_name, metric.curve_name, None, cls.styles)
        results = cls.experiments[("fixture-fidelity", "probe")]
        cls.figures["fidelity"] = figures.fidelity_figure(results, Metric(results), "fixture-fidelity",
                                                          ["cosine", "gamma_ratio"], None, cls.styles)
        ratios = cross_experiment_scores(cls.experiments)["cpu"][2]
        cls.figures["profiles"] = figures.plot_profiles(ratios, "cpu", None, cls.styles)

    @classmethod
    def tearDownClass(cls):
        plt = figures.pyplot()
        for figure in cls.figures.values():
            plt.close(figure)

    def test_one_line_per_optimizer_each_in_its_own_style(self):
        vision = drawn_lines(self.figures["fixture-vision"])
        names = sorted({name for _, name in vision})
        self.assertEqual(names, ["adamw", "fngd", "kfac", "sgd", "tengrad"])
        for index in (0, 1):
            styles = [line_style(vision[(index, name)]) for name in names if (index, name) in vision]
            self.assertEqual(len(set(styles)), len(styles))

    def test_an_optimizer_looks_the_same_in_every_figure(self):
        seen = {}
        for label, figure in self.figures.items():
            for (_, name), line in drawn_lines(figure).items():
                seen.setdefault(name, set()).add(line_style(line))
        self.assertIn("fngd", seen)
        for name, styles in seen.items():
            self.assertEqual(len(styles), 1, f"{name} is drawn in {len(styles)} styles: {styles}")
            self.assertEqual(next(iter(styles))[0], BASE_STYLES[name].color)

    def test_legends_sit_outside_the_axes_and_inside_the_figure(self):
        for label, figure in self.figures.items():
            figure.canvas.draw()
            renderer = figure.canvas.get_renderer()
            legends = [axis.get_legend() for axis in figure.axes if axis.get_legend() is not None]
            self.assertEqual(len(legends), 1, label)
            holder = legends[0].axes  # a column of its own: no data, no frame
            self.assertEqual(holder.get_lines(), [], label)
            self.assertFalse(holder.axison, label)
            box = legends[0].get_window_extent(renderer)
            for axis in figure.axes:
                if axis.get_legend() is None:
                    self.assertFalse(box.overlaps(axis.get_window_extent(renderer)), f"{label}: legend over axes")
            self.assertLessEqual(box.x1, figure.bbox.x1 + 1, f"{label}: legend cut off")
            self.assertGreaterEqual(box.y0, figure.bbox.y0 - 1, f"{label}: legend cut off")

    def test_titles_labels_and_panels_do_not_overlap(self):
        for label, figure in self.figures.items():
            figure.canvas.draw()
            renderer = figure.canvas.get_renderer()
            title = figure._suptitle.get_window_extent(renderer)
            self.assertGreaterEqual(title.x0, figure.bbox.x0 - 1, f"{label}: title cut off")
            self.assertLessEqual(title.x1, figure.bbox.x1 + 1, f"{label}: title cut off")
            data = [axis for axis in figure.axes if axis.get_legend() is None]
            boxes = [axis.get_tightbbox(renderer) for axis in data]  # with tick labels and axis labels
            for box in boxes:
                self.assertFalse(box.overlaps(title), f"{label}: axes under the title")
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    overlap = min(boxes[i].x1, boxes[j].x1) - max(boxes[i].x0, boxes[j].x0)
                    self.assertLessEqual(overlap, 1, f"{label}: panels {i} and {j} overlap by {overlap:.0f} px")

    def test_profiles_list_optimizers_never_near_the_best_without_a_line(self):
        figure = self.figures["profiles"]
        drawn = {name for _, name in drawn_lines(figure)}
        legend = [text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()]
        self.assertIn("adamw  never within 4×", legend)  # adamw never reaches a cpu fixture's target
        self.assertNotIn("adamw", drawn)
        self.assertEqual(legend[0], "sgd  B = 0.90")  # best score first


if __name__ == "__main__":
    unittest.main()
