"""The papers' claims next to our measurements (docs/protocol.md, Verdicts): every kind of measure
(speedup, final_difference, equivalence, cost, share, test, not_measurable; the low-rank survey's
compression_difference and balance in lowrank.py), a verdict per experiment
with its interval at the interval's exact level, one per entry of the claims file (its experiments
together), one per claim (the entries that share its `claim` id), grouped by paper; and what the
report's verdicts together may get wrong by chance."""
import math
import re
from collections import Counter, OrderedDict, namedtuple

from . import lowrank, protocol
from .model import selections

# Verdicts. The first three are decided by an interval (or by tests); the others say why there is none.
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_MEASURABLE = "not measurable here"
NOT_MEASURED = "not measured here"
TESTS_NOT_RUN = "not measured: run the tests"
NO_CRITERION = "no criterion"
DECIDED = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)

CLAIM_HEADER = ["paper claim", "source", "published", "scale of the claim", "compared",
                "measured here [interval] at its level", "verdict", "our scale"]

# One claim entry measured on one experiment (experiment None for tests and unmeasurable claims):
# value (float or None), interval (protocol.Interval or None), text (the value and interval in words),
# verdict (one of the verdicts above) and note (why, or the interval's level when below 95 %).
Measurement = namedtuple("Measurement", "experiment scale value interval text verdict note")

# One entry of the claims file: its 1-based position (the export's claims.claim), the entry itself,
# its measurements, the entry's verdict and a note beyond the measurements' (a share's count, what a
# test claim holds under and what its recording test recorded).
EntryResult = namedtuple("EntryResult", "index claim measurements verdict note")

# A measured claim as claim_verdict returns it: the value with its interval (text), the verdict (text)
# and the interval's level where a criterion was judged on one (else None).
ClaimResult = namedtuple("ClaimResult", "measured verdict level")


def percent(level):
    """0.9 → "90 %", 0.9683 → "96.8 %"."""
    return f"{100 * level:.1f}".rstrip("0").rstrip(".") + " %"


def verdict_text(verdict, note):
    return f"{verdict} ({note})" if note else verdict


COST_STATISTICS = {"median_epoch_time": "median epoch time", "total_train_time": "total training time"}


def claim_comparison(measure):
    """What a claim compares, in words: "fngd vs kfac: speedup in time to target (…) > 1"."""
    kind = measure.get("kind")
    if kind == "not_measurable":
        return "—"
    if kind == "test":
        return "tests: " + ", ".join(measure.get("tests", []))
    if kind in lowrank.MEASURES:
        return lowrank.comparison(measure)
    if kind == "share":
        inner = dict(measure.get("per_experiment", {}), optimizer=measure["optimizer"], reference=measure["reference"])
        return f"{claim_comparison(inner)} in at least {percent(measure.get('min_share', 0.5))} of the experiments"
    if kind == "speedup":
        what = "speedup in time to target (reference time / time)"
    elif kind == "cost":
        statistic = measure.get("statistic", "median_epoch_time")
        what = f"ratio of {COST_STATISTICS.get(statistic, statistic)}"
        if statistic == "median_epoch_time":
            what += f", epochs ≥ {measure.get('from_epoch', 1)}"
        what += " (all completed runs)"
    else:
        what = f"difference in {measure.get('metric', 'the test metric')}"
    if "margin" in measure:
        criterion = f" within ±{measure['margin']:g}"
    elif "direction" in measure:
        criterion = f" {'>' if measure['direction'] == 'greater' else '<'} {measure['threshold']:g}"
    else:
        criterion = " (no criterion stated)"
    return f"{measure['optimizer']} vs {measure['reference']}: {what}{criterion}"


def cost_of_run(run, measure):
    """A run's time for a cost measure: its median train_time_s over epochs ≥ from_epoch (suspect epochs
    left out) or its total training time (None when the run's clock was suspect); None when nothing is left."""
    if run.get("status") != "completed" or not run.get("epochs"):
        return None
    if measure.get("statistic", "median_epoch_time") == "total_train_time":
        if run.get("timing_suspect"):
            return None
        return run["epochs"][-1].get("cumulative_train_time_s")
    first = measure.get("from_epoch", 1)
    times = [e["train_time_s"] for e in run["epochs"]
             if e.get("epoch", 0) >= first and not e.get("timing_suspect") and e.get("train_time_s") is not None]
    return protocol.median(times) if times else None


def cost_per_study(runs, measure):
    """Per study, the median over all its completed runs of cost_of_run (docs/protocol.md: not the chosen
    trial's alone)."""
    studies = OrderedDict()
    for run in runs:
        value = cost_of_run(run, measure)
        if value is not None and value > 0:
            studies.setdefault(protocol.study_of(run), []).append(value)
    return [protocol.median(values) for _, values in sorted(studies.items())]


def measure_experiment(results, metric, measure):
    """(value, interval, text, verdict, note) of a speedup, final_difference, equivalence or cost measure
    on one experiment's results. Speedups and differences compare the chosen trial per study; costs all
    completed runs. The interval is the protocol's rank interval at its exact level. The low-rank kinds
    (compression_difference, balance) are measured by lowrank.py."""
    if measure["kind"] in lowrank.MEASURES:
        return lowrank.MEASURES[measure["kind"]](results, metric, measure)
    chosen = selections(results, metric)
    missing = [name for name in (measure["optimizer"], measure["reference"]) if name not in chosen]
    if missing:
        return None, None, "not run", NOT_MEASURED, f"no runs of {' and '.join(missing)}"
    row, reference = chosen[measure["optimizer"]], chosen[measure["reference"]]
    kind = measure["kind"]
    if kind == "speedup":
        theirs, ours = reference.per_study("time_to_target_s"), row.per_study("time_to_target_s")
        value = protocol.ratio(protocol.median(theirs), protocol.median(ours))
        interval = protocol.speedup_interval(theirs, ours)
        text = lambda value: "∞" if math.isinf(value) else f"{value:.2f}×"
    elif kind == "cost":
        ours, theirs = cost_per_study(row.runs, measure), cost_per_study(reference.runs, measure)
        if not ours or not theirs:
            return None, None, "not run", NOT_MEASURED, "no completed run with a clean clock on one side"
        value = protocol.ratio(protocol.median(ours), protocol.median(theirs))
        interval = protocol.speedup_interval(ours, theirs)  # ours / theirs, as the shift of log times
        text = lambda value: f"{value:.2f}×"
    elif kind in ("final_difference", "equivalence"):
        ours, theirs = row.chosen_values(metric.final), reference.chosen_values(metric.final)
        if not ours or not theirs:
            return None, None, "not run", NOT_MEASURED, "no completed chosen run on one side"
        scale = 1 if metric.translation else 100  # accuracy differences in points, like BLEU
        value = scale * (protocol.median(ours) - protocol.median(theirs))
        interval = protocol.shift_interval(ours, theirs)
        if interval:
            interval = protocol.Interval(scale * interval.low, scale * interval.high, interval.level)
        text = lambda value: f"{value:+.2f} {'BLEU' if metric.translation else 'points'}"
    else:
        raise ValueError(f"measure kind {kind!r} is not measured on one experiment")
    if math.isnan(value):
        return None, None, "undefined (neither reached the target)", INCONCLUSIVE, None
    measured = text(value) + (f" [{text(interval.low)}, {text(interval.high)}] at {percent(interval.level)}"
                              if interval else " (no interval: fewer than 2 studies a side)")
    if "direction" not in measure and "margin" not in measure:
        return value, interval, measured, NO_CRITERION, None
    outcome = protocol.verdict(interval, measure)
    note = None
    if interval and interval.level < protocol.TARGET_LEVEL:
        note = (f"at {percent(interval.level)}, below {percent(protocol.TARGET_LEVEL)}: {len(ours)} vs "
                f"{len(theirs)} studies")
    return value, interval, measured, outcome, note


def claim_verdict(results, metric, measure):
    """ClaimResult of a speedup, final_difference, equivalence or cost `measure` on one experiment."""
    value, interval, measured, outcome, note = measure_experiment(results, metric, measure)
    if outcome == NOT_MEASURED:
        return ClaimResult(measured, "—", None)
    level = interval.level if interval and outcome in DECIDED and outcome != NO_CRITERION else None
    return ClaimResult(measured, verdict_text(outcome, note), level)


def combine(verdicts):
    """One verdict from several (the experiments of an entry, the entries of a claim; docs/protocol.md):
    not reproduced when any decided one is, reproduced when every decided one is, inconclusive otherwise;
    without a decided one: not measurable when none could be, the tests' or the criterion's absence when
    that is all there is, else not measured here."""
    decided = [v for v in verdicts if v in DECIDED]
    if decided:
        if NOT_REPRODUCED in decided:
            return NOT_REPRODUCED
        return REPRODUCED if all(v == REPRODUCED for v in decided) else INCONCLUSIVE
    kinds = set(verdicts)
    if len(kinds) == 1:
        return verdicts[0]
    if kinds <= {NOT_MEASURABLE, NOT_MEASURED}:
        return NOT_MEASURED
    return TESTS_NOT_RUN if TESTS_NOT_RUN in kinds else NOT_MEASURED


def experiments_of(claim):
    """The experiments an entry is measured on: `experiments`, or [`experiment`], or none."""
    if isinstance(claim.get("experiments"), list):
        return list(claim["experiments"])
    return [claim["experiment"]] if claim.get("experiment") else []


def report_name(experiment, scale):
    return experiment + (f"@{scale}" if scale else "")


def measure_experiments(claim, measure, experiments, metrics):
    """A Measurement per (experiment, scale) with results, or one saying why an experiment has none."""
    unmeasurable = claim.get("not_measurable_here") or {}
    out = []
    for experiment in experiments_of(claim):
        scales = [(key, results) for key, results in experiments.items() if key[0] == experiment]
        if not scales:
            if experiment in unmeasurable:
                out.append(Measurement(experiment, None, None, None, "—", NOT_MEASURABLE, unmeasurable[experiment]))
            else:
                out.append(Measurement(experiment, None, None, None, "—", NOT_MEASURED, "no results"))
            continue
        for (name, scale), results in scales:
            value, interval, text, outcome, note = measure_experiment(results, metrics[(name, scale)], measure)
            out.append(Measurement(name, scale, value, interval, text, outcome, note))
    return out


def gtest_pattern(pattern):
    """A gtest filter pattern (`*` any text, `?` one character) as a compiled regular expression."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")


def test_patterns_outcome(measure, outcomes):
    """Measurement of a test claim from test outcomes {name: {"status", "properties"}} (None: no file)."""
    patterns = measure.get("tests", [])
    label = ", ".join(patterns)
    if outcomes is None:
        return Measurement(None, None, None, None, label, TESTS_NOT_RUN,
                           "no test results given: `make test-verdicts` writes results/test-verdicts.json")
    matched = OrderedDict()
    for pattern in patterns:
        # gtest filter patterns (* and ?) against the CTest names gtest_discover_tests gives.
        regex = gtest_pattern(pattern)
        for name in sorted(outcomes):
            if regex.match(name):
                matched[name] = outcomes[name].get("status")
    passed = [n for n, s in matched.items() if s == "passed"]
    failed = [n for n, s in matched.items() if s == "failed"]
    ran = len(passed) + len(failed)
    text = f"{len(passed)}/{ran} tests passed" if ran else "no test ran"
    if failed:
        return Measurement(None, None, None, None, text, NOT_REPRODUCED, "failed: " + ", ".join(failed))
    if not ran:
        return Measurement(None, None, None, None, text, INCONCLUSIVE, "none of " + label + " ran")
    return Measurement(None, None, None, None, text, REPRODUCED, None)


def recorded_properties(measure, outcomes):
    """"name = value, …" of the test that `records` names, when the outcomes carry its properties (gtest's
    XML), else what it printed (CTest's JUnit file), else None."""
    name = measure.get("records")
    if not name or not outcomes or name not in outcomes:
        return None
    properties = outcomes[name].get("properties") or {}
    if properties:
        return ", ".join(f"{key} = {value}" for key, value in sorted(properties.items()))
    return "; ".join(outcomes[name].get("output") or []) or None


def evaluate_entry(index, claim, experiments, metrics, tests):
    if not isinstance(claim, dict) or not isinstance(claim.get("measure", {}), dict):
        return EntryResult(index, claim if isinstance(claim, dict) else {},
                           [Measurement(None, None, None, None, "—", NOT_MEASURED, "not a claim object")],
                           NOT_MEASURED, None)
    try:
        return evaluate_measure(index, claim, experiments, metrics, tests)
    except (KeyError, TypeError, ValueError) as error:
        note = f"malformed measure ({type(error).__name__}: {error})"
        return EntryResult(index, claim, [Measurement(None, None, None, None, "—", NOT_MEASURED, note)],
                           NOT_MEASURED, None)


def evaluate_measure(index, claim, experiments, metrics, tests):
    measure = claim.get("measure") or {}
    kind = measure.get("kind")
    if kind == "not_measurable":
        reason = measure.get("reason", "")
        return EntryResult(index, claim, [Measurement(None, None, None, None, "—", NOT_MEASURABLE, reason)],
                           NOT_MEASURABLE, None)
    if kind == "test":
        measurement = test_patterns_outcome(measure, tests)
        notes = []
        if measure.get("holds_under"):
            notes.append(f"holds under: {measure['holds_under']}")
        recorded = recorded_properties(measure, tests)
        if recorded:
            notes.append(f"{measure['records']} recorded {recorded}")
        return EntryResult(index, claim, [measurement], measurement.verdict, "; ".join(notes) or None)
    if kind == "share":
        inner = dict(measure.get("per_experiment", {}), optimizer=measure["optimizer"], reference=measure["reference"])
        measurements = measure_experiments(claim, inner, experiments, metrics)
        decided = [m.verdict for m in measurements if m.verdict in DECIDED]
        wins, open_ = decided.count(REPRODUCED), decided.count(INCONCLUSIVE)
        share = measure.get("min_share", 0.5)
        if not decided:
            return EntryResult(index, claim, measurements, combine([m.verdict for m in measurements]), None)
        if wins >= share * len(decided):
            verdict = REPRODUCED
        elif wins + open_ < share * len(decided):
            verdict = NOT_REPRODUCED
        else:
            verdict = INCONCLUSIVE
        note = (f"reproduced in {wins} of {len(decided)} measured experiments ({open_} inconclusive); "
                f"the claim needs {percent(share)}")
        return EntryResult(index, claim, measurements, verdict, note)
    measurements = measure_experiments(claim, measure, experiments, metrics)
    if not measurements:
        measurements = [Measurement(None, None, None, None, "—", NOT_MEASURED, "no experiment named")]
    return EntryResult(index, claim, measurements, combine([m.verdict for m in measurements]), None)


def evaluate(claims, experiments, metrics, tests=None):
    """EntryResult of every entry of the claims file, in its order. experiments: {(experiment, scale):
    results}; metrics: {(experiment, scale): Metric}; tests: test outcomes or None."""
    return [evaluate_entry(index, claim, experiments, metrics, tests) for index, claim in enumerate(claims, 1)]


def paper_of(claim):
    """The paper an entry belongs to, versions folded ("…, arXiv 2403.03473 v1" and "… v1/v2" are one)."""
    return re.sub(r"\s+v\d+(/v\d+)*$", "", claim.get("paper") or "(no paper)")


def claim_id(entry):
    return entry.claim.get("claim") or f"entry {entry.index}"


def by_paper(entries):
    """OrderedDict {paper: OrderedDict {claim id: [EntryResult]}} in the order of first appearance."""
    papers = OrderedDict()
    for entry in entries:
        papers.setdefault(paper_of(entry.claim), OrderedDict()).setdefault(claim_id(entry), []).append(entry)
    return papers


def claim_verdict_of(entries):
    """The verdict of a claim from its entries' (docs/protocol.md: by the same rule as experiments)."""
    return combine([entry.verdict for entry in entries])


def levels_of(entries):
    """The levels of the intervals that decided a verdict (for chance_note)."""
    return [m.interval.level for entry in entries for m in entry.measurements
            if m.interval is not None and m.verdict in DECIDED]


def verdict_counts(verdicts):
    """"3 reproduced, 1 not reproduced, …" in a fixed order."""
    counts = Counter(verdicts)
    order = [REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NO_CRITERION, TESTS_NOT_RUN, NOT_MEASURED, NOT_MEASURABLE]
    return ", ".join(f"{counts[v]} {v}" for v in order if counts[v])


def chance_note(levels):
    """What the report's verdicts together may get wrong by chance (docs/protocol.md, Verdicts)."""
    bound = protocol.wrong_verdict_bound(levels)
    level_counts = ", ".join(f"{level} ({count})" for level, count in Counter(map(percent, levels)).items())
    needed = 1 - protocol.FAMILY_ERROR / len(levels)
    return (f"{len(levels)} verdicts rest on an interval (levels: {level_counts}). "
            f"A verdict is wrong only when its interval misses the true value, "
            f"which happens with probability at most 1 − its level "
            f"(if the two sides' per-study values differ by a shift only; more often when their spreads differ, "
            f"docs/protocol.md): "
            f"by chance one expects at most {bound:.2f} wrong verdicts among these, "
            f"and the chance that any is wrong is at most {percent(min(1.0, bound))} (Bonferroni). "
            f"Keeping that below {percent(protocol.FAMILY_ERROR)} would need every interval at {percent(needed)} "
            f"or more: at least {protocol.studies_for_level(needed)} studies per optimizer.")


def number(value):
    """A float for JSON: finite as is, ±∞ and NaN as the strings "Infinity", "-Infinity", "NaN" (JSON has
    no literal for them), None as null."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def verdict_rows(entries):
    """The verdicts as table rows (the export's `verdicts` table): scope "experiment" (an entry on one
    experiment and scale, with its value and interval), "entry" (an entry of the claims file, its
    experiments together) and "claim" (the entries of one claim id together)."""
    rows = []
    for paper, claims in by_paper(entries).items():
        for identifier, group in claims.items():
            for entry in group:
                measure = entry.claim.get("measure") or {}
                for m in entry.measurements:
                    if m.experiment is None:
                        continue
                    interval = m.interval
                    rows.append({"scope": "experiment", "claim": entry.index, "claim_id": identifier, "paper": paper,
                                 "experiment": m.experiment, "scale": m.scale, "kind": measure.get("kind"),
                                 "measured": m.value, "ci_low": interval.low if interval else None,
                                 "ci_high": interval.high if interval else None,
                                 "ci_level": interval.level if interval else None, "measured_text": m.text,
                                 "verdict": m.verdict, "note": m.note})
                alone = entry.measurements[0] if len(entry.measurements) == 1 and not entry.measurements[0].experiment \
                    else None
                rows.append({"scope": "entry", "claim": entry.index, "claim_id": identifier, "paper": paper,
                             "kind": measure.get("kind"), "measured_text": alone.text if alone else None,
                             "verdict": entry.verdict, "note": entry.note})
            rows.append({"scope": "claim", "claim_id": identifier, "paper": paper, "verdict": claim_verdict_of(group)})
    return rows


def verdicts_document(entries, claims_file=None, test_results=None):
    """verdicts.json: every claim's verdict, grouped by paper, with its entries and their measurements."""
    papers = []
    for paper, claims in by_paper(entries).items():
        listed = []
        for identifier, group in claims.items():
            listed.append({"claim": identifier, "verdict": claim_verdict_of(group), "entries": [{
                "index": entry.index, "description": entry.claim.get("description"),
                "quote": entry.claim.get("quote"), "published": entry.claim.get("value"),
                "kind": (entry.claim.get("measure") or {}).get("kind"),
                "compared": claim_comparison(entry.claim.get("measure") or {}),
                "verdict": entry.verdict, "note": entry.note,
                "measurements": [{"experiment": m.experiment, "scale": m.scale, "value": number(m.value),
                                  "ci_low": number(m.interval.low) if m.interval else None,
                                  "ci_high": number(m.interval.high) if m.interval else None,
                                  "ci_level": m.interval.level if m.interval else None, "text": m.text,
                                  "verdict": m.verdict, "note": m.note} for m in entry.measurements]}
                for entry in group]})
        papers.append({"paper": paper, "claims": listed})
    all_claims = [c["verdict"] for p in papers for c in p["claims"]]
    return {"format_version": 1, "claims_file": claims_file, "test_results": test_results,
            "counts": dict(Counter(all_claims)), "papers": papers}
