"""The papers' claims next to our measurements: what a claim compares, its value, its interval over
studies at the interval's exact level, its verdict, and what the report's verdicts together may get wrong
by chance (docs/protocol.md, Verdicts)."""
import math
from collections import Counter, namedtuple

from . import protocol
from .model import selections

CLAIM_HEADER = ["paper claim", "source", "published", "scale of the claim", "compared",
                "measured here [interval] at its level", "verdict", "our scale"]

# A measured claim: the value with its interval (text), the verdict (text), and the interval's level
# where a criterion was judged on one (else None).
ClaimResult = namedtuple("ClaimResult", "measured verdict level")


def percent(level):
    """0.9 → "90 %", 0.9683 → "96.8 %"."""
    return f"{100 * level:.1f}".rstrip("0").rstrip(".") + " %"


def claim_comparison(measure):
    """What a claim compares, in words: "fngd vs kfac: speedup in time to target (…) > 1"."""
    what = ("speedup in time to target (reference time / time)" if measure["kind"] == "speedup"
            else f"difference in {measure.get('metric', 'the test metric')}")
    if "margin" in measure:
        criterion = f" within ±{measure['margin']:g}"
    elif "direction" in measure:
        criterion = f" {'>' if measure['direction'] == 'greater' else '<'} {measure['threshold']:g}"
    else:
        criterion = " (no criterion stated)"
    return f"{measure['optimizer']} vs {measure['reference']}: {what}{criterion}"


def claim_verdict(results, metric, measure):
    """ClaimResult of a claim's `measure`, each side from the chosen trial per study:
    {"kind": "speedup", "optimizer", "reference", "direction", "threshold"}: the reference's median time to
    target over the optimizer's; {"kind": "final_difference", ..., "metric"}: the optimizer's median test
    metric minus the reference's (accuracy in points); {"kind": "equivalence", ..., "metric", "margin"}:
    the same difference, claimed to lie within ±margin. The interval is the protocol's rank interval."""
    chosen = selections(results, metric)
    row, reference = chosen.get(measure["optimizer"]), chosen.get(measure["reference"])
    if row is None or reference is None:
        return ClaimResult("not run", "—", None)
    if measure["kind"] == "speedup":
        theirs, ours = reference.per_study("time_to_target_s"), row.per_study("time_to_target_s")
        value = protocol.ratio(protocol.median(theirs), protocol.median(ours))
        interval = protocol.speedup_interval(theirs, ours)
        text = lambda value: "∞" if math.isinf(value) else f"{value:.2f}×"
    else:
        ours, theirs = row.chosen_values(metric.final), reference.chosen_values(metric.final)
        if not ours or not theirs:
            return ClaimResult("not run", "—", None)
        scale = 1 if metric.translation else 100  # accuracy differences in points, like BLEU
        value = scale * (protocol.median(ours) - protocol.median(theirs))
        interval = protocol.shift_interval(ours, theirs)
        if interval:
            interval = protocol.Interval(scale * interval.low, scale * interval.high, interval.level)
        text = lambda value: f"{value:+.2f} {'BLEU' if metric.translation else 'points'}"
    if math.isnan(value):
        return ClaimResult("undefined (neither reached the target)", "inconclusive", None)
    measured = text(value) + (f" [{text(interval.low)}, {text(interval.high)}] at {percent(interval.level)}"
                              if interval else " (no interval: fewer than 2 studies a side)")
    if "direction" not in measure and "margin" not in measure:
        return ClaimResult(measured, "no criterion", None)
    outcome = protocol.verdict(interval, measure)
    if interval and interval.level < protocol.TARGET_LEVEL:
        outcome += (f" (at {percent(interval.level)}, below {percent(protocol.TARGET_LEVEL)}: {len(ours)} vs "
                    f"{len(theirs)} studies)")
    return ClaimResult(measured, outcome, interval.level if interval else None)


def chance_note(levels):
    """What the report's verdicts together may get wrong by chance (docs/protocol.md, Verdicts)."""
    bound = protocol.wrong_verdict_bound(levels)
    level_counts = ", ".join(f"{level} ({count})" for level, count in Counter(map(percent, levels)).items())
    needed = 1 - protocol.FAMILY_ERROR / len(levels)
    return (f"{len(levels)} verdicts rest on an interval (levels: {level_counts}). A verdict is wrong only when "
            f"its interval misses the true value, which happens with probability at most 1 − its level (if the "
            f"two sides' per-study values differ by a shift only; more often when their spreads differ, "
            f"docs/protocol.md): by chance one expects at most {bound:.2f} wrong verdicts among these, and the "
            f"chance that any is wrong is at most {percent(min(1.0, bound))} (Bonferroni). Keeping that below "
            f"{percent(protocol.FAMILY_ERROR)} would need every interval at {percent(needed)} or more: at least "
            f"{protocol.studies_for_level(needed)} studies per optimizer.")
