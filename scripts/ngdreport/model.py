"""The result model: an experiment's metrics (which split selects, which reports), its configurations
(rows, aggregated over seeds) and each optimizer's selection under the protocol (docs/protocol.md)."""
import json
import statistics
from collections import Counter, OrderedDict

from . import protocol
from .protocol import INF


# Result statuses in the order the seeds column lists them.
STATUSES = ("completed", "diverged", "failed")


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


def memory_value(run, *keys):
    """A value of the run's "memory" block (docs/harness.md#memory), e.g. ("estimate", "total_bytes"); None
    in results written without memory accounting."""
    value = run.get("memory")
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def peak_tensor_bytes(run):
    """The run's peak tensor memory: the CUDA device's on a GPU, else LibTorch's CPU tensors; None without
    memory accounting. The resident set (peak_rss_bytes) also holds the dataset and the libraries, the same
    for every optimizer."""
    cuda = memory_value(run, "cuda_peak_bytes")
    return cuda if cuda is not None else memory_value(run, "peak_allocated_bytes")


def is_translation(results):
    return any(r["workload"] == "translation" for r in results)


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
        row = rows.setdefault(result["config_hash"], Row(result["label"], result["variant"]))
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
