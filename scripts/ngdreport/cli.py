"""Turns ngdbench result files into paper-style tables, plots and a report.

    scripts/report.py [RESULTS_DIR] [--out DIR] [--claims FILE] [--test-results FILE] [--no-plots]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 1), groups runs by experiment and scale,
and writes into --out (default: the parent of RESULTS_DIR):
  report.md, report.html   every table, the papers' claims next to our measurements, the plots, and
                           DIR/discussion.md when it exists (hand-written: where and why we disagree)
  verdicts.json            every claim's verdict, grouped by paper, per entry and experiment with its
                           value and interval (the export's verdicts table holds the same)
  tables/<name>.md, .tex   each experiment's table (Markdown, LaTeX booktabs); <name> = experiment@scale
  plots/<name>.png         test metric and train loss against training time and against epochs; for
                           runs with fidelity probes, a third row: cosine to exact natural gradient
                           and the γ ratio against epochs

Table rows are configurations (optimizer + grid values or drawn trial); each cell is the median over
seeds with the min–max range, and every metric names its split (val / test). The protocol
(docs/protocol.md, ngdreport/protocol.py) selects on validation data and reports test data: per study
the trial with the shortest time to the (validation) target, per optimizer the median over studies;
an unreached target counts as ∞. Speedups are ratios of those medians; claims get a rank interval
over studies at its exact level (95 %, or the most the studies allow) and a verdict, and the report says
how many verdicts may be wrong by chance; experiments of one scale get performance profiles, AlgoPerf
scores and geometric-mean speedups.
Experiments whose runs carry fidelity probes (per-epoch "fidelity" blocks) get columns with the
median over seeds of each run's median epoch mean of cos(d, Δ*), γ(d)/γ(ḡ) and, for FNGD, the cosine
of its reused coefficients to a fresh solve. Everything is regenerated from the result files alone.
"""
import argparse
import json
import os
import sys

from . import claims as verdicts
from .claims import CLAIM_HEADER, chance_note
from .figures import plot, plot_profiles
from .load import checkout_file, load_results
from .model import Metric, fidelity_keys
from .render import latex_table, markdown_table, render_html, render_markdown, write
from .scores import cross_experiment_scores
from .summary import experiment_claim_rows, findings, paper_blocks, verdict_lines, verdict_summary
from .testresults import load_test_outcomes
from .tables import (TIMING_COLUMN, budget_note, columns, experiment_caption, has_timing_suspects, machine_summary,
                     phase_rows, selection_header, selection_rows, table_rows)


def shown_path(path):
    """A path as verdicts.json records it: relative to the checkout when inside it (no machine's folders)."""
    relative = os.path.relpath(os.path.abspath(path), checkout_file())
    return relative if not relative.startswith("..") else os.path.basename(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--claims", default=checkout_file("results", "paper-claims.json"))
    parser.add_argument("--test-results", default=None,
                        help="outcomes of the tests that test claims name: results/test-verdicts.json (the default, "
                             "when present; scripts/test-verdicts.py writes it) or CTest's --output-junit file")
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
    test_results = args.test_results or checkout_file("results", "test-verdicts.json")
    tests = None
    if os.path.exists(test_results):
        try:
            tests = load_test_outcomes(test_results)
        except ValueError as error:
            sys.exit(f"report: {error}")
    elif args.test_results:
        sys.exit(f"report: {args.test_results}: no such file")

    experiments = load_results(args.results)
    metrics = {key: Metric(results) for key, results in experiments.items()}
    entries = verdicts.evaluate(claims, experiments, metrics, tests)
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
    if entries:
        blocks += [("h", 2, "Claims, by paper"), ("p", verdict_summary(entries))] + paper_blocks(entries)
    for (experiment, scale), results in experiments.items():
        name = experiment + (f"@{scale}" if scale else "")
        metric = metrics[(experiment, scale)]
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
        claim_cells = experiment_claim_rows(entries, experiment, scale)
        if claim_cells:
            blocks.append(("table", CLAIM_HEADER, claim_cells))
            # A claim's "finding": what our studies found about why it holds or not (not a bare verdict).
            blocks += findings(entries, experiment, scale)
        if not args.no_plots:
            plot(results, metric, name, os.path.join(out, "plots", name + ".png"))
            blocks.append(("img", name, f"plots/{name}.png"))
    levels = verdicts.levels_of(entries)
    if levels:
        blocks += [("h", 2, "Verdicts together"), ("p", chance_note(levels))]
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
    discussion = os.path.join(out, "discussion.md")
    if os.path.exists(discussion):
        with open(discussion) as file:
            blocks += [("h", 2, "Discussion"), ("md", file.read().strip())]
    write(os.path.join(out, "report.md"), render_markdown(blocks))
    write(os.path.join(out, "report.html"), render_html(blocks, "ngdbench report"))
    document = verdicts.verdicts_document(entries, shown_path(args.claims) if claims else None,
                                          shown_path(test_results) if tests is not None else None)
    write(os.path.join(out, "verdicts.json"), json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    for line in verdict_lines(entries):
        print(line)
    if levels:
        print("verdicts together: " + chance_note(levels))
    print(f"report: wrote {os.path.join(out, 'report.md')} and report.html ({len(experiments)} experiments)")
