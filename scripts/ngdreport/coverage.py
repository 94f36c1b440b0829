"""How often a claim's interval holds the true value, simulated for the study counts the suites use with
the per-study spreads of committed runs (docs/protocol.md, Verdicts: the coverage table).

    scripts/interval-coverage.py [RUNS] [--trials N]

A simulated comparison draws `studies` times a side, log-normal: the reference's log time is
log 2 + σ_ref·z, the optimizer's σ·z (z standard normal), so the true speedup is 2. Both intervals
measured here shift and scale with log times, so their coverage depends on the studies and on σ_ref / σ
only: a pair of spreads of the final test metric (points or BLEU) enters as the same ratio.
"""
import argparse
import math
import os
import random
import statistics

from . import protocol
from .load import load_results
from .model import Metric, selections

TRUE_SPEEDUP = 2.0
# The protocol's former interval: resamples and label.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95
# How far below its level a coverage estimate may fall (in standard errors) before the check fails.
ALLOWED_STANDARD_ERRORS = 3


def percentile_bootstrap(generator, resamples=BOOTSTRAP_RESAMPLES):
    """The protocol's former speedup interval, labelled 95 %: percentiles 2.5 and 97.5 of the ratio of
    medians over resamples of each side with replacement."""
    def interval(reference_times, times):
        ratios = sorted(protocol.median(generator.choices(reference_times, k=len(reference_times))) /
                        protocol.median(generator.choices(times, k=len(times))) for _ in range(resamples))
        return protocol.Interval(ratios[int(0.025 * (resamples - 1))], ratios[math.ceil(0.975 * (resamples - 1))],
                                 BOOTSTRAP_LEVEL)
    return interval


def coverage(interval, studies, spreads, trials, seed):
    """(share of `trials` simulated comparisons whose interval(reference_times, times) holds the true
    speedup, the level the interval states); each trial draws its (σ_ref, σ) from `spreads`."""
    generator = random.Random(seed)
    covered, level = 0, None
    for _ in range(trials):
        reference_spread, spread = generator.choice(spreads)
        reference_times = [TRUE_SPEEDUP * math.exp(reference_spread * generator.gauss(0, 1)) for _ in range(studies)]
        times = [math.exp(spread * generator.gauss(0, 1)) for _ in range(studies)]
        result = interval(reference_times, times)
        covered += result.low <= TRUE_SPEEDUP <= result.high
        level = result.level
    return covered / trials, level


def holds_its_level(interval, studies, spreads, trials, seed):
    """Whether the simulated coverage is at least the stated level, less ALLOWED_STANDARD_ERRORS of the
    estimate's sampling error."""
    share, level = coverage(interval, studies, spreads, trials, seed)
    return share >= level - ALLOWED_STANDARD_ERRORS * math.sqrt(level * (1 - level) / trials)


def observed_spreads(experiments):
    """{"time": pairs, "final metric": pairs}: for every two optimizers of one experiment, their spreads
    over studies (standard deviations) of the chosen trials' log time to target (studies that reached
    it, at least two) and of their final test metric."""
    pairs = {"time": [], "final metric": []}
    for results in experiments.values():
        metric = Metric(results)
        spreads = {"time": [], "final metric": []}
        for selection in selections(results, metric).values():
            logs = [math.log(t) for t in selection.per_study("time_to_target_s") if not math.isinf(t)]
            finals = selection.chosen_values(metric.final)
            for kind, values in (("time", logs), ("final metric", finals)):
                if len(values) >= 2 and statistics.stdev(values) > 0:
                    spreads[kind].append(statistics.stdev(values))
        for kind, values in spreads.items():
            pairs[kind] += [(a, b) for i, a in enumerate(values) for j, b in enumerate(values) if i != j]
    return pairs


def coverage_table(experiments, study_counts, trials, seed):
    """Markdown: per study count, the former bootstrap and the rank interval with their stated levels and
    their coverage with equal spreads and with the observed pairs of spreads."""
    observed = observed_spreads(experiments)
    scenarios = [("equal spreads", [(1.0, 1.0)])] + [(f"observed pairs, {kind} ({len(pairs)})", pairs)
                                                      for kind, pairs in observed.items()]
    intervals = [("percentile bootstrap (before)", percentile_bootstrap(random.Random(seed))),
                 ("rank interval (now)", protocol.speedup_interval)]
    lines = ["| studies a side | interval | stated level | " + " | ".join(name for name, _ in scenarios) + " |",
             "|---|---|---|" + "---|" * len(scenarios)]
    for studies in study_counts:
        for name, interval in intervals:
            measured = [coverage(interval, studies, spreads, trials, seed) for _, spreads in scenarios]
            lines.append(f"| {studies} | {name} | {measured[0][1]:.3f} | " +
                         " | ".join(f"{share:.3f}" for share, _ in measured) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "..", "results",
                                                               "cpu-reference", "runs"))
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--studies", type=int, nargs="+", default=[2, 3, 5, 7])
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    print(coverage_table(load_results(args.runs), args.studies, args.trials, args.seed))
    standard_error = math.sqrt(0.9 * 0.1 / args.trials)
    print(f"\n{args.trials} simulated comparisons a cell (standard error about {standard_error:.3f} at 90 %).")
