#!/usr/bin/python3
"""Unit tests of the claims' verdicts (scripts/ngdreport/claims.py, docs/protocol.md, Verdicts): every kind of
measure — speedup, final_difference, equivalence, cost, share, test, not_measurable — on result files built
here with values whose verdicts are computed by hand, entries over several experiments, claims of several
entries, the grouping by paper, the machine-readable verdicts, and the test outcomes read from CTest's JUnit
file, CTest's dashboard folder and Google Test's XML (fixtures/test-outcomes/; CTest 3.25 wrote the first two)."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from ngdreport import claims  # noqa: E402
from ngdreport.model import Metric  # noqa: E402
from ngdreport.testresults import load_test_outcomes, outcomes_from_xml  # noqa: E402

OUTCOMES = os.path.join(HERE, "fixtures", "test-outcomes")
INF = math.inf


def run(optimizer, study, trial=0, epoch_times=(2.0, 1.0, 1.0), accuracy=0.5, time_to_target=None,
        status="completed", suspect_epochs=(), suspect=False, variant=None):
    """A result file: `epoch_times` seconds per epoch, the final test and validation accuracy `accuracy`."""
    epochs, total = [], 0.0
    for index, seconds in enumerate(epoch_times, 1):
        total += seconds
        epochs.append({"epoch": index, "train_time_s": seconds, "cumulative_train_time_s": total,
                       "cumulative_steps": 10 * index, "train_loss": 1.0 / index, "val_acc": accuracy,
                       "test_acc": accuracy, "timing_suspect": "load" if index in suspect_epochs else None})
    return {"schema_version": 2, "experiment": "x", "scale": "cpu", "workload": "image", "optimizer": optimizer,
            "variant": variant or optimizer,
            "label": f"{variant or optimizer} t{trial}", "config_hash": f"{variant or optimizer}-{trial}",
            "run_id": f"{optimizer}-{study}-{trial}", "study": study, "seed": study, "trial": trial, "status": status,
            "time_to_target_s": time_to_target, "steps_to_target": None, "timing_suspect": suspect, "epochs": epochs}


def experiment(runs, name="x", scale="cpu"):
    runs = [dict(r, experiment=name, scale=scale) for r in runs]
    return {(name, scale): runs}


def evaluate(entries, experiments, tests=None):
    metrics = {key: Metric(results) for key, results in experiments.items()}
    return claims.evaluate(entries, experiments, metrics, tests)


def speedup_runs(ours, theirs, optimizer="tengrad", reference="sgd"):
    """Three studies a side with these times to target."""
    return ([run(optimizer, s, time_to_target=t) for s, t in enumerate(ours)] +
            [run(reference, s, time_to_target=t) for s, t in enumerate(theirs)])


SPEEDUP = {"kind": "speedup", "optimizer": "tengrad", "reference": "sgd", "direction": "greater", "threshold": 1.0}


class Cost(unittest.TestCase):
    # fngd: per study two trials whose epochs ≥ 2 have medians 1.3 and 1.1 (study 0), 1.4 and 1.2 (study 1),
    # 1.2 and 1.0 (study 2) → per-study medians 1.2, 1.3, 1.1; its first epoch (10 s, the solves) is left out.
    # Also in study 0: a run whose dear epoch 2 is marked suspect (its median is then 1.2, the study's
    # median stays 1.2), a run all of whose later epochs are suspect (left out) and a diverged run (left out).
    # sgd: one trial per study, medians 1.0, 1.1, 0.9. Ratio of medians 1.2 / 1.0; the 90 % interval spans
    # the extreme ratios 1.1/1.1 = 1.0 and 1.3/0.9 = 1.444.
    RUNS = ([run("fngd", s, t, (10.0, a, b)) for s, pairs in enumerate((((1.2, 1.4), (1.0, 1.2)),
                                                                       ((1.3, 1.5), (1.1, 1.3)),
                                                                       ((1.1, 1.3), (0.9, 1.1))))
             for t, (a, b) in enumerate(pairs)] +
            [run("fngd", 0, 2, (10.0, 50.0, 1.2), suspect_epochs=(2,)),
             run("fngd", 0, 3, (10.0, 50.0, 60.0), suspect_epochs=(2, 3)),
             run("fngd", 0, 4, (10.0, 90.0, 90.0), status="diverged")] +
            [run("sgd", s, 0, (3.0, m, m)) for s, m in enumerate((1.0, 1.1, 0.9))])
    MEASURE = {"kind": "cost", "optimizer": "fngd", "reference": "sgd", "statistic": "median_epoch_time",
               "from_epoch": 2, "direction": "less", "threshold": 1.2}

    def measured(self, **change):
        [entry] = evaluate([{"experiment": "x", "measure": dict(self.MEASURE, **change)}], experiment(self.RUNS))
        return entry.measurements[0]

    def test_per_study_median_over_all_completed_runs(self):
        self.assertEqual(claims.cost_per_study([r for r in self.RUNS if r["optimizer"] == "fngd"], self.MEASURE),
                         [1.2, 1.3, 1.1])

    def test_ratio_interval_and_verdicts(self):
        m = self.measured()
        self.assertAlmostEqual(m.value, 1.2, places=12)
        self.assertAlmostEqual(m.interval.low, 1.0, places=12)
        self.assertAlmostEqual(m.interval.high, 1.3 / 0.9, places=12)
        self.assertEqual(m.interval.level, 0.9)
        self.assertEqual(m.text, "1.20× [1.00×, 1.44×] at 90 %")
        self.assertEqual(m.verdict, claims.INCONCLUSIVE)  # 1.2 lies inside
        self.assertEqual(m.note, "at 90 %, below 95 %: 3 vs 3 studies")
        self.assertEqual(self.measured(threshold=1.5).verdict, claims.REPRODUCED)
        self.assertEqual(self.measured(threshold=0.95).verdict, claims.NOT_REPRODUCED)
        self.assertEqual(self.measured(threshold=1.0).verdict, claims.INCONCLUSIVE)  # touches the low end

    def test_total_training_time_leaves_out_suspect_runs(self):
        runs = ([run("fngd", s, 0, (4.0, 2.0)) for s in range(3)] + [run("fngd", 0, 1, (40.0, 2.0), suspect=True)] +
                [run("adamw", s, 0, (3.0, 2.0)) for s in range(3)])
        [entry] = evaluate([{"experiment": "x", "measure": dict(self.MEASURE, reference="adamw",
                                                                statistic="total_train_time")}], experiment(runs))
        self.assertAlmostEqual(entry.measurements[0].value, 6.0 / 5.0, places=12)

    def test_comparison_in_words(self):
        self.assertEqual(claims.claim_comparison(self.MEASURE),
                         "fngd vs sgd: ratio of median epoch time, epochs ≥ 2 (all completed runs) < 1.2")


class Differences(unittest.TestCase):
    # fngd's final accuracies 0.50, 0.51, 0.52 against sgd's 0.50, 0.505, 0.51: median difference +0.5
    # points, the 90 % interval from the extreme differences −1.0 to +2.0 points.
    RUNS = ([run("fngd", s, accuracy=a) for s, a in enumerate((0.50, 0.51, 0.52))] +
            [run("sgd", s, accuracy=a) for s, a in enumerate((0.50, 0.505, 0.51))])

    def measured(self, measure):
        [entry] = evaluate([{"experiment": "x", "measure": dict({"optimizer": "fngd", "reference": "sgd",
                                                                  "metric": "test_acc"}, **measure)}],
                           experiment(self.RUNS))
        return entry.measurements[0]

    def test_equivalence_inside_the_margin(self):
        m = self.measured({"kind": "equivalence", "margin": 2.5})
        self.assertEqual(m.text, "+0.50 points [-1.00 points, +2.00 points] at 90 %")
        self.assertEqual(m.verdict, claims.REPRODUCED)

    def test_an_interval_wider_than_the_margin_shows_nothing(self):
        self.assertEqual(self.measured({"kind": "equivalence", "margin": 1.5}).verdict, claims.INCONCLUSIVE)
        self.assertEqual(self.measured({"kind": "equivalence", "margin": 2.0}).verdict, claims.INCONCLUSIVE)

    def test_equivalence_wholly_outside_the_margin(self):
        runs = ([run("fngd", s, accuracy=a) for s, a in enumerate((0.60, 0.61, 0.62))] +
                [run("sgd", s, accuracy=a) for s, a in enumerate((0.50, 0.505, 0.51))])
        [entry] = evaluate([{"experiment": "x", "measure": {"kind": "equivalence", "optimizer": "fngd",
                                                            "reference": "sgd", "metric": "test_acc",
                                                            "margin": 2.0}}], experiment(runs))
        self.assertEqual(entry.verdict, claims.NOT_REPRODUCED)  # better by more than the margin fails it too

    def test_final_difference(self):
        self.assertEqual(self.measured({"kind": "final_difference", "direction": "greater",
                                        "threshold": -1.5}).verdict, claims.REPRODUCED)
        self.assertEqual(self.measured({"kind": "final_difference", "direction": "greater",
                                        "threshold": 0.0}).verdict, claims.INCONCLUSIVE)


class Speedups(unittest.TestCase):
    def test_speedup_reproduced_by_hand(self):
        # sgd 40, 60, 80 s against tengrad 10, 20, 30 s: 3×, interval [40/30, 80/10].
        [entry] = evaluate([{"experiment": "x", "measure": SPEEDUP}], experiment(speedup_runs((10, 20, 30), (40, 60, 80))))
        m = entry.measurements[0]
        self.assertEqual((m.text, m.verdict), ("3.00× [1.33×, 8.00×] at 90 %", claims.REPRODUCED))

    def test_an_optimizer_without_runs_is_not_measured(self):
        runs = [run("sgd", s, time_to_target=1.0) for s in range(3)]
        [entry] = evaluate([{"experiment": "x", "measure": SPEEDUP}], experiment(runs))
        self.assertEqual(entry.verdict, claims.NOT_MEASURED)
        self.assertEqual(entry.measurements[0].note, "no runs of tengrad")

    def test_a_malformed_measure_is_not_measured_and_does_not_stop_the_report(self):
        [entry] = evaluate([{"experiment": "x", "measure": {"kind": "speedup"}}],
                           experiment(speedup_runs((1, 1, 1), (1, 1, 1))))
        self.assertEqual(entry.verdict, claims.NOT_MEASURED)
        self.assertIn("malformed measure", entry.measurements[0].note)


class SeveralExperiments(unittest.TestCase):
    REPRODUCED = speedup_runs((10, 20, 30), (40, 60, 80))    # 3× [1.33, 8]
    INCONCLUSIVE = speedup_runs((10, 20, 30), (15, 25, 35))  # [0.5, 3.5]
    NOT_REPRODUCED = speedup_runs((40, 60, 80), (10, 20, 30))

    def entry(self, measure, **experiments_runs):
        experiments = {}
        for name, runs in experiments_runs.items():
            experiments.update(experiment(runs, name))
        claim = {"experiments": ["a", "b", "c"], "measure": measure,
                 "not_measurable_here": {"c": "CIFAR-100 is not on this machine"}}
        [entry] = evaluate([claim], experiments)
        return entry

    def test_reproduced_only_when_every_measured_experiment_is(self):
        self.assertEqual(self.entry(SPEEDUP, a=self.REPRODUCED, b=self.REPRODUCED).verdict, claims.REPRODUCED)
        self.assertEqual(self.entry(SPEEDUP, a=self.REPRODUCED, b=self.INCONCLUSIVE).verdict, claims.INCONCLUSIVE)
        self.assertEqual(self.entry(SPEEDUP, a=self.REPRODUCED, b=self.NOT_REPRODUCED).verdict,
                         claims.NOT_REPRODUCED)

    def test_experiments_without_results_are_named_with_the_reason(self):
        entry = self.entry(SPEEDUP, a=self.REPRODUCED)
        self.assertEqual(entry.verdict, claims.REPRODUCED)
        by_name = {m.experiment: m for m in entry.measurements}
        self.assertEqual((by_name["b"].verdict, by_name["b"].note), (claims.NOT_MEASURED, "no results"))
        self.assertEqual((by_name["c"].verdict, by_name["c"].note),
                         (claims.NOT_MEASURABLE, "CIFAR-100 is not on this machine"))

    def test_an_entry_without_any_results(self):
        self.assertEqual(self.entry(SPEEDUP).verdict, claims.NOT_MEASURED)
        [entry] = evaluate([{"experiments": ["c"], "measure": SPEEDUP, "not_measurable_here": {"c": "why"}}], {})
        self.assertEqual(entry.verdict, claims.NOT_MEASURABLE)

    def test_share_at_least_half(self):
        share = {"kind": "share", "optimizer": "tengrad", "reference": "sgd", "min_share": 0.5,
                 "per_experiment": {"kind": "speedup", "direction": "greater", "threshold": 1.0}}
        # 1 of 2 measured experiments reproduced (c cannot be measured): 1 ≥ 0.5 · 2.
        entry = self.entry(share, a=self.REPRODUCED, b=self.INCONCLUSIVE)
        self.assertEqual(entry.verdict, claims.REPRODUCED)
        self.assertEqual(entry.note, "reproduced in 1 of 2 measured experiments (1 inconclusive); the claim needs 50 %")
        # None reproduced, one inconclusive: were it a win, 1 of 2 would do.
        self.assertEqual(self.entry(share, a=self.NOT_REPRODUCED, b=self.INCONCLUSIVE).verdict, claims.INCONCLUSIVE)
        self.assertEqual(self.entry(share, a=self.NOT_REPRODUCED, b=self.NOT_REPRODUCED).verdict,
                         claims.NOT_REPRODUCED)
        self.assertEqual(self.entry(share).verdict, claims.NOT_MEASURED)
        self.assertEqual(claims.claim_comparison(share), "tengrad vs sgd: speedup in time to target (reference time "
                                                         "/ time) > 1 in at least 50 % of the experiments")


class Tests(unittest.TestCase):
    MEASURE = {"kind": "test", "executable": "ngdbench_numerical_tests",
               "tests": ["Fngd/FngdCoefficientSets.FirstEpochStepIsTheDampedNaturalGradient/*"]}

    def entry(self, measure, tests):
        [entry] = evaluate([{"measure": measure}], {}, tests)
        return entry

    def test_ctest_junit_file(self):
        outcomes = outcomes_from_xml(os.path.join(OUTCOMES, "ctest-junit.xml"))
        self.assertEqual({name: o["status"] for name, o in outcomes.items()}, {
            "Fngd/FngdCoefficientSets.FirstEpochStepIsTheDampedNaturalGradient/0": "passed",
            "Fngd/FngdCoefficientSets.FirstEpochStepIsTheDampedNaturalGradient/1": "passed",
            "Tengrad.ReusesStatisticsAndFactorBetweenRefreshes": "failed",
            "SngdEquivalence.GdStepOnTheReconstructedNetworkIsSngdsStepOnTheOriginal": "skipped",
            "Fngd.TrainsThroughTheRunnerWithoutInversionAfterTheFirstEpoch": "skipped",
            "SngdEquivalence.DistanceOfItsNaturalGradientFromTheExactOneIsMeasured": "passed"})
        self.assertEqual(outcomes["SngdEquivalence.DistanceOfItsNaturalGradientFromTheExactOneIsMeasured"]["output"],
                         ["SNGD vs exact damped NGD (damping 1): relative distance 0.4, cosine 0.9"])

    def test_ctest_dashboard_folder(self):
        # build/Testing of `ctest -T Test` (CTest 3.25, same tests): the TAG file names the run's folder, and
        # the output CTest compressed (base64 of zlib) is read back.
        outcomes = load_test_outcomes(os.path.join(OUTCOMES, "Testing"))
        junit = outcomes_from_xml(os.path.join(OUTCOMES, "ctest-junit.xml"))
        self.assertEqual({n: o["status"] for n, o in outcomes.items()}, {n: o["status"] for n, o in junit.items()})
        name = "SngdEquivalence.DistanceOfItsNaturalGradientFromTheExactOneIsMeasured"
        self.assertEqual(outcomes[name]["output"], junit[name]["output"])

    def test_verdicts_from_the_outcomes(self):
        outcomes = outcomes_from_xml(os.path.join(OUTCOMES, "ctest-junit.xml"))
        entry = self.entry(self.MEASURE, outcomes)
        self.assertEqual((entry.verdict, entry.measurements[0].text), (claims.REPRODUCED, "2/2 tests passed"))
        failing = dict(self.MEASURE, tests=["Tengrad.ReusesStatisticsAndFactorBetweenRefreshes", "Fngd/*"])
        entry = self.entry(failing, outcomes)
        self.assertEqual((entry.verdict, entry.measurements[0].text), (claims.NOT_REPRODUCED, "2/3 tests passed"))
        skipped = dict(self.MEASURE, tests=["SngdEquivalence.GdStep*", "Fngd.TrainsThrough*"])
        self.assertEqual(self.entry(skipped, outcomes).verdict, claims.INCONCLUSIVE)  # none ran
        self.assertEqual(self.entry(self.MEASURE, None).verdict, claims.TESTS_NOT_RUN)
        self.assertEqual(self.entry(self.MEASURE, None).measurements[0].note,
                         "no test results given: `make test-verdicts` writes results/test-verdicts.json")

    def test_recorded_properties_and_gtest_xml(self):
        measure = {"kind": "test", "tests": ["SngdEquivalence.*"], "holds_under": "the Kronecker Fisher",
                   "records": "SngdEquivalence.DistanceOfItsNaturalGradientFromTheExactOneIsMeasured"}
        gtest = outcomes_from_xml(os.path.join(OUTCOMES, "gtest.xml"))
        self.assertEqual(gtest["Fngd/FngdCoefficientSets.FirstEpochStepIsTheDampedNaturalGradient/2"]["status"],
                         "failed")
        entry = self.entry(measure, gtest)
        self.assertEqual(entry.verdict, claims.REPRODUCED)
        self.assertEqual(entry.note, "holds under: the Kronecker Fisher; SngdEquivalence.DistanceOfItsNatural"
                                     "GradientFromTheExactOneIsMeasured recorded damping_1_cosine_to_exact_ngd = 0.9, "
                                     "damping_1_relative_distance_to_exact_ngd = 0.4")
        # Without gtest's XML, what the test printed stands for its properties.
        entry = self.entry(measure, outcomes_from_xml(os.path.join(OUTCOMES, "ctest-junit.xml")))
        self.assertTrue(entry.note.endswith("recorded SNGD vs exact damped NGD (damping 1): relative distance 0.4, "
                                            "cosine 0.9"), entry.note)

    def test_the_test_verdicts_script_round_trip(self):
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "test-verdicts.json")
            subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "test-verdicts.py"),
                            "--junit", os.path.join(OUTCOMES, "ctest-junit.xml"), "--gtest-xml",
                            os.path.join(OUTCOMES, "gtest.xml"), "--out", out], check=True, capture_output=True)
            outcomes = load_test_outcomes(out)
            # Only the tests the claims file names; a failure in either file is a failure.
            self.assertEqual(outcomes["Fngd/FngdCoefficientSets.FirstEpochStepIsTheDampedNaturalGradient/2"]["status"],
                             "failed")
            self.assertEqual(outcomes["SngdEquivalence.DistanceOfItsNaturalGradientFromTheExactOneIsMeasured"]
                             ["properties"]["damping_1_cosine_to_exact_ngd"], "0.9")
            self.assertTrue(all(name.startswith(("Fngd", "Tengrad", "SngdEquivalence", "StridePadding"))
                                for name in outcomes))
            with open(out) as file:
                self.assertEqual(json.load(file)["sources"], ["ctest-junit.xml", "gtest.xml"])


class NotMeasurable(unittest.TestCase):
    def test_reason_instead_of_a_verdict(self):
        [entry] = evaluate([{"measure": {"kind": "not_measurable", "reason": "a theorem"}}], {})
        self.assertEqual((entry.verdict, entry.measurements[0].note), (claims.NOT_MEASURABLE, "a theorem"))
        self.assertEqual(claims.claim_comparison({"kind": "not_measurable"}), "—")


class Claims(unittest.TestCase):
    def test_entries_of_one_claim_combine_and_papers_fold_versions(self):
        experiments = experiment(speedup_runs((10, 20, 30), (40, 60, 80)))
        entries = evaluate([
            {"claim": "fast", "paper": "P, arXiv 1 v1", "experiment": "x", "measure": SPEEDUP},
            {"claim": "fast", "paper": "P, arXiv 1 v2", "experiments": ["y"], "measure": SPEEDUP,
             "not_measurable_here": {"y": "no data"}},
            {"claim": "theorem", "paper": "P, arXiv 1 v1/v2", "measure": {"kind": "not_measurable", "reason": "r"}},
            {"claim": "slow", "paper": "Q", "experiment": "x", "measure": dict(SPEEDUP, direction="less")},
            {"claim": "slow", "paper": "Q", "experiment": "x", "measure": {"kind": "test", "tests": ["T.*"]}},
        ], experiments)
        papers = claims.by_paper(entries)
        self.assertEqual(list(papers), ["P, arXiv 1", "Q"])
        self.assertEqual(list(papers["P, arXiv 1"]), ["fast", "theorem"])
        self.assertEqual(claims.claim_verdict_of(papers["P, arXiv 1"]["fast"]), claims.REPRODUCED)
        self.assertEqual(claims.claim_verdict_of(papers["P, arXiv 1"]["theorem"]), claims.NOT_MEASURABLE)
        self.assertEqual(claims.claim_verdict_of(papers["Q"]["slow"]), claims.NOT_REPRODUCED)
        self.assertEqual(claims.levels_of(entries), [0.9, 0.9])

    def test_combine(self):
        c = claims.combine
        self.assertEqual(c([claims.NOT_MEASURABLE, claims.INCONCLUSIVE, claims.REPRODUCED]), claims.INCONCLUSIVE)
        self.assertEqual(c([claims.NOT_MEASURABLE, claims.NOT_MEASURED]), claims.NOT_MEASURED)
        self.assertEqual(c([claims.NOT_MEASURABLE, claims.TESTS_NOT_RUN]), claims.TESTS_NOT_RUN)
        self.assertEqual(c([claims.NO_CRITERION]), claims.NO_CRITERION)

    def test_machine_readable_verdicts(self):
        experiments = experiment(speedup_runs((10, 20, 30), (INF, 60, INF)))  # sgd's median study missed: ∞
        entries = evaluate([{"claim": "fast", "paper": "P", "experiments": ["x", "z"], "measure": SPEEDUP}],
                           experiments)
        rows = claims.verdict_rows(entries)
        self.assertEqual([(r["scope"], r.get("experiment"), r["verdict"]) for r in rows],
                         [("experiment", "x", claims.REPRODUCED), ("experiment", "z", claims.NOT_MEASURED),
                          ("entry", None, claims.REPRODUCED), ("claim", None, claims.REPRODUCED)])
        self.assertEqual((rows[0]["measured"], rows[0]["ci_high"], rows[0]["ci_level"]), (INF, INF, 0.9))
        document = claims.verdicts_document(entries, "claims.json")
        measurement = document["papers"][0]["claims"][0]["entries"][0]["measurements"][0]
        self.assertEqual((measurement["value"], measurement["ci_high"]), ("Infinity", "Infinity"))
        self.assertEqual(document["papers"][0]["claims"][0]["entries"][0]["measurements"][1]["note"], "no results")
        json.dumps(document, allow_nan=False)  # valid JSON: no NaN or Infinity literals


if __name__ == "__main__":
    unittest.main()
