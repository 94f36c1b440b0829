"""The comparison protocol's arithmetic (docs/protocol.md): its one implementation, used by the report and its
tests.

Aggregation (the same rule as harness/aggregate.h): a run that never reached its target — or diverged,
or failed — counts as +∞; over seeds or studies the median (an even count: the mean of the middle two,
so ∞ when either is); comparisons are ratios of medians. Selection follows AlgoPerf: per study the best
trial (smallest measure), per optimizer the median over studies.
"""
import math
import random
import statistics

INF = float("inf")

# AlgoPerf's performance-profile range: ratios to the best above this count as ∞, and the score
# integrates ρ(τ) over [1, MAX_TAU].
MAX_TAU = 4.0
# Bootstrap resamples for a claim's confidence interval, and the seed that makes it reproducible.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20260301
# Share of resamples that may be undefined (∞/∞) before an interval is not stated.
MAX_UNDEFINED_SHARE = 0.025


def median(values):
    """The median of a non-empty list that may hold ∞ (statistics.median averages the middle two)."""
    return statistics.median(values)


def measure_or_unreached(run, measure):
    """`measure` ("time_to_target_s" or "steps_to_target") of a completed run that reached the target, else ∞."""
    if run.get("status") != "completed":
        return INF
    value = run.get(measure)
    return INF if value is None else float(value)


def ratio(numerator, denominator):
    """numerator / denominator with x/∞ = 0, ∞/x = ∞ and ∞/∞ undefined (NaN)."""
    if math.isinf(numerator) and math.isinf(denominator):
        return math.nan
    if math.isinf(denominator):
        return 0.0
    return numerator / denominator


def study_of(run):
    """The run's study: its "study" field, or its seed in files written before studies."""
    return run["study"] if run.get("study") is not None else run["seed"]


def best_per_study(runs, key):
    """{study: the run with the smallest key(run)} — ties keep the first in the given order."""
    best = {}
    for run in runs:
        study = study_of(run)
        if study not in best or key(run) < key(best[study]):
            best[study] = run
    return dict(sorted(best.items()))


def median_over_studies(runs, measure):
    """AlgoPerf's rule for one optimizer: per study the best trial's measure, then the median (∞ if none)."""
    if not runs:
        return INF
    return median([measure_or_unreached(run, measure)
                   for run in best_per_study(runs, lambda r: measure_or_unreached(r, measure)).values()])


def bootstrap_interval(samples, statistic, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED):
    """95 % percentile bootstrap interval of statistic(*resampled) where each list in `samples` (e.g. the
    per-study values of an optimizer and of its reference) is resampled with replacement on its own.
    Returns (low, high), or None when more than MAX_UNDEFINED_SHARE of the resamples are undefined."""
    generator = random.Random(seed)
    values, undefined = [], 0
    for _ in range(resamples):
        value = statistic(*[[generator.choice(sample) for _ in sample] for sample in samples])
        if math.isnan(value):
            undefined += 1
        else:
            values.append(value)
    if undefined > MAX_UNDEFINED_SHARE * resamples:
        return None
    values.sort()
    return values[int(0.025 * (len(values) - 1))], values[int(math.ceil(0.975 * (len(values) - 1)))]


def verdict(interval, direction, threshold):
    """reproduced when the whole interval lies on the claim's side of the threshold, not reproduced when
    it lies wholly on the other side, inconclusive when it straddles it (or there is no interval)."""
    if interval is None:
        return "inconclusive"
    low, high = interval
    if direction == "greater":
        return "reproduced" if low > threshold else "not reproduced" if high <= threshold else "inconclusive"
    return "reproduced" if high < threshold else "not reproduced" if low >= threshold else "inconclusive"


def performance_ratios(times):
    """{optimizer: {workload: r}} from {optimizer: {workload: time}}: each time over the workload's best,
    ∞ for a time above MAX_TAU × the best (AlgoPerf), for ∞ times and for workloads an optimizer did not
    run. A workload no optimizer reached gives every optimizer ∞ there."""
    workloads = sorted({w for per in times.values() for w in per})
    ratios = {}
    for optimizer, per in times.items():
        ratios[optimizer] = {}
        for workload in workloads:
            best = min(t.get(workload, INF) for t in times.values())
            time = per.get(workload, INF)
            ratios[optimizer][workload] = INF if math.isinf(time) or time > MAX_TAU * best else time / best
    return ratios


def profile(ratios_of_one, tau):
    """ρ(τ): the share of workloads whose ratio is at most τ."""
    return sum(r <= tau for r in ratios_of_one.values()) / len(ratios_of_one)


def algoperf_score(ratios_of_one):
    """B = 1/(MAX_TAU − 1) ∫₁^MAX_TAU ρ(τ) dτ, exactly: ρ steps up by 1/|W| at each finite ratio r ≤ MAX_TAU,
    which adds (MAX_TAU − r)/|W| to the integral. (AlgoPerf's scoring evaluates the same integral with
    the trapezoid rule on 100 points of τ, within 0.01 of this.)"""
    area = sum(MAX_TAU - r for r in ratios_of_one.values() if r <= MAX_TAU) / len(ratios_of_one)
    return area / (MAX_TAU - 1)


def geometric_mean_speedup(times, baseline_times, budgets):
    """Geometric mean over the workloads both ran of baseline time / time, an ∞ time counting as the
    workload's budget + 1 (AlgoPerf's compute_speedups). None without a shared workload."""
    logs = []
    for workload, time in times.items():
        if workload not in baseline_times:
            continue
        capped = lambda t: budgets[workload] + 1 if math.isinf(t) else t
        logs.append(math.log(capped(baseline_times[workload]) / capped(time)))
    return math.exp(sum(logs) / len(logs)) if logs else None


def rank(scores):
    """{name: 1-based rank} by descending score (ties share the better rank)."""
    ordered = sorted(scores.values(), reverse=True)
    return {name: ordered.index(score) + 1 for name, score in scores.items()}
