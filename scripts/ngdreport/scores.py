"""Scores across the experiments of one scale: AlgoPerf scores and ranks by time and by steps,
geometric-mean speedups and performance profiles (docs/protocol.md, Scores across experiments)."""
from collections import OrderedDict

from . import protocol
from .model import Metric, selections


# Taus at which the scores table lists ρ(τ).
PROFILE_TAUS = (1.0, 1.5, 2.0, 3.0, 4.0)


# The optimizer geometric-mean speedups are measured against.
SPEEDUP_BASELINE = "sgd"


def cross_experiment_scores(experiments):
    """{scale: (header, cells, profiles)} over the experiments of each scale that have a target:
    AlgoPerf scores and ranks by wall-clock time and by steps side by side, geometric-mean speedups vs
    SGD and ρ(τ) by time; profiles = {optimizer: {workload: ratio}} by time, for the plot."""
    by_scale = OrderedDict()
    for (experiment, scale), results in experiments.items():
        if results[0].get("target"):
            by_scale.setdefault(scale, []).append((experiment, results))
    scores = OrderedDict()
    for scale, group in by_scale.items():
        measures = {}
        for measure, cumulative in (("time_to_target_s", "cumulative_train_time_s"), ("steps_to_target", "cumulative_steps")):
            times, budgets = {}, {}
            for experiment, results in group:
                budgets[experiment] = max((r["epochs"][-1][cumulative] for r in results if r["epochs"]), default=0)
                for name, selection in selections(results, Metric(results)).items():
                    times.setdefault(name, {})[experiment] = protocol.median_over_studies(selection.runs, measure)
            ratios = protocol.performance_ratios(times)
            measures[measure] = (times, budgets, ratios, {n: protocol.algoperf_score(r) for n, r in ratios.items()})
        by_time, by_steps = measures["time_to_target_s"], measures["steps_to_target"]
        time_rank, step_rank = protocol.rank(by_time[3]), protocol.rank(by_steps[3])

        def geometric(measured):
            times, budgets = measured[0], measured[1]
            if SPEEDUP_BASELINE not in times:
                return "n/a"
            value = protocol.geometric_mean_speedup(times[name], times[SPEEDUP_BASELINE], budgets)
            return "n/a" if value is None else f"{value:.2f}×"

        header = (["optimizer", "score B (time)", "rank (time)", "score B (steps)", "rank (steps)",
                   f"geo-mean speedup vs {SPEEDUP_BASELINE.upper()} (time)", "(steps)"] +
                  [f"ρ({tau:g}) (time)" for tau in PROFILE_TAUS])
        cells = []
        for name in sorted(by_time[3], key=lambda n: (time_rank[n], n)):
            cells.append([name, f"{by_time[3][name]:.3f}", str(time_rank[name]), f"{by_steps[3][name]:.3f}",
                          str(step_rank[name]), geometric(by_time), geometric(by_steps)] +
                         [f"{protocol.profile(by_time[2][name], tau):.2f}" for tau in PROFILE_TAUS])
        scores[scale] = (header, cells, by_time[2], [experiment for experiment, _ in group])
    return scores
