#!/usr/bin/python3
"""Unit tests of the low-rank report (scripts/ngdreport/lowrank.py, docs/compression.md): which method a run
belongs to, the Pareto front chosen on validation accuracy, accuracy read off a front at a compression
ratio, the compression_difference verdict with its controls and the balance verdict, on result files built
here whose values are computed by hand; the Pareto figure and the rank table are drawn from them."""
import math
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from ngdreport import claims, lowrank  # noqa: E402
from ngdreport.model import Metric  # noqa: E402
from ngdreport.styles import METHOD_STYLES, Styles  # noqa: E402


def compressed_run(measure, study, ratio, val, test, trial=0):
    """A compression_aware run of `measure` whose final model has `ratio` and these accuracies."""
    parameters = round(1000 / ratio)
    return {"schema_version": 2, "experiment": "lowrank-x", "scale": "cpu", "workload": "image", "optimizer": "sgd",
            "variant": f"{measure}-reg-{trial}", "label": f"{measure} {trial}", "config_hash": f"{measure}-{trial}",
            "run_id": f"{measure}-{study}-{trial}", "study": study, "seed": study, "trial": trial,
            "status": "completed", "time_to_target_s": None, "steps_to_target": None,
            "epochs": [{"epoch": 1, "train_time_s": 1.0, "cumulative_train_time_s": 1.0, "cumulative_steps": 10,
                        "train_loss": 0.5, "val_acc": val, "test_acc": test}],
            "identity": {"model": {"name": "mlp", "options": {"low_rank_format": "dense"}},
                         "compression": {"mode": "compression_aware", "regularizer": {"measure": measure, "weight": 1},
                                         "rank_rule": {"kind": "energy", "value": 0.99}}},
            "model_cost": {"parameters": parameters, "compression_ratio": ratio, "float32_bytes": 4 * parameters,
                           "layers": [{"name": "fc0", "kind": "matrix linear", "ranks": [trial + 2]},
                                      {"name": "fc1", "kind": "dense linear", "ranks": []}]},
            "compression": {"compression_ratio": ratio, "parameters": parameters,
                            "stored_bytes": {"final": 4 * parameters},
                            "accuracy": {"after_pipeline": {"val_acc": val, "test_acc": test}}}}


def front_runs(measure, shifts, high=(0.80, 0.80), low=(0.70, 0.70)):
    """Per study s two configurations: 4× at (val, test) = high + shift_s and 16× at low + shift_s."""
    runs = []
    for study, shift in enumerate(shifts):
        runs.append(compressed_run(measure, study, 4.0, high[0] + shift, high[1] + shift, trial=0))
        runs.append(compressed_run(measure, study, 16.0, low[0] + shift, low[1] + shift, trial=1))
    return runs


# At 8× (the log-midpoint of 4× and 16×) each front reads (high + low)/2 + shift:
#   effective_rank: 0.75, 0.76, 0.77;  l1 (high 0.78, low 0.66): 0.72, 0.73, 0.71;  hoyer: 0.76, 0.77, 0.78.
RESULTS = (front_runs("effective_rank", (0.0, 0.01, 0.02)) +
           front_runs("l1", (0.0, 0.01, -0.01), high=(0.78, 0.78), low=(0.66, 0.66)) +
           front_runs("hoyer", (0.01, 0.02, 0.03)) +
           # Dominated on validation (16× at val 0.66 is as small and more accurate): its test 0.99 is ignored.
           [compressed_run("l1", 0, 8.0, 0.60, 0.99, trial=2)])
FINDING1 = {"kind": "compression_difference", "method": "effective_rank-reg", "reference": "l1-reg", "ratio": 8,
            "controls": ["hoyer-reg"], "direction": "greater", "threshold": 0.3}


class Fronts(unittest.TestCase):
    def test_method_of_a_run(self):
        self.assertEqual(lowrank.method_of(RESULTS[0]), "effective_rank-reg")
        pre_train = dict(RESULTS[0], identity={"compression": {"mode": "pre_train", "rank_rule": {"kind": "budget"}}})
        self.assertEqual(lowrank.method_of(pre_train), "budget-rule")
        self.assertEqual(lowrank.method_of({"identity": {"model": {"options": {"low_rank_format": "tt", "rank": 4}}}}),
                         "tt")
        self.assertEqual(lowrank.method_of({"identity": {"model": {"options": {"low_rank_format": "matrix",
                                                                               "rank": 0, "rank_ratio": 0.0}}}}), "dense")
        self.assertEqual(lowrank.method_of({"identity": {"model": {"options": {"hidden": [8]}}}}), "dense")
        # A rank without a format: the format was left out of the identity at its default, matrix.
        self.assertEqual(lowrank.method_of({"identity": {"model": {"options": {"hidden": [8], "rank": 32}}}}), "matrix")
        piped = {"identity": {"compression": {"mode": "pre_train", "rank_rule": {"kind": "budget"},
                                              "pipeline": {"prune_fraction": 0.5, "quantize_bits": 4,
                                                           "entropy_coding": True}}}}
        self.assertEqual(lowrank.method_of(piped), "budget-rule+p50+q4+coded")
        styles = lowrank.method_styles(["budget-rule", "budget-rule+p50+q4+coded"])
        self.assertEqual(styles["budget-rule"], METHOD_STYLES["budget-rule"])
        self.assertEqual(styles["budget-rule+p50+q4+coded"].marker, METHOD_STYLES["budget-rule"].marker)
        self.assertNotEqual(styles["budget-rule+p50+q4+coded"].color, METHOD_STYLES["budget-rule"].color)

    def test_front_is_chosen_on_validation_and_read_in_log_ratio(self):
        l1_study0 = lowrank.points_by_method(RESULTS)["l1-reg"][0]
        self.assertEqual(len(l1_study0), 3)
        self.assertEqual([p[0] for p in lowrank.front(l1_study0)], [4.0, 16.0])  # the dominated 8× point left out
        self.assertAlmostEqual(lowrank.accuracy_at(l1_study0, 8.0), 0.72, places=12)
        self.assertAlmostEqual(lowrank.accuracy_at(l1_study0, 4.0), 0.78, places=12)
        # A quarter of the way in log ratio: 4·4^0.25 = 5.657×.
        self.assertAlmostEqual(lowrank.accuracy_at(l1_study0, 4 * 4 ** 0.25), 0.78 - 0.25 * 0.12, places=12)
        self.assertIsNone(lowrank.accuracy_at(l1_study0, 32.0))  # beyond the front
        # Below the front, its least compressed point; just past its end, within RATIO_TOLERANCE (5 %),
        # the end's accuracy; 6 % past: none.
        self.assertAlmostEqual(lowrank.accuracy_at(l1_study0, 2.0), 0.78, places=12)
        sixteen = [p[4] for p in lowrank.front(l1_study0) if p[0] == 16.0][0]
        self.assertEqual(lowrank.accuracy_at(l1_study0, 16.0 * 1.04), sixteen)
        self.assertIsNone(lowrank.accuracy_at(l1_study0, 16.0 * 1.06))

    def test_spearman(self):
        self.assertAlmostEqual(lowrank.spearman([1, 2, 3, 4], [8, 6, 4, 1]), -1.0)
        self.assertAlmostEqual(lowrank.spearman([1, 2, 3], [1, 3, 2]), 0.5)
        self.assertIsNone(lowrank.spearman([1, 2], [2, 1]))


class CompressionDifference(unittest.TestCase):
    def measured(self, **change):
        measure = dict(FINDING1, **change)
        experiments = {("lowrank-x", "cpu"): RESULTS}
        metrics = {key: Metric(results) for key, results in experiments.items()}
        [entry] = claims.evaluate([{"experiment": "lowrank-x", "measure": measure}], experiments, metrics)
        return entry.measurements[0]

    def test_difference_interval_and_scale_invariance_note(self):
        m = self.measured()
        self.assertAlmostEqual(m.value, 4.0, places=9)  # 0.76 − 0.72
        self.assertAlmostEqual(m.interval.low, 2.0, places=9)  # 0.75 − 0.73
        self.assertAlmostEqual(m.interval.high, 6.0, places=9)  # 0.77 − 0.71
        self.assertEqual(m.interval.level, 0.9)
        self.assertEqual(m.verdict, claims.REPRODUCED)
        self.assertIn("vs hoyer-reg: -1.00 points [-3.00, +1.00] at 90 %, inconclusive", m.note)
        self.assertIn("scale invariance explains it", m.note)

    def test_verdict_follows_the_threshold_and_a_missing_front(self):
        self.assertEqual(self.measured(threshold=7.0).verdict, claims.NOT_REPRODUCED)
        self.assertEqual(self.measured(threshold=2.0).verdict, claims.INCONCLUSIVE)  # touches the low end
        beyond = self.measured(ratio=32)
        self.assertEqual(beyond.verdict, claims.NOT_MEASURED)
        self.assertIn("reaches 32×", beyond.note)

    def test_better_than_the_controls_too(self):
        m = self.measured(controls=["l1-reg"])
        self.assertIn("not scale invariance alone", m.note)


def preset_run(configuration, optimizer, study, time, ratio, variance=None):
    """A pre-set run: model_cost with `ratio`, time to target `time`, P-SGD's explained-variance ratios; named
    as the specs name them, <configuration>-sgd and <configuration>-psgd (of dldr-psgd)."""
    run = compressed_run("x", study, ratio, 0.8, 0.8)
    del run["compression"]
    variant = f"{configuration}-{optimizer.split('-')[-1]}"
    run.update(variant=variant, optimizer=optimizer, config_hash=variant, label=variant, time_to_target_s=time,
               identity={"model": {"options": {"low_rank_format": configuration, "rank": 4}}},
               optimizer_report={"explained_variance_ratio": variance} if variance else {})
    return run


def balance_runs(times, variances):
    """times: {configuration: (sgd time, dldr-psgd time)}; ratios dense 1, matrix 4, tt 20."""
    ratios = {"dense": 1.0, "matrix": 4.0, "tt": 20.0}
    return [preset_run(c, o, s, times[c][i], ratios[c], variances[c] if o == "dldr-psgd" else None)
            for c in ratios for i, o in enumerate(("sgd", "dldr-psgd")) for s in range(3)]


def balance(results):
    measure = {"kind": "balance", "optimizers": ["sgd", "dldr-psgd"], "dimensions": 2}
    return lowrank.measure_balance(results, Metric(results), measure)


class Balance(unittest.TestCase):
    FALLING = {"dense": [0.5, 0.3, 0.1], "matrix": [0.4, 0.3], "tt": [0.3, 0.2]}  # first 2: 0.8, 0.7, 0.5

    def test_fastest_in_the_middle_and_falling_variance_is_balanced(self):
        value, _, text, verdict, note = balance(
            balance_runs({"dense": (10, 12), "matrix": (8, 6), "tt": (9, 11)}, self.FALLING))
        self.assertEqual(verdict, claims.REPRODUCED)
        self.assertEqual(value, 4.0)
        self.assertEqual(text, "balanced: fastest at 4.0×")
        self.assertIn("intermediate compression (matrix, 4.0×, 6.0 s)", note)
        self.assertIn("falls as compression grows (Spearman ρ = -1.00 over 3 configurations)", note)

    def test_fastest_at_an_end_with_rising_variance_is_not(self):
        rising = {"dense": [0.3, 0.2], "matrix": [0.4, 0.3], "tt": [0.5, 0.4]}
        _, _, _, verdict, note = balance(balance_runs({"dense": (10, 12), "matrix": (8, 9), "tt": (5, 11)}, rising))
        self.assertEqual(verdict, claims.NOT_REPRODUCED)
        self.assertIn("an extreme compression (tt", note)
        self.assertIn("does not fall", note)

    def test_one_condition_alone_is_inconclusive(self):
        _, _, _, verdict, _ = balance(balance_runs({"dense": (10, 12), "matrix": (8, 9), "tt": (5, 11)}, self.FALLING))
        self.assertEqual(verdict, claims.INCONCLUSIVE)

    def test_configuration_of_strips_the_optimizer_or_its_last_word(self):
        for variant, optimizer, configuration in (("tt-r4-psgd", "dldr-psgd", "tt-r4"),
                                                  ("tt-r4-dldr-psgd", "dldr-psgd", "tt-r4"),
                                                  ("matrix-r8-sgd", "sgd", "matrix-r8"), ("dldr-psgd", "dldr-psgd", "dense")):
            self.assertEqual(lowrank.configuration_of({"variant": variant, "optimizer": optimizer}), configuration)


class Drawing(unittest.TestCase):
    def test_method_styles_are_distinct_and_fixed(self):
        colours = [style.color for style in METHOD_STYLES.values()]
        markers = [style.marker for style in METHOD_STYLES.values()]
        self.assertEqual(len(set(colours)), len(colours))
        self.assertEqual(len(set(markers)), len(markers))
        self.assertEqual(Styles({})["effective_rank-reg"], METHOD_STYLES["effective_rank-reg"])

    def test_rank_table_and_figure(self):
        rows = lowrank.rank_rows(RESULTS)
        by_method = {row[0]: row for row in rows}
        # Each method's configurations sit at 4× and 16×, equally far from 8× in log ratio: the more compressed.
        self.assertEqual(by_method["effective_rank-reg"][1:4], ["effective_rank-reg-1", "16.0×", "0.7000"])
        self.assertEqual(by_method["effective_rank-reg"][4], "fc0: 3; fc1: dense")
        self.assertEqual(by_method["l1-reg"][1], "l1-reg-2")  # the 8× run itself
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "x-pareto.png")
            lowrank.pareto_figure(RESULTS, "lowrank-x", path)
            self.assertTrue(os.path.getsize(path) > 0 and os.path.exists(path[:-4] + ".svg"))


if __name__ == "__main__":
    unittest.main()
