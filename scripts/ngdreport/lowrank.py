"""The low-rank survey's suites (experiments/lowrank/, docs/compression.md): each run's compression method,
its point (compression ratio, parameters, stored bytes, accuracy), each method's Pareto front, the two
claim kinds that decide the survey's findings, and the experiment's Pareto figure and rank table.

  compression_difference  Finding 1: a method's test accuracy minus a reference method's at one compression
                          ratio, read per study off each method's Pareto front (piecewise linear in the log
                          ratio, the front chosen on validation accuracy); the protocol's rank interval over
                          studies; `controls`: the same difference against other methods, so that the
                          verdict can say whether scale invariance explains it.
  balance                 Finding 2: per configuration (format, rank) the best median time to target over the
                          optimizers named, and the share of the sampled trajectory's variance the first d
                          principal directions explain (P-SGD's report): "balanced" when the fastest
                          configuration is an intermediate compression and the explained variance falls as
                          compression grows (Spearman's ρ < 0)."""
import math
import statistics
from collections import OrderedDict

from . import protocol
from .model import selections
from .styles import Styles

# The compression ratio at which a method's chosen point is marked and its ranks are tabulated: the
# middle of Finding 1's ratios (4×, 8×, 16×).
CHOSEN_RATIO = 8.0
# A budget rule asked for 8× lands within a few percent of it (ranks are integers; a map where the rank
# saves nothing stays dense): a front point that close to a ratio counts as at it.
RATIO_TOLERANCE = 1.05


def method_of(run):
    """The compression method of a run: "<measure>-reg" (compression_aware), "<rule>-rule" (pre_train), or
    the model's pre-set low_rank_format ("dense" at no rank); a storage pipeline adds pipeline_suffix."""
    identity = run.get("identity") or {}
    block = identity.get("compression")
    if block:
        if block.get("mode") == "compression_aware":
            method = f"{block['regularizer']['measure']}-reg"
        else:
            method = f"{block['rank_rule']['kind']}-rule"
        return method + pipeline_suffix(block.get("pipeline") or {})
    options = (identity.get("model") or {}).get("options") or {}
    if not options.get("rank") and not options.get("rank_ratio"):
        return "dense"  # a format at no rank builds every map dense
    # An identity leaves low_rank_format out at its default (OptionInfo::identity_at_default): matrix.
    return options.get("low_rank_format", "matrix")


def pipeline_suffix(pipeline):
    """"+p50+q4+coded" for a storage pipeline that prunes 50 %, quantizes at 4 bits and codes; "" for none."""
    suffix = ""
    if pipeline.get("prune_fraction"):
        suffix += f"+p{round(100 * pipeline['prune_fraction'])}"
    if pipeline.get("quantize_bits"):
        suffix += f"+q{pipeline['quantize_bits']}"
    if pipeline.get("entropy_coding"):
        suffix += "+coded"
    return suffix


def method_styles(methods):
    """Styles for methods: a pipeline's ("budget-rule+q4") as a shade of its method's fixed style."""
    return Styles({method: method.split("+")[0] for method in methods})


def is_lowrank(results):
    """Whether an experiment's runs record what the low-rank report reads (a model cost)."""
    return any(r.get("model_cost") for r in results) and any(r.get("experiment", "").startswith("lowrank-")
                                                                for r in results)


def point_of(run):
    """(compression ratio, parameters, stored bytes, val acc, test acc) of the model a completed run ends
    with: after the compression pipeline where there was one (its dequantized accuracy), else the last
    epoch's; None without a cost record."""
    if run.get("status") != "completed" or not run.get("epochs"):
        return None
    record, cost = run.get("compression"), run.get("model_cost")
    if record:
        after = record["accuracy"]["after_pipeline"]
        return (record["compression_ratio"], record["parameters"], record["stored_bytes"]["final"],
                after.get("val_acc"), after["test_acc"])
    if cost:
        last = run["epochs"][-1]
        return (cost["compression_ratio"], cost["parameters"], cost["float32_bytes"], last.get("val_acc"),
                last["test_acc"])
    return None


def points_by_method(results):
    """{method: {study: [point]}} of the completed runs."""
    methods = OrderedDict()
    for run in results:
        point = point_of(run)
        if point is not None:
            methods.setdefault(method_of(run), {}).setdefault(protocol.study_of(run), []).append(point)
    return methods


def front(points):
    """The Pareto front of (ratio, …, val acc, test acc) points by ratio and validation accuracy (test
    accuracy where a run has no validation split), ascending in ratio: no other point is at least as
    compressed and at least as accurate."""
    selecting = lambda p: p[3] if p[3] is not None else p[4]
    kept = [p for p in points
            if not any(q is not p and q[0] >= p[0] and selecting(q) >= selecting(p) and
                       (q[0] > p[0] or selecting(q) > selecting(p)) for q in points)]
    return sorted(kept, key=lambda p: p[0])


def accuracy_at(points, ratio):
    """Test accuracy on the front of `points` at `ratio`, linear in log ratio between the front's points
    around it. Below the front's least compressed point, that point's (it is at least as small and as
    accurate on validation as anything the method offers there); past its most compressed point, the
    accuracy of a point within RATIO_TOLERANCE of `ratio`; None beyond."""
    line = front(points)
    if line and ratio <= line[0][0]:
        return line[0][4]
    for low, high in zip(line, line[1:]):
        if low[0] <= ratio <= high[0]:
            if high[0] == low[0]:
                return max(low[4], high[4])
            share = (math.log(ratio) - math.log(low[0])) / (math.log(high[0]) - math.log(low[0]))
            return low[4] + share * (high[4] - low[4])
    near = [p for p in line if abs(math.log(p[0] / ratio)) <= math.log(RATIO_TOLERANCE)]
    return min(near, key=lambda p: abs(math.log(p[0] / ratio)))[4] if near else None


def per_study_accuracy(methods, method, ratio):
    """[accuracy at ratio] over the studies whose front reaches it (accuracy_at)."""
    values = [accuracy_at(points, ratio) for _, points in sorted(methods.get(method, {}).items())]
    return [v for v in values if v is not None]


def difference(methods, method, reference, ratio):
    """(points, interval in points or None, studies a side) of method − reference at ratio."""
    ours, theirs = per_study_accuracy(methods, method, ratio), per_study_accuracy(methods, reference, ratio)
    if not ours or not theirs:
        return None, None, (len(ours), len(theirs))
    interval = protocol.shift_interval(ours, theirs)
    if interval:
        interval = protocol.Interval(100 * interval.low, 100 * interval.high, interval.level)
    return 100 * (protocol.median(ours) - protocol.median(theirs)), interval, (len(ours), len(theirs))


def interval_text(value, interval):
    text = f"{value:+.2f} points"
    if interval:
        text += f" [{interval.low:+.2f}, {interval.high:+.2f}] at {100 * interval.level:.1f}".rstrip("0").rstrip(".")
        text += " %"
    else:
        text += " (no interval: fewer than 2 studies a side)"
    return text


def measure_compression_difference(results, metric, measure):
    """(value, interval, text, verdict, note) of a compression_difference measure on one experiment."""
    del metric  # the front is read from the runs' own accuracy records
    methods = points_by_method(results)
    ratio = measure["ratio"]
    value, interval, counts = difference(methods, measure["method"], measure["reference"], ratio)
    if value is None:
        missing = [m for m, n in zip((measure["method"], measure["reference"]), counts) if not n]
        return None, None, "not run", "not measured here", (
            f"no front of {' and '.join(missing)} reaches {ratio:g}× (runs missing, or all of them more than "
            f"5 % less compressed: docs/compression.md)")
    verdict = protocol.verdict(interval, measure)
    notes = []
    if interval and interval.level < protocol.TARGET_LEVEL:
        notes.append(f"at {100 * interval.level:.0f} %, below 95 %: {counts[0]} vs {counts[1]} studies")
    control_verdicts = []
    for control in measure.get("controls", []):
        control_value, control_interval, _ = difference(methods, measure["method"], control, ratio)
        if control_value is None:
            notes.append(f"vs {control}: no front spans {ratio:g}×")
            continue
        control_verdict = protocol.verdict(control_interval, measure)
        control_verdicts.append(control_verdict)
        notes.append(f"vs {control}: {interval_text(control_value, control_interval)}, {control_verdict}")
    scale_invariant_controls = control_verdicts and all(v != "reproduced" for v in control_verdicts)
    if verdict == "reproduced" and scale_invariant_controls:
        notes.append(f"reproduced vs {measure['reference']} only: not better than the scale-invariant controls, "
                     f"so scale invariance explains it")
    elif verdict == "reproduced" and control_verdicts:
        notes.append("also better than the scale-invariant controls: not scale invariance alone")
    return value, interval, f"{interval_text(value, interval)} at {ratio:g}×", verdict, "; ".join(notes) or None


def spearman(xs, ys):
    """Spearman's rank correlation (average ranks for ties); None below 3 pairs or for a constant side."""
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


def configuration_of(run):
    """A pre-set configuration's name: the variant without its optimizer suffix, the optimizer's name or its
    last word ("tt-r4-dldr-psgd" or "tt-r4-psgd" of dldr-psgd → "tt-r4")."""
    variant, optimizer = run["variant"], run["optimizer"]
    if variant == optimizer:
        return "dense"
    return variant[:-len(optimizer) - 1] if variant.endswith("-" + optimizer) else variant.rsplit("-", 1)[0]


def explained_variance(run, dimensions):
    """Σ of the first `dimensions` explained-variance ratios a subspace run reports, or None."""
    ratios = (run.get("optimizer_report") or {}).get("explained_variance_ratio")
    return sum(ratios[:dimensions]) if ratios else None


def measure_balance(results, metric, measure):
    """(value, None, text, verdict, note) of a balance measure: value = the fastest configuration's
    compression ratio; the verdict says which of its two conditions held."""
    optimizers = measure.get("optimizers", ["sgd", "dldr-psgd"])
    dimensions = measure.get("dimensions", 10)
    chosen = selections(results, metric)
    configurations = OrderedDict()  # name → {"ratio", "time", "variance"}
    for name, selection in chosen.items():
        runs = [r for r in selection.runs if r["status"] == "completed" and r.get("model_cost")]
        if not runs or runs[0]["optimizer"] not in optimizers:
            continue
        config = configurations.setdefault(configuration_of(runs[0]), {"ratio": None, "time": math.inf,
                                                                      "variance": None})
        config["ratio"] = protocol.median([r["model_cost"]["compression_ratio"] for r in runs])
        config["time"] = min(config["time"], selection.time())
        variances = [v for v in (explained_variance(r, dimensions) for r in selection.chosen.values()) if v is not None]
        if variances:
            config["variance"] = protocol.median(variances)
    if len(configurations) < 3:
        return None, None, "not run", "not measured here", "fewer than 3 configurations (format, rank) with results"
    ordered = sorted(configurations.items(), key=lambda item: item[1]["ratio"])
    fastest_name, fastest = min(ordered, key=lambda item: item[1]["time"])
    if math.isinf(fastest["time"]):
        return None, None, "no configuration reached the target", "inconclusive", None
    interior = ordered[0][0] != fastest_name and ordered[-1][0] != fastest_name
    with_variance = [(c["ratio"], c["variance"]) for _, c in ordered if c["variance"] is not None]
    rho = spearman([r for r, _ in with_variance], [v for _, v in with_variance])
    falling = rho is not None and rho < 0
    held = [f"fastest at {'an intermediate' if interior else 'an extreme'} compression ({fastest_name}, "
            f"{fastest['ratio']:.1f}×, {fastest['time']:.1f} s)",
            f"explained variance of the first {dimensions} directions "
            + ("not measured (no subspace runs)" if rho is None else
               f"{'falls' if falling else 'does not fall'} as compression grows (Spearman ρ = {rho:+.2f} over "
               f"{len(with_variance)} configurations)")]
    if interior and falling:
        verdict = "reproduced"
    elif not interior and rho is not None and not falling:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    text = f"{'balanced' if verdict == 'reproduced' else 'not balanced'}: fastest at {fastest['ratio']:.1f}×"
    return fastest["ratio"], None, text, verdict, "; ".join(held)


MEASURES = {"compression_difference": measure_compression_difference, "balance": measure_balance}


def comparison(measure):
    """What a low-rank claim compares, in words."""
    if measure["kind"] == "balance":
        return (f"time to target over {', '.join(measure.get('optimizers', ['sgd', 'dldr-psgd']))} by (format, rank), "
                f"and the first {measure.get('dimensions', 10)} directions' explained variance: fastest at an "
                f"intermediate compression and falling variance")
    controls = measure.get("controls", [])
    return (f"{measure['method']} vs {measure['reference']}: test accuracy at {measure['ratio']:g}× on each front"
            f" {'>' if measure['direction'] == 'greater' else '<'} {measure['threshold']:g} points"
            + (f" (controls: {', '.join(controls)})" if controls else ""))


def chosen_points(methods):
    """{method: (ratio, parameters, bytes, None, test) of the configuration nearest CHOSEN_RATIO in log ratio,
    medians over studies}."""
    chosen = {}
    for method, studies in methods.items():
        configurations = {}
        for points in studies.values():
            for p in points:
                configurations.setdefault(round(math.log(p[0]), 6), []).append(p)
        # Equally near in log ratio (4× and 16× around 8×): the more compressed one.
        nearest = min(configurations,
                      key=lambda log_ratio: (round(abs(log_ratio - math.log(CHOSEN_RATIO)), 6), -log_ratio))
        group = configurations[nearest]
        chosen[method] = tuple(statistics.median(p[i] for p in group) for i in (0, 1, 2)) + (
            None, statistics.median(p[4] for p in group))
    return chosen


def pareto_figure(results, name, path):
    """Test accuracy against parameters and against stored bytes, one style per method: every run a faint
    marker, the median front a line, the chosen point (nearest 8×) ringed."""
    from matplotlib.lines import Line2D

    from .figures import legend, new_figure, save

    methods = points_by_method(results)
    figure, (by_parameters, by_bytes), legend_axis = new_figure(
        2, f"{name}: test accuracy against model size, each compression method\n(markers: every run; line: "
           f"the Pareto front of all studies' runs; ringed: the configuration nearest {CHOSEN_RATIO:g}×)",
        sharey=True)
    chosen = chosen_points(methods)
    styles = method_styles(methods)
    for method, studies in methods.items():
        points = [p for ps in studies.values() for p in ps]
        line = front(points)
        for axis, index in ((by_parameters, 1), (by_bytes, 2)):
            kwargs = styles.line_kwargs(method)
            axis.plot([p[index] for p in points], [p[4] for p in points], linestyle="none", alpha=0.35,
                      **{k: v for k, v in kwargs.items() if k != "linestyle"})
            axis.plot([p[index] for p in line], [p[4] for p in line], **kwargs)
            axis.plot([chosen[method][index]], [chosen[method][4]], marker="o", markersize=13, linestyle="none",
                      markerfacecolor="none", markeredgecolor=kwargs["color"], markeredgewidth=1.5)
    for axis, label in ((by_parameters, "parameters"), (by_bytes, "stored bytes (after the pipeline)")):
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3, which="both")
    by_parameters.set_ylabel("test accuracy")
    by_parameters.set_title("against parameters")
    by_bytes.set_title("against stored bytes")
    by_bytes.tick_params(labelleft=False)
    groups = [(method, [None] * len(studies), len(studies), None) for method, studies in methods.items()]
    ring = Line2D([], [], marker="o", markersize=11, linestyle="none", markerfacecolor="none", markeredgecolor="0.3")
    legend(legend_axis, groups, styles, [(ring, f"chosen (nearest {CHOSEN_RATIO:g}×)")])
    if path:
        save(figure, path)
    return figure


def rank_rows(results):
    """Per method, its chosen configuration's per-layer ranks (first study's run): method, variant,
    compression ratio, test accuracy, "layer: ranks; …"."""
    methods = points_by_method(results)
    chosen = chosen_points(methods)
    rows = []
    for method in methods:
        ratio = chosen[method][0]
        runs = [r for r in results if method_of(r) == method and point_of(r) is not None]
        run = min(runs, key=lambda r: (abs(math.log(point_of(r)[0]) - math.log(ratio)), protocol.study_of(r)))
        layers = "; ".join(f"{layer['name']}: {'×'.join(map(str, layer['ranks'])) or 'dense'}"
                           for layer in run["model_cost"]["layers"])
        rows.append([method, run["variant"], f"{point_of(run)[0]:.1f}×", f"{point_of(run)[4]:.4f}", layers])
    return rows


RANK_HEADER = ["method", "configuration", "compression", "test acc", "per-layer ranks (chosen model, first study)"]


def report_blocks(results, name, out_plots, plots):
    """The low-rank section of an experiment: its Pareto figure and the chosen models' ranks."""
    blocks = []
    if plots:
        stem = f"{name}-pareto"
        pareto_figure(results, name, f"{out_plots}/{stem}.png")
        blocks.append(("img", f"{name}: accuracy against parameters and stored bytes", f"plots/{stem}.png",
                       f"plots/{stem}.svg"))
    blocks += [("p", f"Per-layer ranks of each method's configuration nearest {CHOSEN_RATIO:g}× (model_cost of "
                     f"the result files; 'dense' where a map stayed dense):"),
               ("table", RANK_HEADER, rank_rows(results))]
    return blocks
