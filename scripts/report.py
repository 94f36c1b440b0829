#!/usr/bin/python3
"""Turns ngdbench result files into paper-style tables, plots and a report.

    scripts/report.py [RESULTS_DIR] [--out DIR] [--claims FILE] [--no-plots]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 1), groups runs by experiment and scale,
and writes into --out (default: the parent of RESULTS_DIR):
  report.md, report.html   every table, the papers' claims next to our measurements, the plots, and
                           DIR/discussion.md when it exists (hand-written: where and why we disagree)
  tables/<name>.md, .tex   each experiment's table (Markdown, LaTeX booktabs); <name> = experiment@scale
  plots/<name>.png         test metric and train loss against training time and against epochs; for
                           runs with fidelity probes, a third row: cosine to exact natural gradient
                           and the γ ratio against epochs

Table rows are configurations (optimizer + grid values or drawn trial); each cell is the median over
seeds with the min–max range, and every metric names its split (val / test). The protocol
(docs/protocol.md, scripts/protocol.py) selects on validation data and reports test data: per study
the trial with the shortest time to the (validation) target, per optimizer the median over studies;
an unreached target counts as ∞. Speedups are ratios of those medians; claims get a 95 % bootstrap
interval over studies and a verdict; experiments of one scale get performance profiles, AlgoPerf
scores and geometric-mean speedups.
Experiments whose runs carry fidelity probes (per-epoch "fidelity" blocks) get columns with the
median over seeds of each run's median epoch mean of cos(d, Δ*), γ(d)/γ(ḡ) and, for FNGD, the cosine
of its reused coefficients to a fresh solve. Everything is regenerated from the result files alone.
"""
import argparse
import html
import json
import math
import os
import statistics
import sys
import tempfile
from collections import Counter, OrderedDict

import protocol
from protocol import INF

# Result statuses in the order the seeds column lists them.
STATUSES = ("completed", "diverged", "failed")


# Bytes an experiment or scale name may have: kMaxNameBytes of harness/spec_input.h.
MAX_NAME_BYTES = 100


def name_problem(name):
    """Why `name` cannot name a file under the output folder, or None: the rule of
    folder_name_problem() in harness/spec_input.cpp, which specs are held to."""
    if not isinstance(name, str):
        return "is not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return 'is "." or ".."'
    if "/" in name:
        return "contains '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        return "contains a control character"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def result_problem(result):
    """Why a parsed result file cannot be reported, or None."""
    if not isinstance(result, dict):
        return "not a JSON object"
    if result.get("schema_version") != 1:
        return f"schema_version {result.get('schema_version')}"
    problem = name_problem(result.get("experiment"))
    if problem:
        return f"experiment name {result.get('experiment')!r:.80} {problem}"
    scale = result.get("scale", "")
    problem = name_problem(scale) if scale != "" else None
    if problem:
        return f"scale name {scale!r:.80} {problem}"
    return None


def load_results(results_dir):
    """{(experiment, scale): [result, ...]} from every readable schema-1 result file."""
    experiments = OrderedDict()
    for experiment in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, experiment)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(folder, name)
            try:
                with open(path) as file:
                    result = json.load(file)
            except (OSError, ValueError) as error:
                print(f"report: skipping {path}: {error}", file=sys.stderr)
                continue
            problem = result_problem(result)
            if problem:
                print(f"report: skipping {path}: {problem}", file=sys.stderr)
                continue
            experiments.setdefault((result["experiment"], result.get("scale", "")), []).append(result)
    return experiments


def median(values):
    return statistics.median(values) if values else None


def spread(values, digits):
    if not values:
        return "—"
    return f"{median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


# Fidelity metrics of the tables and plots (key in an epoch's "fidelity" block, column name); the last
# only where an optimizer reuses coefficients (FNGD).
FIDELITY_COLUMNS = (("cosine", "cos(d, Δ*)"), ("gamma_ratio", "γ(d)/γ(ḡ)"),
                    ("coefficient_cosine", "coef. cos reused/fresh"))


def fidelity_keys(results):
    """The fidelity metrics any run of the experiment recorded, in FIDELITY_COLUMNS order."""
    present = {key for r in results for e in r["epochs"] for key, value in (e.get("fidelity") or {}).items()
               if value is not None}
    return [key for key, _ in FIDELITY_COLUMNS if key in present]


def epoch_fidelity(epoch, key):
    """An epoch's mean of a fidelity metric, or None."""
    return ((epoch.get("fidelity") or {}).get(key) or {}).get("mean")


def is_translation(results):
    return any((r.get("final") or {}).get("test_bleu") is not None for r in results)


class Metric:
    """The experiment's metrics: the validation metric that selects (final validation accuracy, or the
    best validation BLEU for translation) and the test metric that reports (final test accuracy, or the
    test BLEU of the best-validation checkpoint). Results without a validation split (written before
    image runs had one) select on the test metric, and the report says so."""

    def __init__(self, results):
        self.translation = is_translation(results)
        self.name = "test BLEU" if self.translation else "test acc"
        self.digits = 2 if self.translation else 4
        has_validation = self.translation or any(r["epochs"] and "val_acc" in r["epochs"][-1] for r in results)
        self.validation_key = ("val_bleu" if self.translation else "val_acc") if has_validation else None
        self.validation_name = ("best val BLEU" if self.translation else "final val acc") if has_validation else None
        # The per-epoch curve that stands for it in the plots.
        self.curve_key = self.validation_key or "test_acc"
        self.curve_name = {"val_bleu": "validation BLEU", "val_acc": "validation accuracy"}.get(self.curve_key,
                                                                                                "test accuracy")
        self.split_note = ("selection on the validation split, test split reported" if has_validation else
                           "NO VALIDATION SPLIT in these results: selection and report both on the test split")

    def final(self, run):
        if self.translation:
            return (run.get("final") or {}).get("test_bleu")
        return run["epochs"][-1].get("test_acc")

    def final_validation(self, run):
        """The selecting metric of a run: last-epoch validation accuracy, the best validation BLEU (the
        checkpoint the test BLEU is scored at), or without a validation split the test metric."""
        if self.validation_key is None:
            return self.final(run)
        values = [e.get(self.validation_key) for e in run["epochs"]]
        values = [v for v in values if v is not None]
        if not values:
            return None
        return max(values) if self.translation else values[-1]

    def selection_key(self, run):
        """Smaller is better: time to target (∞ when unreached), then the validation metric."""
        validation = self.final_validation(run) if run["status"] == "completed" and run["epochs"] else None
        return (protocol.measure_or_unreached(run, "time_to_target_s"), -(validation if validation is not None else -INF))


class Row:
    """One configuration of an experiment, aggregated over its seeds."""

    def __init__(self, label, optimizer):
        self.label, self.optimizer = label, optimizer
        self.runs = []

    def completed(self):
        return [r for r in self.runs if r["status"] == "completed" and r["epochs"]]

    def finals(self, metric):
        return [v for v in (metric.final(r) for r in self.completed()) if v is not None]

    def final_train_losses(self):
        return [r["epochs"][-1]["train_loss"] for r in self.completed()]

    def epoch_times(self, first):
        """Per seed, the median epoch time of epoch 1 (first) or of epochs ≥ 2: FNGD and the subspace
        methods change their cost after the first epoch."""
        times = []
        for r in self.completed():
            epochs = r["epochs"][:1] if first else r["epochs"][1:]
            if epochs:
                times.append(statistics.median(e["train_time_s"] for e in epochs))
        return times

    def total_times(self):
        return [r["epochs"][-1]["cumulative_train_time_s"] for r in self.completed()]

    def validations(self, metric):
        return [v for v in (metric.final_validation(r) for r in self.completed()) if v is not None]

    def timing_suspects(self):
        """Completed runs with an epoch whose clock the runner flagged (load above the cores, or the
        process descheduled): their times are not comparable with clean ones."""
        return [r for r in self.completed() if r.get("timing_suspect")]

    def times_to_target(self):
        return [protocol.measure_or_unreached(r, "time_to_target_s") for r in self.runs]

    def steps_to_target(self):
        return [protocol.measure_or_unreached(r, "steps_to_target") for r in self.runs]

    def median_time_to_target(self):
        return protocol.median(self.times_to_target()) if self.runs else INF

    def fidelity_medians(self, key):
        """Per seed, the median over the run's probed epochs of their mean of fidelity metric `key`."""
        values = []
        for r in self.completed():
            means = [v for v in (epoch_fidelity(e, key) for e in r["epochs"]) if v is not None]
            if means:
                values.append(statistics.median(means))
        return values

    def seeds_note(self, expected):
        counts = {status: sum(r["status"] == status for r in self.runs) for status in STATUSES}
        note = f"{counts['completed']}/{expected}"
        note += "".join(f" +{counts[s]} {s}" for s in STATUSES[1:] if counts[s])
        return note


# Table rows list these reference optimizers first, as the papers do, then the others by label.
REFERENCE_ORDER = ("sgd", "adamw", "kfac")


def rows_of(results):
    rows = OrderedDict()
    for result in results:
        # An entry's variant (e.g. "fngd-clamp") is selected and compared as an optimizer of its own.
        row = rows.setdefault(result["config_hash"], Row(result["label"], result.get("variant") or result["optimizer"]))
        row.runs.append(result)
    rank = lambda row: REFERENCE_ORDER.index(row.optimizer) if row.optimizer in REFERENCE_ORDER else len(REFERENCE_ORDER)
    return sorted(rows.values(), key=lambda row: (rank(row), row.label))


class Selection:
    """One optimizer's choice under the protocol: per study the trial with the shortest time to the
    validation target (then the best validation metric); its figures are medians over studies."""

    def __init__(self, optimizer, runs, metric):
        self.optimizer, self.runs = optimizer, runs
        self.chosen = protocol.best_per_study(runs, metric.selection_key)  # {study: run}

    def per_study(self, measure):
        return [protocol.measure_or_unreached(r, measure) for r in self.chosen.values()]

    def time(self):
        return protocol.median(self.per_study("time_to_target_s"))

    def chosen_values(self, value):
        """value(run) of each study's chosen run, where it has one."""
        return [v for v in (value(r) for r in self.chosen.values() if r["status"] == "completed" and r["epochs"])
                if v is not None]

    def budget(self):
        """(runs, trials per study, studies, search description)."""
        studies = len(self.chosen)
        tuning = next((r.get("tuning") for r in self.runs if r.get("tuning")), None)
        if tuning:
            space = ", ".join(f"{name} {json.dumps(value, separators=(',', ':'))}"
                              for name, value in tuning["space"].items())
            # The trials that ran per study: `ngdbench run --max-trials` may stop below the block's budget.
            per_study = Counter(r.get("study") for r in self.runs).values()
            trials = min(per_study) if min(per_study) == max(per_study) else f"{min(per_study)}–{max(per_study)}"
            return len(self.runs), trials, studies, f"Halton seed {tuning['seed']}: {space}"
        grid = len({r["config_hash"] for r in self.runs})
        return len(self.runs), grid, studies, "grid" if grid > 1 else "one configuration"


def selections(results, metric):
    by_optimizer = OrderedDict()
    for row in rows_of(results):
        by_optimizer.setdefault(row.optimizer, []).extend(row.runs)
    return OrderedDict((name, Selection(name, runs, metric)) for name, runs in by_optimizer.items())


def ratio_text(theirs, ours):
    """theirs/ours as a speedup; an infinite time of ours is "—", of theirs "∞"."""
    if ours is None or theirs is None:
        return "n/a"
    if math.isinf(ours):
        return "—"
    if math.isinf(theirs):
        return "∞"
    return f"{theirs / ours:.2f}×"


def speedup(reference, row):
    if reference is None:
        return "n/a"
    return ratio_text(reference.time(), row.median_time_to_target())


def format_time(values, digits=1):
    if not values:
        return "—"
    finite = [v for v in values if not math.isinf(v)]
    middle = median(values)
    return f"{'∞' if math.isinf(middle) else f'{middle:.{digits}f}'} ({len(finite)}/{len(values)})"


def columns(metric, fidelity=()):
    names = dict(FIDELITY_COLUMNS)
    validation = [metric.validation_name] if metric.validation_name else []
    return (["optimizer", "seeds"] + validation +
            [f"final {metric.name}", "final train loss", "epoch 1 s", "epoch ≥2 s", "total train s",
             "time to target s (reached)", "steps to target (reached)", "speedup vs SGD", "speedup vs KFAC"] +
            [names[key] for key in fidelity])


# The column that appears only in tables with a run whose timing the runner flagged as suspect.
TIMING_COLUMN = "timing suspect (runs)"


def has_timing_suspects(results):
    return any(r.get("timing_suspect") for r in results)


def table_rows(results, metric, fidelity=()):
    rows = rows_of(results)
    expected = len({r["seed"] for r in results})
    chosen = selections(results, metric)
    sgd, kfac = chosen.get("sgd"), chosen.get("kfac")
    flagged = has_timing_suspects(results)
    cells = []
    for row in rows:
        validation = [spread(row.validations(metric), metric.digits)] if metric.validation_name else []
        suspects = len(row.timing_suspects())
        timing = [f"{suspects}/{len(row.completed())} suspect" if suspects else ""] if flagged else []
        # A drawn trial is planned in one study only; a grid configuration in every seed.
        planned = len(row.runs) if any(r.get("tuning") for r in row.runs) else expected
        cells.append([row.label, row.seeds_note(planned)] + validation +
                     [spread(row.finals(metric), metric.digits), spread(row.final_train_losses(), 4),
                      spread(row.epoch_times(True), 2), spread(row.epoch_times(False), 2), spread(row.total_times(), 1),
                      format_time(row.times_to_target()), format_time(row.steps_to_target(), 0), speedup(sgd, row),
                      speedup(kfac, row)] +
                     [spread(row.fidelity_medians(key), 3) for key in fidelity] + timing)
    return cells


def selection_header(metric):
    validation = [f"{metric.validation_name} of chosen"] if metric.validation_name else []
    return (["optimizer", "runs (trials × studies)", "search", "time to target s [studies]", "steps to target"] +
            validation + [f"{metric.name} of chosen", "chosen configurations (studies)"])


def over_studies(values, digits):
    """median [min–max] over studies, ∞ allowed."""
    if not values:
        return "—"
    text = lambda v: "∞" if math.isinf(v) else f"{v:.{digits}f}"
    return f"{text(median(values))} [{text(min(values))}–{text(max(values))}]"


def selection_rows(results, metric):
    cells = []
    for name, chosen in selections(results, metric).items():
        runs, trials, studies, search = chosen.budget()
        labels = OrderedDict()
        for run in chosen.chosen.values():
            labels[run["label"]] = labels.get(run["label"], 0) + 1
        validation = ([spread(chosen.chosen_values(metric.final_validation), metric.digits)]
                      if metric.validation_name else [])
        steps = protocol.median_over_studies(chosen.runs, "steps_to_target")
        cells.append([name, f"{runs} ({trials} × {studies})", search, over_studies(chosen.per_study("time_to_target_s"), 1),
                      "∞" if math.isinf(steps) else f"{steps:.0f}"] + validation +
                     [spread(chosen.chosen_values(metric.final), metric.digits),
                      "; ".join(f"{label} ({count})" for label, count in labels.items())])
    return cells


def budget_note(results, metric):
    budgets = {name: chosen.budget() for name, chosen in selections(results, metric).items()}
    trials = {budget[1] for budget in budgets.values()}
    text = ", ".join(f"{name} {budget[1]} × {budget[2]}" for name, budget in budgets.items())
    equal = "equal for every optimizer" if len(trials) == 1 else "NOT EQUAL across optimizers"
    return (f"Tuning budget (trials per study × studies): {text} — {equal}. Per study the trial with the shortest "
            f"time to the target is chosen; figures of the chosen are medians [min–max] over studies.")


def phase_rows(results, metric):
    """Median seconds per run in each phase, over the chosen runs of every optimizer (None when untimed)."""
    chosen = selections(results, metric)
    phases = []
    for selection in chosen.values():
        for run in selection.chosen.values():
            phases += [p for p in run.get("phase_times_s") or {} if p not in phases]
    if not phases:
        return None, None
    cells = []
    for name, selection in chosen.items():
        times = [run.get("phase_times_s") or {} for run in selection.chosen.values()]
        values = [median([t.get(p, 0.0) for t in times]) for p in phases]
        total = sum(values)
        cells.append([name] + [f"{v:.2f} ({100 * v / total:.0f}%)" if total else f"{v:.2f}" for v in values] +
                     [f"{total:.2f}"])
    return ["optimizer"] + [f"{p} s" for p in phases] + ["total s"], cells


def markdown_table(header, cells):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def latex_escape(text):
    for plain, latex in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                         ("×", r"$\times$"), ("–", "--"), ("—", "---"), ("≥", r"$\geq$"), ("≤", r"$\leq$"),
                         ("∞", r"$\infty$")):
        text = text.replace(plain, latex)
    return text


def latex_table(header, cells, caption):
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(latex_escape(c) for c in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + latex_escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines)


def plot(results, metric, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fidelity = [key for key in fidelity_keys(results) if key in ("cosine", "gamma_ratio")]
    figure, axes = plt.subplots(3 if fidelity else 2, 2, figsize=(11, 12 if fidelity else 8))
    rows = rows_of(results)
    palette = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")  # one distinct colour per row
    for index, row in enumerate(rows):
        runs = row.completed()
        if not runs:
            continue
        length = min(len(r["epochs"]) for r in runs)
        times = [statistics.median(r["epochs"][i]["cumulative_train_time_s"] for r in runs) for i in range(length)]
        for key, y in ((metric.curve_key, 0), ("train_loss", 1)):
            points = []  # (time, epoch, values over seeds) where every seed has the value
            for i in range(length):
                values = [r["epochs"][i].get(key) for r in runs]
                if all(v is not None for v in values):
                    points.append((times[i], i + 1, values))
            if not points:
                continue
            middle = [statistics.median(v) for _, _, v in points]
            low, high = [min(v) for _, _, v in points], [max(v) for _, _, v in points]
            for x, axis in (([p[0] for p in points], axes[y][0]), ([p[1] for p in points], axes[y][1])):
                colour = palette(index % palette.N)
                axis.plot(x, middle, marker="o", markersize=3, label=row.label, color=colour)
                axis.fill_between(x, low, high, alpha=0.15, color=colour)
        for x, key in enumerate(fidelity):
            points = []  # (epoch, the seeds' epoch means) where every seed probed
            for i in range(length):
                values = [epoch_fidelity(r["epochs"][i], key) for r in runs]
                if all(v is not None for v in values):
                    points.append((i + 1, values))
            if points:
                colour = palette(index % palette.N)
                epochs = [p[0] for p in points]
                axes[2][x].plot(epochs, [statistics.median(p[1]) for p in points], marker="o", markersize=3,
                                label=row.label, color=colour)
                axes[2][x].fill_between(epochs, [min(p[1]) for p in points], [max(p[1]) for p in points], alpha=0.15,
                                        color=colour)
    for x, key in enumerate(fidelity):
        axes[2][x].set_xlabel("epoch")
        axes[2][x].set_ylabel({"cosine": "cos(d, Δ*) to exact NGD (epoch mean)",
                               "gamma_ratio": "γ(d)/γ(ḡ) (epoch mean; < 1: closer to NGD than SGD)"}[key])
        axes[2][x].grid(alpha=0.3)
    for y, name in ((0, metric.curve_name), (1, "train loss")):
        axes[y][0].set_xlabel("training time (s, median over seeds)")
        axes[y][1].set_xlabel("epoch")
        for x in (0, 1):
            axes[y][x].set_ylabel(name)
            axes[y][x].grid(alpha=0.3)
            if y == 1:
                axes[y][x].set_yscale("log")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{title} (median, min–max band over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


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


def experiment_caption(experiment, scale, results, metric):
    target = results[0].get("target")
    target_text = (f"{target['metric']} {'≤' if 'loss' in target['metric'] else '≥'} {target['value']}"
                   if target else "none")
    meta = results[0]["meta"]
    gpu = meta.get("gpu") or {}  # null for CPU runs
    hardware = f"{meta.get('device')} {gpu['name']}" if gpu else f"{meta.get('device')} {meta.get('cpu_model')}"
    scale_text = {"cpu": "cpu (SCALED DOWN for a CPU; not the paper's protocol)",
                  "paper": "paper (the published protocol)"}.get(scale, scale or "as written")
    return (f"{experiment}, scale {scale_text}; target {target_text}; {metric.split_note}; {hardware}, "
            f"threads {meta.get('threads')}, BLAS {meta.get('blas', '?')}")


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
                   f"geo-mean speedup vs {SPEEDUP_BASELINE.upper()} (time)", f"(steps)"] +
                  [f"ρ({tau:g}) (time)" for tau in PROFILE_TAUS])
        cells = []
        for name in sorted(by_time[3], key=lambda n: (time_rank[n], n)):
            cells.append([name, f"{by_time[3][name]:.3f}", str(time_rank[name]), f"{by_steps[3][name]:.3f}",
                          str(step_rank[name]), geometric(by_time), geometric(by_steps)] +
                         [f"{protocol.profile(by_time[2][name], tau):.2f}" for tau in PROFILE_TAUS])
        scores[scale] = (header, cells, by_time[2], [experiment for experiment, _ in group])
    return scores


def plot_profiles(ratios, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    taus = [1 + 3 * i / 300 for i in range(301)]
    for name, per in sorted(ratios.items()):
        axis.step(taus, [protocol.profile(per, tau) for tau in taus], where="post", label=name)
    axis.set_xlabel("τ (ratio of time to target to the best optimizer's)")
    axis.set_ylabel("ρ(τ): share of experiments")
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine_summary(experiments):
    metas = [results[0]["meta"] for results in experiments.values()]
    seen = OrderedDict()
    for meta in metas:
        key = (meta.get("cpu_model"), meta.get("cpu_count"), meta.get("threads"), meta.get("torch_version"),
               meta.get("device"), meta.get("git_commit"))
        seen.setdefault(key, meta)
    return [f"{m.get('device')}: {m.get('cpu_model')} ({m.get('cpu_count')} cores), threads {m.get('threads')}, "
            f"torch {m.get('torch_version')}, BLAS {m.get('blas', '?')}, commit {m.get('git_commit')}"
            for m in seen.values()]


# A report is a list of blocks rendered to Markdown and HTML alike:
# ("h", level, text), ("p", text), ("table", header, cells), ("img", alt, path), ("md", markdown text;
# HTML shows it preformatted).

def render_markdown(blocks):
    out = []
    for block in blocks:
        if block[0] == "h":
            out.append("#" * block[1] + " " + block[2])
        elif block[0] in ("p", "md"):
            out.append(block[1])
        elif block[0] == "table":
            out.append(markdown_table(block[1], block[2]))
        elif block[0] == "img":
            out.append(f"![{block[1]}]({block[2]})")
        out.append("")
    return "\n".join(out)


def render_html(blocks, title):
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:80em;margin:auto}table{border-collapse:collapse;"
           "font-size:90%}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
           "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style>", "</head><body>"]
    for block in blocks:
        if block[0] == "h":
            out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif block[0] == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif block[0] == "table":
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2]]
            out.append("</table>")
        elif block[0] == "img":
            out.append(f"<p><img src=\"{html.escape(block[2])}\" alt=\"{html.escape(block[1])}\"></p>")
        elif block[0] == "md":
            out.append(f"<pre style=\"white-space:pre-wrap\">{html.escape(block[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(path, text):
    """Writes through a new temporary file (created exclusively, never through a planted link) so an
    interrupted report never leaves a half-written file."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


CLAIM_HEADER = ["paper claim", "source", "published", "scale of the claim", "compared", "measured here [95 % CI]",
                "verdict", "our scale"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--claims", default=os.path.join(os.path.dirname(__file__), "..", "results", "paper-claims.json"))
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    if not os.path.isdir(args.results):
        sys.exit(f"report: {args.results}: no results folder (run `make reproduce` first)")
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    for folder in ("tables", "plots"):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
    claims = []
    if os.path.exists(args.claims):
        with open(args.claims) as file:
            claims = json.load(file)["claims"]

    experiments = load_results(args.results)
    blocks = [("h", 1, "ngdbench report"),
              ("p", "Each cell: median [min–max] over seeds; seeds = completed/seeds run (+ diverged, failed). "
                    "Times are training seconds (evaluation excluded). The protocol (docs/protocol.md): targets "
                    "and selection use the validation split, the test split is reported; per study the trial "
                    "with the shortest time to target is chosen and figures are medians over studies; a target "
                    "never reached — or a diverged run — counts as ∞ (shown as — in speedups, ∞ in times). "
                    "Speedups: the chosen SGD / KFAC median time to target over the row's median. "
                    "Experiments at scale cpu are scaled down (subsets, narrow models, few epochs): compare their "
                    "direction with the papers' claims, not their values.")]
    blocks += [("p", "Machine: " + line) for line in machine_summary(experiments)]
    verdicts = []
    for (experiment, scale), results in experiments.items():
        name = experiment + (f"@{scale}" if scale else "")
        metric = Metric(results)
        caption = experiment_caption(experiment, scale, results, metric)
        fidelity = fidelity_keys(results)
        header, cells = columns(metric, fidelity), table_rows(results, metric, fidelity)
        if has_timing_suspects(results):
            header = header + [TIMING_COLUMN]
            caption += (". Timing suspect: some runs were measured while other work competed for the cores "
                        "(load average above the core count, or CPU time below the wall time; per epoch in "
                        "the result files): their times and speedups are not comparable with clean runs")
        write(os.path.join(out, "tables", name + ".md"), f"## {name}\n\n{caption}\n\n{markdown_table(header, cells)}\n")
        write(os.path.join(out, "tables", name + ".tex"), latex_table(header, cells, caption) + "\n")
        blocks += [("h", 2, name), ("p", caption), ("table", header, cells),
                   ("p", f"Tables: tables/{name}.md, tables/{name}.tex"),
                   ("p", budget_note(results, metric)), ("table", selection_header(metric), selection_rows(results, metric))]
        phase_header, phase_cells = phase_rows(results, metric)
        if phase_header:
            blocks += [("p", "Per-phase cost of the chosen runs (median seconds per run, share of the total):"),
                       ("table", phase_header, phase_cells)]
        relevant = [c for c in claims if c.get("experiment") == experiment]
        if relevant:
            cells = []
            for c in relevant:
                measured, outcome = claim_verdict(results, metric, c["measure"])
                cells.append([c["description"], c["source"], c["value"], c["scale"], claim_comparison(c["measure"]),
                              measured, outcome, scale or "as written"])
                verdicts.append(f"{name}: {c['description']} ({c['source']}): {measured}: {outcome}")
            blocks.append(("table", CLAIM_HEADER, cells))
            # A claim's "finding": what our studies found about why it holds or not (not a bare verdict).
            blocks += [("p", f"Why, for \u201c{c['description']}\u201d: {c['finding']}") for c in relevant if c.get("finding")]
        if not args.no_plots:
            plot(results, metric, name, os.path.join(out, "plots", name + ".png"))
            blocks.append(("img", name, f"plots/{name}.png"))
    for scale, (header, cells, ratios, names) in cross_experiment_scores(experiments).items():
        label = scale or "as-written"
        blocks += [("h", 2, f"Scores across experiments (scale {label})"),
                   ("p", f"Over {len(names)} experiments ({', '.join(names)}). Per experiment each optimizer's time "
                         "to target is the median over studies of the best trial; r = time / the best optimizer's, "
                         "∞ above 4× (AlgoPerf) or when unreached or not run; ρ(τ) = share of experiments with "
                         "r ≤ τ; score B = (1/3)∫₁⁴ ρ(τ)dτ (exact for the step function). Geometric-mean speedups "
                         "count ∞ as the experiment's budget + 1 (the longest run's seconds or steps) over the "
                         "experiments both ran. Ranks by steps ignore what a step costs; ranks by time include it.")
                   , ("table", header, cells)]
        if not args.no_plots:
            file = f"plots/profiles@{label}.png"
            plot_profiles(ratios, f"Performance profiles by time to target, scale {label}", os.path.join(out, file))
            blocks.append(("img", f"profiles {label}", file))
    unmeasured = [c for c in claims if not any(e == c.get("experiment") for e, _ in experiments)]
    if unmeasured:
        blocks += [("h", 2, "Claims without a measurement here"),
                   ("table", CLAIM_HEADER[:5], [[c["description"], c["source"], c["value"], c["scale"],
                                                 claim_comparison(c["measure"])] for c in unmeasured])]
    discussion = os.path.join(out, "discussion.md")
    if os.path.exists(discussion):
        with open(discussion) as file:
            blocks += [("h", 2, "Discussion"), ("md", file.read().strip())]
    write(os.path.join(out, "report.md"), render_markdown(blocks))
    write(os.path.join(out, "report.html"), render_html(blocks, "ngdbench report"))
    for line in verdicts:
        print("verdict: " + line)
    print(f"report: wrote {os.path.join(out, 'report.md')} and report.html ({len(experiments)} experiments)")


if __name__ == "__main__":
    main()
