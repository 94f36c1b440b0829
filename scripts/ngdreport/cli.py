"""Turns ngdbench result files into paper-style tables, plots and a report.

    scripts/report.py [RESULTS_DIR] [--out DIR] [--claims FILE] [--test-results FILE] [--no-plots]

Reads RESULTS_DIR/<experiment>/<run-id>.json (schema_version 2), groups runs by experiment and scale,
and writes into --out (default: the parent of RESULTS_DIR):
  report.md, report.html   the answer first: a summary (every claim's verdict grouped by paper, the scores
                           and profiles, per experiment each optimizer's chosen configuration with its time
                           to target and final metric, the code versions and machines that produced the
                           results), then per experiment its figures, selection, costs and claims, with
                           the table of every trial last (collapsed in the HTML), and DIR/discussion.md
                           when it exists (hand-written: where and why we disagree)
  verdicts.json            every claim's verdict, grouped by paper, per entry and experiment with its
                           value and interval (the export's verdicts table holds the same)
  tables/<name>.md, .tex   each experiment's table (Markdown, LaTeX booktabs); <name> = experiment@scale
  plots/<name>[-train-loss|-fidelity|-memory|-step-times].png, .svg, plots/profiles@<scale>.png, .svg
                           one figure per question (figures.py; one style per optimizer, styles.py)

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
from . import lowrank
from .claims import CLAIM_HEADER, chance_note
from .figures import experiment_figures, plot_profiles
from .load import checkout_file, load_results
from .model import Metric, fidelity_keys
from .render import latex_table, markdown_table, render_html, render_markdown, write
from .scores import cross_experiment_scores
from .styles import Styles
from .summary import experiment_claim_rows, findings, paper_blocks, verdict_lines, verdict_summary
from .tables import (TIMING_COLUMN, budget_note, chosen_summary_header, chosen_summary_rows, code_versions, columns,
                     experiment_caption, has_timing_suspects, machine_summary, phase_rows, selection_header,
                     selection_rows, table_rows, target_text)
from .testresults import load_test_outcomes

TRIALS_NOTE = ("Each row is one configuration (optimizer and grid point or drawn trial); each cell the median "
               "[min–max] over the seeds that ran it (a drawn trial runs in one study, so its range is one value); "
               "seeds = completed/planned (+ diverged, failed). Times are training seconds (evaluation excluded); "
               "a target never reached, or a diverged run, counts as ∞ (— in speedups). Speedups: the chosen "
               "SGD / KFAC median time to target over the row's median.")


def shown_path(path):
    """A path as verdicts.json records it: relative to the checkout when inside it (no machine's folders)."""
    relative = os.path.relpath(os.path.abspath(path), checkout_file())
    return relative if not relative.startswith("..") else os.path.basename(path)


def report_name(experiment, scale):
    return experiment + (f"@{scale}" if scale else "")


def anchor(name):
    return "experiment-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def scale_note(experiments):
    scales = sorted({scale for _, scale in experiments})
    if "cpu" in scales:
        return (" Experiments at scale cpu are SCALED DOWN for a CPU (subsets, narrow models, few epochs): compare "
                "their direction with the papers' claims, not their values.")
    return ""


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--claims", default=checkout_file("results", "paper-claims.json"))
    parser.add_argument("--test-results", default=None,
                        help="outcomes of the tests that test claims name: results/test-verdicts.json (the default, "
                             "when present; scripts/test-verdicts.py writes it), CTest's --output-junit file, "
                             "gtest's XML, or the build/Testing folder of `ctest -T Test`")
    parser.add_argument("--no-plots", action="store_true")
    return parser.parse_args()


def load_inputs(args):
    """(claims, test outcomes or None, the test outcomes' path or None)."""
    claims = []
    if os.path.exists(args.claims):
        with open(args.claims) as file:
            claims = json.load(file)["claims"]
    test_results = args.test_results or checkout_file("results", "test-verdicts.json")
    if os.path.exists(test_results):
        try:
            return claims, load_test_outcomes(test_results), test_results
        except ValueError as error:
            sys.exit(f"report: {error}")
    if args.test_results:
        sys.exit(f"report: {args.test_results}: no such file")
    return claims, None, None


def summary_blocks(experiments, metrics, entries, scores, profile_files):
    """The answer first: claims by paper, the verdicts together, scores and profiles, per experiment the
    chosen configuration of each optimizer, and where the results came from."""
    blocks = [("h", 2, "Summary", "summary")]
    if entries:
        blocks += [("h", 3, "Every claim of the papers, with its verdict", "claims"), ("p", verdict_summary(entries)),
                   ("p", "Verdicts (docs/protocol.md#verdicts): reproduced when the whole interval lies beyond the "
                         "claim's threshold (inside its margin), not reproduced when wholly on the other side, "
                         "inconclusive otherwise; an entry over several experiments is reproduced when every "
                         "measured one is, and a claim of several entries likewise. Intervals are rank intervals "
                         "over studies at their exact level.")]
        blocks += paper_blocks(entries, heading_level=4)
        levels = verdicts.levels_of(entries)
        if levels:
            blocks += [("p", "The verdicts together: " + chance_note(levels))]
    for scale, (header, cells, _, names) in scores.items():
        label = scale or "as-written"
        blocks += [("h", 3, f"Scores across experiments (scale {label})", f"scores-{label}"),
                   ("p", f"Over {len(names)} experiment{'s' if len(names) != 1 else ''} ({', '.join(names)}). Per experiment each optimizer's time "
                         "to target is the median over studies of the best trial; r = time / the best optimizer's, "
                         "∞ above 4× (AlgoPerf) or when unreached or not run; ρ(τ) = share of experiments with "
                         "r ≤ τ; score B = (1/3)∫₁⁴ ρ(τ)dτ (exact for the step function). Geometric-mean speedups "
                         "count ∞ as the experiment's budget + 1 (the longest run's seconds or steps) over the "
                         "experiments both ran. Ranks by steps ignore what a step costs; ranks by time include it."),
                   ("table", header, cells)]
        if scale in profile_files:
            blocks.append(("img", f"performance profiles, scale {label}") + profile_files[scale])
    blocks += [("h", 3, "Per experiment: each optimizer's chosen configuration", "chosen"),
               ("p", "Per study the trial with the shortest time to the validation target is chosen (docs/protocol.md); "
                     "times and the final test metric are medians [min–max] over studies of the chosen trials."
                     + scale_note(experiments))]
    for (experiment, scale), results in experiments.items():
        name, metric = report_name(experiment, scale), metrics[(experiment, scale)]
        blocks += [("h", 4, name), ("p", f"{target_text(results, metric)}; {metric.split_note}. Details: the "
                                         f"section {name} below."),
                   ("table", chosen_summary_header(metric), chosen_summary_rows(results, metric))]
    header, cells = code_versions(experiments)
    blocks += [("h", 3, "Where the results come from", "provenance"),
               ("p", "Each code version that produced results, once, with the runs it covers. A modified tree "
                     "(a build from uncommitted changes) is flagged: its results belong to code no commit holds."),
               ("table", header, cells)]
    blocks += [("p", "Machine: " + line) for line in machine_summary(experiments)]
    return blocks


def experiment_blocks(experiment, scale, results, metric, entries, out, styles, plots):
    name = report_name(experiment, scale)
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
    blocks = [("h", 3, name, anchor(name)), ("p", caption)]
    if plots:
        for stem, alt in experiment_figures(results, metric, name, os.path.join(out, "plots"), styles):
            blocks.append(("img", alt, f"plots/{stem}.png", f"plots/{stem}.svg"))
    if lowrank.is_lowrank(results):
        blocks += lowrank.report_blocks(results, name, os.path.join(out, "plots"), plots)
    blocks += [("p", budget_note(results, metric)), ("table", selection_header(metric), selection_rows(results, metric))]
    phase_header, phase_cells = phase_rows(results, metric)
    if phase_header:
        blocks += [("p", "Per-phase cost of the chosen runs (median seconds per run, share of the total):"),
                   ("table", phase_header, phase_cells)]
    claim_cells = experiment_claim_rows(entries, experiment, scale)
    if claim_cells:
        blocks += [("p", "The claims measured on this experiment:"), ("table", CLAIM_HEADER, claim_cells)]
        # A claim's "finding": what our studies found about why it holds or not (not a bare verdict).
        blocks += findings(entries, experiment, scale)
    blocks.append(("details", f"All {len(cells)} configurations of {name} (every trial)",
                   [("p", TRIALS_NOTE), ("table", header, cells),
                    ("p", f"Tables: tables/{name}.md, tables/{name}.tex")]))
    return blocks


def claim_detail_blocks(entries):
    """Per paper, each entry's source, the abstract's words, its scale and what our studies found."""
    blocks = []
    for paper, claims in verdicts.by_paper(entries).items():
        inner = []
        for identifier, group in claims.items():
            for entry in group:
                claim = entry.claim
                parts = [f"{identifier}: {claim.get('description', '')}."]
                if claim.get("quote"):
                    parts.append(f"The abstract: \u201c{claim['quote']}\u201d")
                parts.append(f"Source: {claim.get('source', '—')}; published: {claim.get('value', '—')}; "
                             f"scale of the claim: {claim.get('scale', '—')}.")
                if claim.get("finding"):
                    parts.append(f"Found: {claim['finding']}")
                inner.append(("p", " ".join(parts)))
        blocks.append(("details", f"{paper}: the abstract's words, sources and findings", inner))
    return blocks


def main():
    args = parse_arguments()
    if not os.path.isdir(args.results):
        sys.exit(f"report: {args.results}: no results folder (run `make reproduce` first)")
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    for folder in ("tables", "plots"):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
    claims, tests, test_results = load_inputs(args)

    experiments = load_results(args.results)
    metrics = {key: Metric(results) for key, results in experiments.items()}
    entries = verdicts.evaluate(claims, experiments, metrics, tests)
    styles = Styles.of([r for results in experiments.values() for r in results])
    scores = cross_experiment_scores(experiments)
    profile_files = {}
    if not args.no_plots:
        for scale, (_, _, ratios, _) in scores.items():
            stem = f"plots/profiles@{scale or 'as-written'}"
            plot_profiles(ratios, scale or "as written", os.path.join(out, stem + ".png"), styles)
            profile_files[scale] = (stem + ".png", stem + ".svg")

    blocks = [("h", 1, "ngdbench report"),
              ("p", "Natural-gradient optimizers against the papers' claims, measured under one protocol "
                    "(docs/protocol.md): targets and the choice of trial use the validation split, the test split is "
                    "reported; per study the trial fastest to the target is chosen, and figures are medians over "
                    "studies." + scale_note(experiments) + " The summary comes first; each experiment's figures, "
                    "tables and every trial follow it.")]
    blocks += summary_blocks(experiments, metrics, entries, scores, profile_files)
    blocks += [("h", 2, "Experiments", "experiments")]
    for (experiment, scale), results in experiments.items():
        blocks += experiment_blocks(experiment, scale, results, metrics[(experiment, scale)], entries, out, styles,
                                    not args.no_plots)
    if entries:
        blocks += [("h", 2, "The claims in detail", "claims-in-detail")] + claim_detail_blocks(entries)
    discussion = os.path.join(out, "discussion.md")
    if os.path.exists(discussion):
        with open(discussion) as file:
            blocks += [("h", 2, "Discussion", "discussion"), ("md", file.read().strip())]
    write(os.path.join(out, "report.md"), render_markdown(blocks))
    write(os.path.join(out, "report.html"), render_html(blocks, "ngdbench report"))
    document = verdicts.verdicts_document(entries, shown_path(args.claims) if claims else None,
                                          shown_path(test_results) if test_results else None)
    write(os.path.join(out, "verdicts.json"), json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    for line in verdict_lines(entries):
        print(line)
    levels = verdicts.levels_of(entries)
    if levels:
        print("verdicts together: " + chance_note(levels))
    print(f"report: wrote {os.path.join(out, 'report.md')}, report.html and verdicts.json ({len(experiments)} "
          f"experiments)")
