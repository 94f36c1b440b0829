#!/usr/bin/python3
"""Turns ngdbench result files into paper-style tables, plots and a report.

    scripts/report.py [RESULTS_DIR] [--out DIR] [--claims FILE]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 1), groups runs by experiment and scale,
and writes into --out (default RESULTS_DIR/../report):
  report.md              every table, the papers' claims next to our measurements, links to plots
  <experiment>.md/.tex   the experiment's table (Markdown and LaTeX)
  <experiment>.png       test metric and train loss against wall-clock time and against epochs

Table rows are configurations (optimizer + grid values); each cell is the median over seeds with the
min–max range. Speedups are ratios of medians of time to target against the best configuration of
SGD and of KFAC in the same experiment; a target never reached is "—" and counts as infinite time.
"""
import argparse
import json
import math
import os
import statistics
import sys
from collections import OrderedDict

INF = float("inf")


def load_results(results_dir):
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
            if result.get("schema_version") != 1:
                print(f"report: skipping {path}: schema_version {result.get('schema_version')}", file=sys.stderr)
                continue
            key = (result["experiment"], result.get("scale", ""))
            experiments.setdefault(key, []).append(result)
    return experiments


def median(values):
    return statistics.median(values) if values else None


def spread(values, digits):
    if not values:
        return "—"
    return f"{median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


class Row:
    """One configuration of an experiment, aggregated over its seeds."""

    def __init__(self, label, optimizer):
        self.label, self.optimizer = label, optimizer
        self.runs = []

    def completed(self):
        return [r for r in self.runs if r["status"] == "completed" and r["epochs"]]

    def final(self, metric):
        return [r["epochs"][-1][metric] for r in self.completed()]

    def epoch_times(self, first):
        times = []
        for r in self.completed():
            epochs = r["epochs"][:1] if first else r["epochs"][1:]
            if epochs:
                times.append(statistics.median(e["train_time_s"] for e in epochs))
        return times

    def total_times(self):
        return [r["epochs"][-1]["cumulative_train_time_s"] for r in self.completed()]

    def times_to_target(self):
        return [INF if r["time_to_target_s"] is None else r["time_to_target_s"] for r in self.completed()]

    def median_time_to_target(self):
        times = self.times_to_target()
        return median(times) if times else INF

    def status_note(self):
        counts = {}
        for r in self.runs:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def rows_of(results):
    rows = OrderedDict()
    for result in results:
        row = rows.setdefault(result["config_hash"], Row(result["label"], result["optimizer"]))
        row.runs.append(result)
    return list(rows.values())


def best_row(rows, optimizer):
    """The configuration of `optimizer` with the shortest median time to target, then best accuracy."""
    candidates = [r for r in rows if r.optimizer == optimizer and r.completed()]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.median_time_to_target(), -(median(r.final("test_acc")) or 0)))


def speedup(reference, row):
    if reference is None:
        return "n/a"
    ours, theirs = row.median_time_to_target(), reference.median_time_to_target()
    if math.isinf(ours):
        return "—"
    if math.isinf(theirs):
        return "∞"
    return f"{theirs / ours:.2f}×"


def format_time(values):
    finite = [v for v in values if not math.isinf(v)]
    if not values:
        return "—"
    m = median(values)
    text = "—" if math.isinf(m) else f"{m:.1f}"
    return f"{text} ({len(finite)}/{len(values)})"


COLUMNS = ["optimizer", "seeds", "final test acc", "final train loss", "epoch 1 s", "epoch ≥2 s",
           "total train s", "time to target s (reached)", "speedup vs SGD", "speedup vs KFAC"]


def table_rows(results):
    rows = rows_of(results)
    sgd, kfac = best_row(rows, "sgd"), best_row(rows, "kfac")
    table = []
    for row in rows:
        table.append([
            row.label, row.status_note(), spread(row.final("test_acc"), 4), spread(row.final("train_loss"), 4),
            spread(row.epoch_times(True), 2), spread(row.epoch_times(False), 2), spread(row.total_times(), 1),
            format_time(row.times_to_target()), speedup(sgd, row), speedup(kfac, row)])
    return table


def markdown_table(table):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    return "\n".join(lines)


def latex_table(table, caption):
    escape = lambda text: (text.replace("_", r"\_").replace("%", r"\%").replace("×", r"$\times$")
                           .replace("–", "--").replace("—", "---").replace("≥", r"$\geq$").replace("∞", r"$\infty$"))
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (len(COLUMNS) - 1) + "}",
             r"\toprule", " & ".join(escape(c) for c in COLUMNS) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(c) for c in cells) + r" \\" for cells in table]
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines)


def plot(results, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row in rows_of(results):
        runs = row.completed()
        if not runs:
            continue
        length = min(len(r["epochs"]) for r in runs)
        epochs = list(range(1, length + 1))
        for metric, y in (("test_acc", 0), ("train_loss", 1)):
            values = [[r["epochs"][i][metric] for r in runs] for i in range(length)]
            times = [statistics.median(r["epochs"][i]["cumulative_train_time_s"] for r in runs) for i in range(length)]
            middle = [statistics.median(v) for v in values]
            for x, axis in ((times, axes[y][0]), (epochs, axes[y][1])):
                line, = axis.plot(x, middle, marker="o", markersize=3, label=row.label)
                axis.fill_between(x, [min(v) for v in values], [max(v) for v in values], alpha=0.15,
                                  color=line.get_color())
    for y, metric in ((0, "test accuracy"), (1, "train loss")):
        axes[y][0].set_xlabel("training time (s, median over seeds)")
        axes[y][1].set_xlabel("epoch")
        for x in (0, 1):
            axes[y][x].set_ylabel(metric)
            axes[y][x].grid(alpha=0.3)
    axes[1][0].set_yscale("log")
    axes[1][1].set_yscale("log")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{title} (median, min–max band over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def claims_for(claims, experiment):
    return [c for c in claims if c.get("experiment") == experiment]


def measured_value(results, measure):
    """Our figure for a claim's `measure`: {"kind": "speedup", "optimizer", "reference"} (ratio of
    median times to target, best configurations) or {"kind": "final_difference", "optimizer",
    "reference", "metric"} (difference of median final metrics)."""
    rows = rows_of(results)
    row, reference = best_row(rows, measure["optimizer"]), best_row(rows, measure["reference"])
    if row is None or reference is None:
        return "not run"
    if measure["kind"] == "speedup":
        return speedup(reference, row)
    metric = measure["metric"]
    return f"{median(row.final(metric)) - median(reference.final(metric)):+.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--claims", default=os.path.join(os.path.dirname(__file__), "..", "results", "paper-claims.json"))
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.results)), "report")
    if not os.path.isdir(args.results):
        sys.exit(f"report: {args.results}: no results folder (run `make reproduce` first)")
    os.makedirs(out, exist_ok=True)
    claims = []
    if os.path.exists(args.claims):
        with open(args.claims) as file:
            claims = json.load(file)["claims"]

    report = ["# ngdbench report", "",
              "Each cell: median [min–max] over seeds. Times are training seconds (evaluation excluded). "
              "Speedups: ratio of median time to target against the best SGD / KFAC configuration; "
              "a target never reached is — and counts as infinite.", ""]
    for (experiment, scale), results in load_results(args.results).items():
        name = experiment + (f"@{scale}" if scale else "")
        target = results[0].get("target")
        target_text = f"{target['metric']} {'≤' if 'loss' in target['metric'] else '≥'} {target['value']}" if target else "none"
        meta = results[0]["meta"]
        gpu = meta.get("gpu") or {}  # null for CPU runs
        hardware = f"{meta.get('device')} {gpu['name']}" if gpu else f"{meta.get('device')} {meta.get('cpu_model')}"
        caption = (f"{experiment}, scale {scale or 'as written'}; target {target_text}; "
                   f"{hardware}, {meta.get('threads')} threads")
        table = table_rows(results)
        with open(os.path.join(out, name + ".md"), "w") as file:
            file.write(f"## {name}\n\n{caption}\n\n{markdown_table(table)}\n")
        with open(os.path.join(out, name + ".tex"), "w") as file:
            file.write(latex_table(table, caption) + "\n")
        report += [f"## {name}", "", caption, "", markdown_table(table), ""]
        relevant = claims_for(claims, experiment)
        if relevant:
            report += ["| paper claim | published | scale of the claim | measured here | our scale |", "|---|---|---|---|---|"]
            for claim in relevant:
                report.append(f"| {claim['description']} ({claim['source']}) | {claim['value']} | {claim['scale']} | "
                              f"{measured_value(results, claim['measure'])} | {scale or 'as written'} |")
            report.append("")
        if not args.no_plots:
            plot(results, name, os.path.join(out, name + ".png"))
            report += [f"![{name}]({name}.png)", ""]
    with open(os.path.join(out, "report.md"), "w") as file:
        file.write("\n".join(report) + "\n")
    print(f"report: wrote {os.path.join(out, 'report.md')}")


if __name__ == "__main__":
    main()
