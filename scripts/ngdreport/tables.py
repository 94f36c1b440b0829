"""The per-experiment tables: configurations, the protocol's selection, budgets and per-phase cost, as
header and cells (render.py writes them as Markdown, LaTeX or HTML)."""
import math
from collections import OrderedDict

from . import protocol
from .model import FIDELITY_COLUMNS, memory_value, peak_tensor_bytes, rows_of, selections


def spread(values, digits):
    if not values:
        return "—"
    return f"{protocol.median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


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
    middle = protocol.median(values)
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
    return f"{text(protocol.median(values))} [{text(min(values))}–{text(max(values))}]"


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
        values = [protocol.median([t.get(p, 0.0) for t in times]) for p in phases]
        total = sum(values)
        cells.append([name] + [f"{v:.2f} ({100 * v / total:.0f}%)" if total else f"{v:.2f}" for v in values] +
                     [f"{total:.2f}"])
    return ["optimizer"] + [f"{p} s" for p in phases] + ["total s"], cells


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


def short_hash(text, length=12):
    return text[:length] + "…" if isinstance(text, str) and len(text) > length else str(text)


def code_versions(experiments):
    """(header, cells): each code version that produced results, once, with the runs it covers. A version
    is the commit and, for a modified tree, what was modified (meta git_dirty_paths and git_diff_sha256,
    when the harness recorded them): runs from one commit with different modifications are different code."""
    versions = OrderedDict()
    for (experiment, scale), results in experiments.items():
        for result in results:
            meta = result.get("meta") or {}
            commit = str(meta.get("git_commit") or "unknown")
            paths = meta.get("git_dirty_paths")
            paths = tuple(paths) if isinstance(paths, list) else None
            key = (commit, meta.get("git_diff_sha256"), paths)
            entry = versions.setdefault(key, {"runs": 0, "experiments": OrderedDict(), "started": []})
            entry["runs"] += 1
            name = experiment + (f"@{scale}" if scale else "")
            entry["experiments"][name] = entry["experiments"].get(name, 0) + 1
            if isinstance(meta.get("started_at"), str):
                entry["started"].append(meta["started_at"])
    cells = []
    for (commit, diff, paths), entry in sorted(versions.items(), key=lambda item: (min(item[1]["started"] or [""]),
                                                                                    item[0][0])):
        dirty = commit.endswith("-dirty") or bool(paths) or bool(diff)
        if not dirty:
            modified = "no"
        elif paths is None and diff is None:
            modified = "MODIFIED TREE (-dirty); the result files do not record what was modified"
        else:
            modified = ("MODIFIED TREE: " + (", ".join(paths) if paths else "paths not recorded") +
                        (f"; diff sha256 {short_hash(diff)}" if diff else "; diff not recorded"))
        started = sorted(entry["started"])
        when = (started[0][:10] if started[0][:10] == started[-1][:10] else f"{started[0][:10]} – {started[-1][:10]}"
                ) if started else "—"
        cells.append([commit, str(entry["runs"]), when,
                      ", ".join(f"{name} ({count})" for name, count in entry["experiments"].items()), modified])
    return ["code version (git commit)", "runs", "started", "experiments (runs)", "modified tree"], cells


def machine_summary(experiments):
    """One line per machine and software setup that produced results, with how many runs it covers."""
    seen = OrderedDict()
    for results in experiments.values():
        for result in results:
            meta = result.get("meta") or {}
            gpu = meta.get("gpu") or {}
            key = (meta.get("device"), gpu.get("name") if isinstance(gpu, dict) else None, meta.get("cpu_model"),
                   meta.get("cpu_count"), meta.get("threads"), meta.get("torch_version"), meta.get("blas", "?"))
            seen[key] = seen.get(key, 0) + 1
    lines = []
    for (device, gpu, cpu, cores, threads, torch, blas), runs in seen.items():
        hardware = f"{device} {gpu}" if gpu else f"{device}: {cpu} ({cores} cores)"
        lines.append(f"{hardware}, threads {threads}, torch {torch}, BLAS {blas}: {runs} runs")
    return lines


def chosen_summary_header(metric):
    return ["optimizer", "chosen configuration (studies)", "time to target s: median [min–max] over studies",
            "studies reaching it", "speedup vs SGD", f"final {metric.name}: median [min–max]", MEMORY_COLUMN]


# Medians over the chosen runs that recorded them (docs/harness.md#memory): the resident set's peak, the
# tensors' peak (the CUDA device's on a GPU) with the estimate made before training, the optimizer's state.
MEMORY_COLUMN = "memory MiB: peak RSS · peak tensors (estimate) · optimizer state"


def mebibytes(values):
    values = [v for v in values if v is not None]
    return f"{protocol.median(values) / 2 ** 20:.1f}" if values else "—"


def memory_cell(runs):
    """MEMORY_COLUMN's text for `runs`; "—" when none recorded its memory (results from before the accounting)."""
    if not any(isinstance(run.get("memory"), dict) for run in runs):
        return "—"
    return (f"{mebibytes(memory_value(r, 'peak_rss_bytes') for r in runs)} · "
            f"{mebibytes(peak_tensor_bytes(r) for r in runs)} "
            f"({mebibytes(memory_value(r, 'estimate', 'total_bytes') for r in runs)}) · "
            f"{mebibytes(memory_value(r, 'optimizer_state_bytes') for r in runs)}")


def chosen_summary_rows(results, metric):
    """The summary's answer per experiment: each optimizer's chosen configuration(s), time to target over
    studies, how many studies reached it, the speedup over SGD, and the final test metric."""
    chosen = selections(results, metric)
    sgd = chosen.get("sgd")
    cells = []
    for name, selection in chosen.items():
        labels = OrderedDict()
        for run in selection.chosen.values():
            labels[run["label"]] = labels.get(run["label"], 0) + 1
        times = selection.per_study("time_to_target_s")
        reached = sum(not math.isinf(t) for t in times)
        cells.append([name, "; ".join(f"{label} ({count})" for label, count in labels.items()),
                      over_studies(times, 1), f"{reached}/{len(times)}",
                      ratio_text(sgd.time(), selection.time()) if sgd else "n/a",
                      spread(selection.chosen_values(metric.final), 2 if metric.translation else 3),
                      memory_cell(list(selection.chosen.values()))])
    return cells


def target_text(results, metric):
    target = results[0].get("target")
    if not target:
        return "no target"
    return f"target {target['metric']} {'≤' if 'loss' in target['metric'] else '≥'} {target['value']}"
