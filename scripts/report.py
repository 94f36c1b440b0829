#!/usr/bin/python3
"""Turns ngdbench result files into paper-style tables, plots and a report.

    scripts/report.py [RESULTS_DIR] [--out DIR] [--claims FILE] [--no-plots]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 1), groups runs by experiment and scale,
and writes into --out (default: the parent of RESULTS_DIR):
  report.md, report.html   every table, the papers' claims next to our measurements, the plots, and
                           DIR/discussion.md when it exists (hand-written: where and why we disagree)
  tables/<name>.md, .tex   each experiment's table (Markdown, LaTeX booktabs); <name> = experiment@scale
  plots/<name>.png         test metric and train loss against training time and against epochs

Table rows are configurations (optimizer + grid values); each cell is the median over seeds with the
min–max range. The test metric is the final test accuracy, or for translation runs the test BLEU of
the best-validation checkpoint. Speedups are ratios of median times to target against the best
configuration of SGD and of KFAC in the same experiment; a target never reached is "—" and counts as
infinite time. Everything is regenerated from the result files alone.
"""
import argparse
import html
import json
import math
import os
import statistics
import sys
from collections import OrderedDict

INF = float("inf")

# Result statuses in the order the seeds column lists them.
STATUSES = ("completed", "diverged", "failed")


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
            if result.get("schema_version") != 1:
                print(f"report: skipping {path}: schema_version {result.get('schema_version')}", file=sys.stderr)
                continue
            experiments.setdefault((result["experiment"], result.get("scale", "")), []).append(result)
    return experiments


def median(values):
    return statistics.median(values) if values else None


def spread(values, digits):
    if not values:
        return "—"
    return f"{median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def is_translation(results):
    return any((r.get("final") or {}).get("test_bleu") is not None for r in results)


class Metric:
    """The experiment's test metric: accuracy of the last epoch, or BLEU of the best checkpoint."""

    def __init__(self, results):
        self.translation = is_translation(results)
        self.name = "test BLEU" if self.translation else "test acc"
        self.digits = 2 if self.translation else 4
        # The per-epoch curve that stands for it in the plots.
        self.curve_key = "val_bleu" if self.translation else "test_acc"
        self.curve_name = "validation BLEU" if self.translation else "test accuracy"

    def final(self, run):
        if self.translation:
            return (run.get("final") or {}).get("test_bleu")
        return run["epochs"][-1].get("test_acc")


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

    def timing_suspects(self):
        """Completed runs with an epoch whose clock the runner flagged (load above the cores, or the
        process descheduled): their times are not comparable with clean ones."""
        return [r for r in self.completed() if r.get("timing_suspect")]

    def times_to_target(self):
        return [INF if r["time_to_target_s"] is None else r["time_to_target_s"] for r in self.completed()]

    def median_time_to_target(self):
        times = self.times_to_target()
        return median(times) if times else INF

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
        row = rows.setdefault(result["config_hash"], Row(result["label"], result["optimizer"]))
        row.runs.append(result)
    rank = lambda row: REFERENCE_ORDER.index(row.optimizer) if row.optimizer in REFERENCE_ORDER else len(REFERENCE_ORDER)
    return sorted(rows.values(), key=lambda row: (rank(row), row.label))


def best_row(rows, optimizer, metric):
    """The configuration of `optimizer` with the shortest median time to target, then the best test metric."""
    candidates = [r for r in rows if r.optimizer == optimizer and r.completed()]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.median_time_to_target(), -(median(r.finals(metric)) or 0)))


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
    return ratio_text(reference.median_time_to_target(), row.median_time_to_target())


def epoch_time_ratio(reference, row):
    """Ratio of median epoch-≥2 times (epoch 1 when the runs have one epoch)."""
    if reference is None:
        return "n/a"
    theirs = median(reference.epoch_times(False)) or median(reference.epoch_times(True))
    ours = median(row.epoch_times(False)) or median(row.epoch_times(True))
    return ratio_text(theirs, ours)


def format_time(values):
    if not values:
        return "—"
    finite = [v for v in values if not math.isinf(v)]
    middle = median(values)
    return f"{'—' if math.isinf(middle) else f'{middle:.1f}'} ({len(finite)}/{len(values)})"


def columns(metric):
    return ["optimizer", "seeds", f"final {metric.name}", "final train loss", "epoch 1 s", "epoch ≥2 s",
            "total train s", "time to target s (reached)", "speedup vs SGD", "speedup vs KFAC"]


# The column that appears only in tables with a run whose timing the runner flagged as suspect.
TIMING_COLUMN = "timing suspect (runs)"


def has_timing_suspects(results):
    return any(r.get("timing_suspect") for r in results)


def table_rows(results, metric):
    rows = rows_of(results)
    expected = len({r["seed"] for r in results})
    sgd, kfac = best_row(rows, "sgd", metric), best_row(rows, "kfac", metric)
    flagged = has_timing_suspects(results)
    cells = []
    for row in rows:
        cell = [row.label, row.seeds_note(expected), spread(row.finals(metric), metric.digits),
                spread(row.final_train_losses(), 4), spread(row.epoch_times(True), 2),
                spread(row.epoch_times(False), 2), spread(row.total_times(), 1), format_time(row.times_to_target()),
                speedup(sgd, row), speedup(kfac, row)]
        if flagged:
            suspects = len(row.timing_suspects())
            cell.append(f"{suspects}/{len(row.completed())} suspect" if suspects else "")
        cells.append(cell)
    return cells


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

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
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


def measured_value(results, metric, measure):
    """Our figure for a claim's `measure`: {"kind": "speedup", "optimizer", "reference"} (ratio of
    median times to target of the best configurations, and of their epoch times) or
    {"kind": "final_difference", "optimizer", "reference", "metric"} (difference of median finals)."""
    rows = rows_of(results)
    row, reference = best_row(rows, measure["optimizer"], metric), best_row(rows, measure["reference"], metric)
    if row is None or reference is None:
        return "not run"
    if measure["kind"] == "speedup":
        return (f"{speedup(reference, row)} in time to target; "
                f"{epoch_time_ratio(reference, row)} in time per epoch (≥2)")
    ours, theirs = median(row.finals(metric)), median(reference.finals(metric))
    if ours is None or theirs is None:
        return "not run"
    scale = 100 if metric.name == "test acc" else 1  # accuracy differences in points, like BLEU
    return f"{(ours - theirs) * scale:+.2f} {'points' if scale == 100 else 'BLEU'}"


def experiment_caption(experiment, scale, results):
    target = results[0].get("target")
    target_text = (f"{target['metric']} {'≤' if 'loss' in target['metric'] else '≥'} {target['value']}"
                   if target else "none")
    meta = results[0]["meta"]
    gpu = meta.get("gpu") or {}  # null for CPU runs
    hardware = f"{meta.get('device')} {gpu['name']}" if gpu else f"{meta.get('device')} {meta.get('cpu_model')}"
    scale_text = {"cpu": "cpu (SCALED DOWN for a CPU; not the paper's protocol)",
                  "paper": "paper (the published protocol)"}.get(scale, scale or "as written")
    return (f"{experiment}, scale {scale_text}; target {target_text}; {hardware}, threads {meta.get('threads')}, "
            f"BLAS {meta.get('blas', '?')}")


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
    """Writes through a temporary file so an interrupted report never leaves a half-written file."""
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


CLAIM_HEADER = ["paper claim", "source", "published", "scale of the claim", "measured here", "our scale"]


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
                    "Times are training seconds (evaluation excluded). Speedups: ratio of median time to target "
                    "against the best SGD / KFAC configuration; a target never reached is — and counts as infinite. "
                    "Experiments at scale cpu are scaled down (subsets, narrow models, few epochs): compare their "
                    "direction with the papers' claims, not their values.")]
    blocks += [("p", "Machine: " + line) for line in machine_summary(experiments)]
    for (experiment, scale), results in experiments.items():
        name = experiment + (f"@{scale}" if scale else "")
        metric = Metric(results)
        caption = experiment_caption(experiment, scale, results)
        header, cells = columns(metric), table_rows(results, metric)
        if has_timing_suspects(results):
            header = header + [TIMING_COLUMN]
            caption += (". Timing suspect: some runs were measured while other work competed for the cores "
                        "(load average above the core count, or CPU time below the wall time; per epoch in "
                        "the result files): their times and speedups are not comparable with clean runs")
        write(os.path.join(out, "tables", name + ".md"), f"## {name}\n\n{caption}\n\n{markdown_table(header, cells)}\n")
        write(os.path.join(out, "tables", name + ".tex"), latex_table(header, cells, caption) + "\n")
        blocks += [("h", 2, name), ("p", caption), ("table", header, cells),
                   ("p", f"Tables: tables/{name}.md, tables/{name}.tex")]
        relevant = [c for c in claims if c.get("experiment") == experiment]
        if relevant:
            blocks.append(("table", CLAIM_HEADER,
                           [[c["description"], c["source"], c["value"], c["scale"],
                             measured_value(results, metric, c["measure"]), scale or "as written"] for c in relevant]))
        if not args.no_plots:
            plot(results, metric, name, os.path.join(out, "plots", name + ".png"))
            blocks.append(("img", name, f"plots/{name}.png"))
    unmeasured = [c for c in claims if not any(e == c.get("experiment") for e, _ in experiments)]
    if unmeasured:
        blocks += [("h", 2, "Claims without a measurement here"),
                   ("table", CLAIM_HEADER[:4], [[c["description"], c["source"], c["value"], c["scale"]] for c in unmeasured])]
    discussion = os.path.join(out, "discussion.md")
    if os.path.exists(discussion):
        with open(discussion) as file:
            blocks += [("h", 2, "Discussion"), ("md", file.read().strip())]
    write(os.path.join(out, "report.md"), render_markdown(blocks))
    write(os.path.join(out, "report.html"), render_html(blocks, "ngdbench report"))
    print(f"report: wrote {os.path.join(out, 'report.md')} and report.html ({len(experiments)} experiments)")


if __name__ == "__main__":
    main()
