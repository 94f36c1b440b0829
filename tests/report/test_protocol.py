#!/usr/bin/python3
"""Unit tests of the report's protocol (scripts/ngdreport/protocol.py), claims and interval coverage, against
values computed by hand or known by construction (docs/protocol.md has the rules)."""
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ngdreport import claims, coverage, protocol  # noqa: E402
from ngdreport.model import Metric, Selection  # noqa: E402

INF = math.inf

# Three optimizers on two experiments (seconds to target). By hand: w1's best is 10, so A 1, B 2 and
# C 5 > 4 → ∞; w2's best is 10, so A 3, B 1, C ∞ (unreached).
TIMES = {"A": {"w1": 10.0, "w2": 30.0}, "B": {"w1": 20.0, "w2": 10.0}, "C": {"w1": 50.0, "w2": INF}}


def run(study, time, status="completed", steps=None, label="x"):
    return {"study": study, "seed": 100 + study, "status": status, "time_to_target_s": time,
            "steps_to_target": steps, "label": label, "variant": label, "workload": "image"}


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
    GREATER, LESS = {"direction": "greater", "threshold": 1.0}, {"direction": "less", "threshold": 1.0}

    def test_verdict_from_the_interval(self):
        interval = lambda low, high: protocol.Interval(low, high, 0.9)
        self.assertEqual(protocol.verdict(interval(1.2, 1.5), self.GREATER), "reproduced")
        self.assertEqual(protocol.verdict(interval(0.5, 0.9), self.GREATER), "not reproduced")
        self.assertEqual(protocol.verdict(interval(0.9, 1.2), self.GREATER), "inconclusive")
        self.assertEqual(protocol.verdict(interval(0.5, 0.9), self.LESS), "reproduced")
        self.assertEqual(protocol.verdict(interval(1.2, 1.5), self.LESS), "not reproduced")
        self.assertEqual(protocol.verdict(None, self.GREATER), "inconclusive")

    def test_an_interval_touching_the_threshold_is_inconclusive(self):
        for low, high in ((1.0, 1.5), (0.5, 1.0)):
            for criterion in (self.GREATER, self.LESS):
                self.assertEqual(protocol.verdict(protocol.Interval(low, high, 0.9), criterion), "inconclusive")

    def test_equivalence_needs_the_whole_interval_inside_the_margin(self):
        margin = {"margin": 1.0}
        verdict = lambda low, high: protocol.verdict(protocol.Interval(low, high, 0.9), margin)
        self.assertEqual(verdict(-0.5, 0.9), "reproduced")
        self.assertEqual(verdict(-1.0, 0.5), "inconclusive")  # touches the margin
        self.assertEqual(verdict(0.5, 1.5), "inconclusive")
        self.assertEqual(verdict(1.5, 2.0), "not reproduced")
        self.assertEqual(verdict(-3.0, -1.5), "not reproduced")


class RankIntervals(unittest.TestCase):
    def test_the_rank_count_distribution_by_hand(self):
        # 2 vs 2: of the 6 orderings, xxyy gives u = 0, xyxy 1, xyyx and yxxy 2, yxyx 3, yyxx 4.
        self.assertEqual(protocol.rank_count_distribution(2, 2), [1, 1, 2, 1, 1])
        self.assertEqual(protocol.rank_count_distribution(3, 3), [1, 1, 2, 3, 3, 3, 3, 2, 1, 1])
        self.assertEqual(sum(protocol.rank_count_distribution(5, 5)), math.comb(10, 5))
        self.assertEqual(protocol.rank_count_distribution(2, 3), protocol.rank_count_distribution(3, 2))

    def test_levels_the_studies_allow(self):
        # 3 vs 3: the widest interval misses when all x − Δ lie below all y or above: 2/20, so 90 %;
        # the next one also when one pair is out of order: 4/20, so 80 %.
        self.assertEqual(protocol.rank_interval_order(3, 3), (1, 0.9))
        self.assertEqual(protocol.rank_interval_order(3, 3, 0.8), (2, 0.8))
        self.assertEqual(protocol.rank_interval_order(2, 2), (1, 1 - 2 / 6))
        # 5 vs 5: P(U ≤ 2) = 4/252 gives 96.8 %, P(U ≤ 3) = 7/252 only 94.4 %.
        self.assertEqual(protocol.rank_interval_order(5, 5), (3, 1 - 8 / 252))
        self.assertIsNone(protocol.rank_interval_order(1, 3))
        self.assertEqual(protocol.studies_for_level(0.95), 4)

    def test_shift_interval_by_hand(self):
        low, high, level = protocol.shift_interval([1.0, 2.0, 3.0], [0.0, 0.5, 0.75])
        self.assertEqual((low, high, level), (0.25, 3.0, 0.9))  # the smallest and largest difference
        # x − y = 10 + i − j for i, j in 0..4: 6, 7, 7, 8, 8, 8, …, 13, 13, 14; the third from each end.
        self.assertEqual(protocol.shift_interval([10.0, 11.0, 12.0, 13.0, 14.0], [0.0, 1.0, 2.0, 3.0, 4.0]),
                         (7.0, 13.0, 1 - 8 / 252))
        speedup = protocol.speedup_interval([40.0, 60.0, 80.0], [10.0, 20.0, 30.0])
        self.assertAlmostEqual(speedup.low, 40 / 30, places=12)
        self.assertAlmostEqual(speedup.high, 80 / 10, places=12)

    def test_two_unreached_studies_do_not_order_the_optimizers(self):
        # The reference never reached the target; the optimizer did in two studies. ∞ vs ∞ says nothing,
        # so the interval must not exclude a speedup below 1.
        interval = protocol.speedup_interval([INF, INF, INF], [INF, 1.0, 2.0])
        self.assertEqual((interval.low, interval.high), (0.0, INF))
        self.assertEqual(protocol.verdict(interval, self.criterion()), "inconclusive")
        interval = protocol.speedup_interval([INF, INF, INF], [3.0, 1.0, 2.0])
        self.assertEqual(protocol.verdict(interval, self.criterion()), "reproduced")

    @staticmethod
    def criterion():
        return {"direction": "greater", "threshold": 1.0}


def narrowed(interval_function, share):
    """interval_function with `share` of its width (in log time) cut off each end, its level unchanged."""
    def interval(reference_times, times):
        full = interval_function(reference_times, times)
        low, high = math.log(full.low), math.log(full.high)
        cut = share * (high - low)
        return protocol.Interval(math.exp(low + cut), math.exp(high - cut), full.level)
    return interval


class IntervalCoverage(unittest.TestCase):
    """Simulated comparisons with a known speedup and equal spreads, where the rank interval is exact: its
    coverage must reach its stated level, and the check must catch an interval that claims more than it
    covers."""
    EQUAL_SPREADS = [(0.25, 0.25)]

    def holds(self, interval, studies, trials=3000):
        return coverage.holds_its_level(interval, studies, self.EQUAL_SPREADS, trials, seed=1)

    def test_the_protocols_interval_holds_its_level(self):
        for studies in (3, 5):
            self.assertTrue(self.holds(protocol.speedup_interval, studies), studies)

    def test_the_check_catches_the_percentile_bootstrap(self):
        # At 2 and 3 studies its interval is about the widest rank interval, covering 67 % and 90 %, not 95 %.
        for studies in (2, 3):
            bootstrap = coverage.percentile_bootstrap(random.Random(1), resamples=100)
            self.assertFalse(self.holds(bootstrap, studies, trials=1500), studies)

    def test_the_check_catches_a_narrower_interval(self):
        for studies in (3, 5):
            self.assertFalse(self.holds(narrowed(protocol.speedup_interval, 0.1), studies), studies)


def trial(optimizer, study, accuracy):
    return {"optimizer": optimizer, "variant": optimizer, "workload": "image", "label": optimizer,
            "config_hash": optimizer, "study": study, "seed": study, "status": "completed", "time_to_target_s": None, "epochs": [{"val_acc": accuracy, "test_acc": accuracy}]}


class Claims(unittest.TestCase):
    # fngd's final accuracies over three studies lie 0 to 40 points below sgd's: the widest difference,
    # 50 − 50 points, touches the threshold 0.
    RUNS = ([trial("fngd", study, accuracy) for study, accuracy in enumerate((0.3, 0.4, 0.5))] +
            [trial("sgd", study, accuracy) for study, accuracy in enumerate((0.5, 0.6, 0.7))])

    def verdict(self, **measure):
        measure = dict({"kind": "final_difference", "optimizer": "fngd", "reference": "sgd"}, **measure)
        return claims.claim_verdict(self.RUNS, Metric(self.RUNS), measure)

    def test_a_claim_whose_interval_touches_its_threshold_is_inconclusive(self):
        result = self.verdict(direction="greater", threshold=0.0)
        self.assertEqual(result.measured, "-20.00 points [-40.00 points, +0.00 points] at 90 %")
        self.assertEqual(result.verdict, "inconclusive (at 90 %, below 95 %: 3 vs 3 studies)")
        self.assertEqual(result.level, 0.9)
        self.assertTrue(self.verdict(direction="greater", threshold=0.5).verdict.startswith("not reproduced"))

    def test_equivalence_claim(self):
        equivalence = lambda margin: self.verdict(kind="equivalence", margin=margin)
        self.assertTrue(equivalence(40.0).verdict.startswith("inconclusive"))  # touches −40
        self.assertTrue(equivalence(40.5).verdict.startswith("reproduced"))
        self.assertEqual(claims.claim_comparison(dict(kind="equivalence", optimizer="fngd", reference="sgd",
                                                      metric="test_acc", margin=1.5)),
                         "fngd vs sgd: difference in test_acc within ±1.5")

    def test_chance_note_counts_the_verdicts(self):
        note = claims.chance_note([0.9, 0.9, 1 - 8 / 252])
        self.assertIn("3 verdicts rest on an interval (levels: 90 % (2), 96.8 % (1))", note)
        self.assertIn("at most 0.23 wrong verdicts", note)  # 0.1 + 0.1 + 0.032
        self.assertIn("at 98.3 % or more: at least 5 studies per optimizer", note)


if __name__ == "__main__":
    unittest.main()
