"""The papers' claims next to our measurements: what a claim compares, its value, its interval over
studies and its verdict (docs/protocol.md, Verdicts)."""
import math

from . import protocol
from .model import selections


def claim_comparison(measure):
    """What a claim compares, in words: "fngd/kfac speedup in time to target > 1"."""
    what = ("speedup in time to target (reference time / time)" if measure["kind"] == "speedup"
            else f"difference in {measure.get('metric', 'the test metric')}")
    criterion = (f" {'>' if measure['direction'] == 'greater' else '<'} {measure['threshold']:g}"
                 if "direction" in measure else " (no criterion stated)")
    return f"{measure['optimizer']} vs {measure['reference']}: {what}{criterion}"


def claim_verdict(results, metric, measure):
    """(measured value with its 95 % bootstrap interval over studies, verdict) for a claim's `measure`:
    {"kind": "speedup", "optimizer", "reference", "direction", "threshold"}: the reference's median time to
    target over the optimizer's (each the chosen trial per study), or {"kind": "final_difference", ...,
    "metric"}: the difference of the chosen trials' median test metrics (accuracy in points)."""
    chosen = selections(results, metric)
    row, reference = chosen.get(measure["optimizer"]), chosen.get(measure["reference"])
    if row is None or reference is None:
        return "not run", "—"
    if measure["kind"] == "speedup":
        samples = [reference.per_study("time_to_target_s"), row.per_study("time_to_target_s")]
        statistic = lambda theirs, ours: protocol.ratio(protocol.median(theirs), protocol.median(ours))
        text = lambda value: "∞" if math.isinf(value) else f"{value:.2f}×"
    else:
        samples = [row.chosen_values(metric.final), reference.chosen_values(metric.final)]
        if not all(samples):
            return "not run", "—"
        scale = 1 if metric.translation else 100  # accuracy differences in points, like BLEU
        statistic = lambda ours, theirs: scale * (protocol.median(ours) - protocol.median(theirs))
        text = lambda value: f"{value:+.2f} {'BLEU' if metric.translation else 'points'}"
    value = statistic(*samples)
    if math.isnan(value):
        return "undefined (neither reached the target)", "inconclusive"
    if min(len(x) for x in samples) < 2:
        interval, interval_text = None, " (no interval: one study)"
    else:
        interval = protocol.bootstrap_interval(samples, statistic)
        interval_text = (f" [{text(interval[0])}, {text(interval[1])}]" if interval else
                         " (no interval: in many resamples neither reached the target)")
    if "direction" not in measure:
        return text(value) + interval_text, "no criterion"
    return text(value) + interval_text, protocol.verdict(interval, measure["direction"], measure["threshold"])


CLAIM_HEADER = ["paper claim", "source", "published", "scale of the claim", "compared", "measured here [95 % CI]",
                "verdict", "our scale"]
