#!/usr/bin/python3
"""Unit tests of scripts/ngdreport/protocol.py against values computed by hand (docs/protocol.md has the rules)."""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ngdreport import protocol  # noqa: E402
from ngdreport.model import Metric, Selection  # noqa: E402

INF = math.inf

# Three optimizers on two experiments (seconds to target). By hand: w1's best is 10, so A 1, B 2 and
# C 5 > 4 → ∞; w2's best is 10, so A 3, B 1, C ∞ (unreached).
TIMES = {"A": {"w1": 10.0, "w2": 30.0}, "B": {"w1": 20.0, "w2": 10.0}, "C": {"w1": 50.0, "w2": INF}}


def run(study, time, status="completed", steps=None, label="x"):
    return {"study": study, "seed": 100 + study, "status": status, "time_to_target_s": time,
            "steps_to_target": steps, "label": label}


class Aggregation(unittest.TestCase):
    def test_median_counts_unreached_as_infinite(self):
        self.assertEqual(protocol.median([1.0, INF]), INF)  # even count: the middle two's mean
        self.assertEqual(protocol.median([1.0, 2.0, INF]), 2.0)
        self.assertEqual(protocol.median([3.0, 1.0, 2.0, 4.0]), 2.5)

    def test_unreached_diverged_and_failed_runs_are_infinite(self):
        self.assertEqual(protocol.measure_or_unreached(run(0, 4.0), "time_to_target_s"), 4.0)
        self.assertEqual(protocol.measure_or_unreached(run(0, None), "time_to_target_s"), INF)
        self.assertEqual(protocol.measure_or_unreached(run(0, 4.0, status="diverged"), "time_to_target_s"), INF)

    def test_ratio_of_infinities(self):
        self.assertEqual(protocol.ratio(2.0, INF), 0.0)
        self.assertEqual(protocol.ratio(INF, 2.0), INF)
        self.assertTrue(math.isnan(protocol.ratio(INF, INF)))
        self.assertEqual(protocol.ratio(6.0, 4.0), 1.5)

    def test_best_trial_per_study_then_median_over_studies(self):
        runs = [run(0, 5.0), run(0, 3.0), run(1, None), run(1, 7.0), run(2, None), run(2, None, status="failed")]
        # Per study: 3, 7, ∞ → median 7.
        self.assertEqual(protocol.median_over_studies(runs, "time_to_target_s"), 7.0)
        best = protocol.best_per_study(runs, lambda r: protocol.measure_or_unreached(r, "time_to_target_s"))
        self.assertEqual([r["time_to_target_s"] for r in best.values()], [3.0, 7.0, None])

    def test_files_without_studies_use_the_seed(self):
        runs = [{"seed": 1, "status": "completed", "time_to_target_s": 2.0},
                {"seed": 0, "status": "completed", "time_to_target_s": 4.0}]
        self.assertEqual(list(protocol.best_per_study(runs, lambda r: 0)), [0, 1])


class Scores(unittest.TestCase):
    def test_ratios_to_the_best_with_the_four_times_cut(self):
        ratios = protocol.performance_ratios(TIMES)
        self.assertEqual(ratios["A"], {"w1": 1.0, "w2": 3.0})
        self.assertEqual(ratios["B"], {"w1": 2.0, "w2": 1.0})
        self.assertEqual(ratios["C"], {"w1": INF, "w2": INF})

    def test_an_optimizer_that_did_not_run_an_experiment_is_infinite_there(self):
        ratios = protocol.performance_ratios({"A": {"w1": 1.0}, "B": {"w1": 2.0, "w2": 3.0}})
        self.assertEqual(ratios["A"], {"w1": 1.0, "w2": INF})
        self.assertEqual(ratios["B"], {"w1": 2.0, "w2": 1.0})

    def test_profile_is_the_share_within_tau(self):
        ratios = protocol.performance_ratios(TIMES)
        self.assertEqual(protocol.profile(ratios["A"], 2.99), 0.5)
        self.assertEqual(protocol.profile(ratios["A"], 3.0), 1.0)
        self.assertEqual(protocol.profile(ratios["C"], 4.0), 0.0)

    def test_score_by_hand(self):
        ratios = protocol.performance_ratios(TIMES)
        # B = (1/3)·(1/2)·Σ(4 − r): A (3 + 1)/6, B (2 + 3)/6, C 0.
        self.assertAlmostEqual(protocol.algoperf_score(ratios["A"]), 4 / 6, places=12)
        self.assertAlmostEqual(protocol.algoperf_score(ratios["B"]), 5 / 6, places=12)
        self.assertEqual(protocol.algoperf_score(ratios["C"]), 0.0)

    def test_score_is_the_integral_of_the_profile(self):
        # Independent of the closed form: the trapezoid rule on a fine grid of τ, and on AlgoPerf's
        # 100 points (within 0.01, as the docstring says).
        ratios = protocol.performance_ratios(TIMES)
        for points, tolerance in ((30001, 1e-4), (100, 1e-2)):
            taus = [1 + 3 * i / (points - 1) for i in range(points)]
            for per in ratios.values():
                rho = [protocol.profile(per, tau) for tau in taus]
                area = sum((rho[i] + rho[i + 1]) / 2 * (taus[i + 1] - taus[i]) for i in range(points - 1))
                self.assertAlmostEqual(area / 3, protocol.algoperf_score(per), delta=tolerance)

    def test_geometric_mean_speedup_caps_infinity_at_budget_plus_one(self):
        # w1: 10/5 = 2; w2: the baseline never reached it → (50 + 1)/20; w3 only the baseline ran.
        speedup = protocol.geometric_mean_speedup({"w1": 5.0, "w2": 20.0}, {"w1": 10.0, "w2": INF, "w3": 1.0},
                                                  {"w1": 100.0, "w2": 50.0, "w3": 9.0})
        self.assertAlmostEqual(speedup, math.sqrt(2 * 51 / 20), places=12)
        self.assertIsNone(protocol.geometric_mean_speedup({"w1": 1.0}, {"w2": 1.0}, {"w1": 1.0, "w2": 1.0}))

    def test_ranks_share_ties(self):
        self.assertEqual(protocol.rank({"a": 0.5, "b": 0.9, "c": 0.5}), {"a": 2, "b": 1, "c": 2})


class Budget(unittest.TestCase):
    def test_counts_the_trials_that_ran_not_the_blocks_budget(self):
        # `ngdbench run --max-trials 2` on a block of 3 trials × 2 studies: 2 runs per study.
        tuning = {"trials": 3, "studies": 2, "seed": 0, "space": {"lr": {"log_uniform": [0.01, 0.1]}}}
        runs = [dict(run(study, 1.0 + trial), trial=trial, tuning=tuning, epochs=[{"test_acc": 0.5}],
                     config_hash=f"{study}{trial}") for study in (0, 1) for trial in (0, 1)]
        metric = Metric(runs)
        self.assertEqual(Selection("sgd", runs, metric).budget()[:3], (4, 2, 2))


class Verdicts(unittest.TestCase):
    def test_verdict_from_the_interval(self):
        self.assertEqual(protocol.verdict((1.2, 1.5), "greater", 1.0), "reproduced")
        self.assertEqual(protocol.verdict((0.5, 0.9), "greater", 1.0), "not reproduced")
        self.assertEqual(protocol.verdict((0.9, 1.2), "greater", 1.0), "inconclusive")
        self.assertEqual(protocol.verdict((0.5, 0.9), "less", 1.0), "reproduced")
        self.assertEqual(protocol.verdict(None, "greater", 1.0), "inconclusive")

    def test_bootstrap_is_seeded_and_brackets_the_estimate(self):
        ours, theirs = [2.0, 2.5, 3.0, 2.2, 2.8], [5.0, 6.0, 4.5, 5.5, 7.0]
        statistic = lambda t, o: protocol.ratio(protocol.median(t), protocol.median(o))
        first = protocol.bootstrap_interval([theirs, ours], statistic)
        self.assertEqual(first, protocol.bootstrap_interval([theirs, ours], statistic))
        low, high = first
        self.assertLessEqual(low, statistic(theirs, ours))
        self.assertGreaterEqual(high, statistic(theirs, ours))
        # The extremes a resample can reach: min(theirs)/max(ours) and max(theirs)/min(ours).
        self.assertGreaterEqual(low, 4.5 / 3.0)
        self.assertLessEqual(high, 7.0 / 2.0)
        self.assertEqual(protocol.bootstrap_interval([[3.0, 3.0]], protocol.median), (3.0, 3.0))

    def test_bootstrap_gives_no_interval_when_mostly_undefined(self):
        statistic = lambda t, o: protocol.ratio(protocol.median(t), protocol.median(o))
        self.assertIsNone(protocol.bootstrap_interval([[INF, INF, 1.0], [INF, INF, 1.0]], statistic))


if __name__ == "__main__":
    unittest.main()
