"""The comparison protocol's arithmetic (docs/protocol.md): its one implementation, used by the report and its
tests.

Aggregation (the same rule as harness/results/aggregate.h): a run that never reached its target — or diverged,
or failed — counts as +∞; over seeds or studies the median (an even count: the mean of the middle two,
so ∞ when either is); comparisons are ratios of medians. Selection follows AlgoPerf: per study the best
trial (smallest measure), per optimizer the median over studies.
"""
import math
import statistics
from collections import namedtuple

INF = float("inf")

# AlgoPerf's performance-profile range: ratios to the best above this count as ∞, and the score
# integrates ρ(τ) over [1, MAX_TAU].
MAX_TAU = 4.0
# The level a claim's interval aims at; studies too few to reach it give the highest level they can.
TARGET_LEVEL = 0.95
# The chance of a wrong verdict a whole report may take (Bonferroni over its claims).
FAMILY_ERROR = 0.05

# A claim's interval and its exact level (the chance it covers the true value).
Interval = namedtuple("Interval", "low high level")


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
    """The run's study (schema_version 2 results always have one)."""
    return run["study"]


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


def rank_count_distribution(m, n):
    """counts[u]: how many of the C(m + n, m) orderings of m values x and n values y from one continuous
    distribution have u pairs with x_i > y_j (the Mann–Whitney count's null distribution)."""
    # Built up by the largest value: an x (above all j values y, so u + j) or a y (u unchanged).
    table = {(0, 0): [1]}
    for size in range(1, m + n + 1):
        for i in range(max(0, size - n), min(m, size) + 1):
            j = size - i
            counts = [0] * (i * j + 1)
            for u, count in enumerate(table.get((i - 1, j), [])):
                counts[u + j] += count
            for u, count in enumerate(table.get((i, j - 1), [])):
                counts[u] += count
            table[(i, j)] = counts
    return table[(m, n)]


def rank_interval_order(m, n, level=TARGET_LEVEL):
    """(k, exact level) of the interval [d_(k), d_(mn+1−k)] between order statistics of the m·n pairwise
    differences: the narrowest whose level 1 − 2·P(U ≤ k − 1) is at least `level`, or k = 1, the widest
    and highest level m and n allow, when none is. None below 2 values a side."""
    if min(m, n) < 2:
        return None
    counts = rank_count_distribution(m, n)
    total = sum(counts)
    chosen, tail = None, 0
    for k in range(1, m * n // 2 + 1):
        tail += counts[k - 1]
        achieved = 1 - 2 * tail / total
        if chosen and achieved < level:
            break
        chosen = (k, achieved)
    return chosen


def shift_interval(xs, ys, level=TARGET_LEVEL):
    """Distribution-free interval for the shift Δ in "x − Δ is distributed as y" (Mann–Whitney inverted,
    as Hodges and Lehmann / Moses): the k-th smallest and k-th largest of the differences x_i − y_j, with
    k and the exact level from rank_interval_order. Exact for any continuous distribution the two samples
    share up to the shift; with ties (equal values) its closed ends cover at least that. ∞ − ∞ (neither
    reached the target) could be any difference: −∞ for the low end, +∞ for the high end. None below 2
    values a side."""
    order = rank_interval_order(len(xs), len(ys), level)
    if order is None:
        return None
    k, achieved = order
    differences = lambda both_infinite: sorted(both_infinite if math.isinf(x) and x == y else x - y
                                               for x in xs for y in ys)
    return Interval(differences(-INF)[k - 1], differences(INF)[-k], achieved)


def speedup_interval(reference_times, times, level=TARGET_LEVEL):
    """Interval for the speedup (reference time / time) as the shift of log times; ∞ times allowed."""
    interval = shift_interval([math.log(t) for t in reference_times], [math.log(t) for t in times], level)
    if interval is None:
        return None
    return Interval(math.exp(interval.low), math.exp(interval.high), interval.level)


def verdict(interval, criterion):
    """A claim's verdict from its interval and its criterion ({"direction", "threshold"} or
    {"margin"}): reproduced when the whole interval lies strictly on the claim's side (for an
    equivalence, strictly inside ±margin), not reproduced when it lies strictly on the other side
    (outside ±margin), inconclusive otherwise — an interval that touches the threshold included — and
    when there is no interval."""
    if interval is None:
        return "inconclusive"
    low, high = interval.low, interval.high
    if "margin" in criterion:
        margin = criterion["margin"]
        inside, outside = -margin < low and high < margin, high < -margin or low > margin
    elif criterion["direction"] == "greater":
        inside, outside = low > criterion["threshold"], high < criterion["threshold"]
    else:
        inside, outside = high < criterion["threshold"], low > criterion["threshold"]
    return "reproduced" if inside else "not reproduced" if outside else "inconclusive"


def wrong_verdict_bound(levels):
    """Over claims whose intervals have these levels: a verdict is wrong only when its interval misses
    the true value, so the expected number of wrong verdicts, and (Bonferroni) the chance of any, is at
    most Σ(1 − level)."""
    return sum(1 - level for level in levels)


def studies_for_level(level):
    """The fewest studies a side whose widest rank interval reaches `level`."""
    studies = 2
    while rank_interval_order(studies, studies, level)[1] < level:
        studies += 1
    return studies


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
