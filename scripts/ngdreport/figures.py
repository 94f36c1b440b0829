"""The figures, one per question, each readable at a glance (styles.py gives every optimizer one style
across all of them):

  <name>.png / .svg            the validation metric against training time and against optimizer steps:
                               one line per optimizer (the trial chosen in each study, median over
                               studies, min–max band), every other trial thin and faint, the target
  <name>-train-loss.png / .svg the training loss, drawn the same way
  <name>-fidelity.png / .svg   with fidelity probes: cosine to the exact natural gradient and γ ratio
                               against epochs
  <name>-memory.png / .svg     with memory accounting: time to target against peak tensor memory, one
                               point per optimizer (its chosen configuration)
  <name>-step-times.png / .svg with step times: the distribution of step times per optimizer, log scale
  profiles@<scale>.png / .svg  performance profiles by time to target

Legends sit in a column of their own beside the axes; PNG for the Markdown report, SVG for the HTML one."""
import math
import statistics

from . import protocol
from .model import epoch_fidelity, fidelity_keys, peak_tensor_bytes, selections

DPI = 110
# Inches: a data panel's width and the legend column's, and a row's height.
PANEL_WIDTH, LEGEND_WIDTH, HEIGHT = 4.6, 2.5, 4.0
# Vertical offset between the profiles' lines, so that equal ones stay visible.
PROFILE_OFFSET = 0.004
# An axis spans a range wider than this ratio: logarithmic.
LOG_RANGE = 20.0
FIDELITY_LABELS = {"cosine": "cos(d, Δ*), epoch mean", "gamma_ratio": "γ(d)/γ(ḡ), epoch mean"}
FIDELITY_TITLES = {"cosine": "cosine to the exact natural gradient (1: exact)",
                   "gamma_ratio": "γ ratio (below 1: closer to NGD than SGD)"}


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.hashsalt": "ngdbench", "svg.fonttype": "path", "font.size": 9,
                         "axes.titlesize": 10, "figure.titlesize": 11})
    return plt


def new_figure(panels, title, sharey=True, width=PANEL_WIDTH):
    """A figure of `panels` data axes in a row, each `width` inches wide, and a legend column beside them
    (constrained layout)."""
    plt = pyplot()
    lines = title.count("\n") + 1
    figure = plt.figure(figsize=(width * panels + LEGEND_WIDTH, HEIGHT + 0.2 * max(0, lines - 2)),
                        layout="constrained")
    grid = figure.add_gridspec(1, panels + 1, width_ratios=[width] * panels + [LEGEND_WIDTH])
    axes = [figure.add_subplot(grid[0, 0])]
    for index in range(1, panels):
        axes.append(figure.add_subplot(grid[0, index], sharey=axes[0] if sharey else None))
    legend_axis = figure.add_subplot(grid[0, panels])
    legend_axis.axis("off")
    figure.suptitle(wrapped(title, figure.get_figwidth()))
    return figure, axes, legend_axis


def wrapped(title, width_inches):
    """The title's lines wrapped to what fits the figure's width at the title's font size (11 pt)."""
    import textwrap
    columns = int(width_inches * 72 / (0.56 * 11))
    return "\n".join(textwrap.fill(line, columns) for line in title.split("\n"))


def save(figure, png_path):
    """PNG at png_path and SVG beside it (no creation date, fixed ids: the same figure gives the same bytes)."""
    plt = pyplot()
    figure.savefig(png_path, dpi=DPI, metadata={"Software": None})
    figure.savefig(png_path[:-4] + ".svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)


def finite(value):
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def log_if_wide(axis, values, which):
    """A logarithmic x or y axis when the positive values span more than LOG_RANGE."""
    from matplotlib import ticker

    positive = [v for v in values if finite(v) and v > 0]
    if positive and max(positive) / min(positive) > LOG_RANGE:
        (axis.set_xscale if which == "x" else axis.set_yscale)("log")
        scale = axis.xaxis if which == "x" else axis.yaxis
        scale.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        scale.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        scale.set_minor_formatter(ticker.NullFormatter())


def run_curve(run, key, x_key):
    """(xs, ys) of one run: its epochs with a finite value of `key` (a fidelity key reads the epoch mean)."""
    xs, ys = [], []
    for epoch in run.get("epochs") or []:
        y = epoch_fidelity(epoch, key) if key in FIDELITY_LABELS else epoch.get(key)
        x = epoch.get(x_key) if x_key != "epoch" else epoch.get("epoch")
        if finite(x) and finite(y):
            xs.append(x)
            ys.append(y)
    return xs, ys


def median_curve(runs, key, x_key):
    """Median over runs, per epoch where every run has a finite value: (xs, ys, lows, highs)."""
    if not runs:
        return [], [], [], []
    length = min(len(r["epochs"]) for r in runs)
    xs, ys, lows, highs = [], [], [], []
    for index in range(length):
        epochs = [r["epochs"][index] for r in runs]
        values = [epoch_fidelity(e, key) if key in FIDELITY_LABELS else e.get(key) for e in epochs]
        positions = [e.get(x_key) if x_key != "epoch" else e.get("epoch") for e in epochs]
        if all(finite(v) for v in values) and all(finite(x) for x in positions):
            xs.append(statistics.median(positions))
            ys.append(statistics.median(values))
            lows.append(min(values))
            highs.append(max(values))
    return xs, ys, lows, highs


def chosen_and_others(results, metric):
    """[(optimizer, completed chosen runs, studies, the other runs)] in the tables' order."""
    out = []
    for name, selection in selections(results, metric).items():
        chosen = [r for r in selection.chosen.values() if r["status"] == "completed" and r.get("epochs")]
        chosen_ids = {id(r) for r in selection.chosen.values()}
        others = [r for r in selection.runs if id(r) not in chosen_ids and r.get("epochs")]
        out.append((name, chosen, len(selection.chosen), others))
    return out


def draw_curves(axes_by_x, groups, key, styles):
    """Per optimizer: the other trials thin and faint, the chosen trials' median with its band. Returns
    every value drawn per x key and per y (for the log-scale choice), and the names drawn."""
    drawn = {x_key: [] for x_key in axes_by_x}
    ys, names = [], set()
    for name, chosen, _, others in groups:
        style = styles[name]
        for x_key, axis in axes_by_x.items():
            for run in others:
                x, y = run_curve(run, key, x_key)
                if x:
                    axis.plot(x, y, color=style.color, linewidth=0.7, alpha=0.35, zorder=1, label="_other trial")
                    drawn[x_key] += x
                    ys.extend(y)
                    names.add(name)
            x, y, low, high = median_curve(chosen, key, x_key)
            if x:
                axis.fill_between(x, low, high, color=style.color, alpha=0.15, linewidth=0, zorder=2)
                axis.plot(x, y, zorder=3, label=name, **styles.line_kwargs(name))
                drawn[x_key] += x
                ys.extend(low + high)
                names.add(name)
    return drawn, ys, names


def legend(legend_axis, groups, styles, extra=()):
    """The optimizers (with how many studies their line is the median of) and what thin lines, bands
    and the target mean, in the legend column, anchored at its top left corner."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = [], []
    for name, chosen, studies, _ in groups:
        handles.append(Line2D([], [], **styles.line_kwargs(name)))
        labels.append(name if len(chosen) == studies else
                      f"{name} ({len(chosen)} of {studies} studies completed)" if chosen else f"{name} (none completed)")
    handles += [Line2D([], [], color="0.4", linewidth=0.7, alpha=0.6), Patch(color="0.4", alpha=0.2)]
    labels += ["other trials", "min–max over studies"]
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    legend_axis.legend(handles, labels, loc="upper left", bbox_to_anchor=(0, 1), borderaxespad=0, frameon=False,
                       fontsize=8.5, handlelength=3.2)


def curve_figure(results, metric, name, key, ylabel, what, path, styles, target=None):
    """Validation metric or train loss against training time and steps."""
    from matplotlib.lines import Line2D

    groups = chosen_and_others(results, metric)
    studies = max((g[2] for g in groups), default=0)
    figure, (by_time, by_steps), legend_axis = new_figure(
        2, f"{name}: {what}, each optimizer's chosen configuration\n(line: median over {studies} studies of the "
           f"trial chosen in each; band: min–max over studies; thin: every other trial)")
    drawn, ys, _ = draw_curves({"cumulative_train_time_s": by_time, "cumulative_steps": by_steps}, groups, key,
                               styles)
    extra = []
    if target is not None:
        for axis in (by_time, by_steps):
            axis.axhline(target[1], color="black", linewidth=1.0, linestyle=(0, (2, 2)), zorder=0)
        extra.append((Line2D([], [], color="black", linewidth=1.0, linestyle=(0, (2, 2))), target[0]))
    by_time.set_title("against training time")
    by_steps.set_title("against optimizer steps")
    by_time.set_xlabel("training time, s (evaluation excluded)")
    by_steps.set_xlabel("optimizer steps")
    by_time.set_ylabel(ylabel)
    by_steps.tick_params(labelleft=False)
    log_if_wide(by_time, drawn["cumulative_train_time_s"], "x")
    log_if_wide(by_steps, drawn["cumulative_steps"], "x")
    log_if_wide(by_time, ys, "y")
    for axis in (by_time, by_steps):
        axis.grid(alpha=0.3, which="both")
    legend(legend_axis, groups, styles, extra)
    if path:
        save(figure, path)
    return figure


def fidelity_figure(results, metric, name, keys, path, styles):
    groups = chosen_and_others(results, metric)
    figure, axes, legend_axis = new_figure(
        len(keys), f"{name}: how close each optimizer's step is to the exact natural gradient\n(fidelity probes; "
                   f"line: median over studies of the chosen trial's epoch means; band: min–max; thin: other trials)",
        sharey=False)
    probed = set()
    for axis, key in zip(axes, keys):
        probed |= draw_curves({"epoch": axis}, groups, key, styles)[2]
        axis.set_xlabel("epoch")
        axis.set_ylabel(FIDELITY_LABELS[key])
        axis.set_title(FIDELITY_TITLES[key])
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    legend(legend_axis, [group for group in groups if group[0] in probed], styles)  # the probed ones
    if path:
        save(figure, path)
    return figure


def memory_points(results, metric):
    """[(optimizer, median peak tensor bytes, median time to target)] of each optimizer's chosen
    configuration: the medians over its studies' chosen runs (a run that never reached the target counts
    ∞); optimizers whose chosen runs recorded no memory are left out."""
    points = []
    for name, selection in selections(results, metric).items():
        peaks = [p for p in (peak_tensor_bytes(r) for r in selection.chosen.values()) if p is not None]
        if peaks:
            points.append((name, protocol.median(peaks), selection.time()))
    return points


def memory_figure(results, metric, name, path, styles):
    """Time to target against peak tensor memory; optimizers that never reach the target are listed in the
    legend, not drawn."""
    from matplotlib.lines import Line2D

    points = memory_points(results, metric)
    figure, (axis,), legend_axis = new_figure(
        1, f"{name}: time to target against peak memory\n(each optimizer's chosen configuration: medians over "
           f"studies; memory: peak tensor bytes, CUDA's on a GPU)", width=PANEL_WIDTH * 1.3)
    handles, labels, xs, ys = [], [], [], []
    for optimizer, peak, seconds in points:
        handles.append(Line2D([], [], **styles.line_kwargs(optimizer)))
        if math.isinf(seconds):
            labels.append(f"{optimizer}  never reached the target ({peak / 2 ** 20:.1f} MiB)")
            continue
        kwargs = styles.line_kwargs(optimizer)
        kwargs.update(linestyle="none", markersize=9)
        axis.plot([peak / 2 ** 20], [seconds], label=optimizer, zorder=3, **kwargs)
        labels.append(optimizer)
        xs.append(peak / 2 ** 20)
        ys.append(seconds)
    axis.set_xlabel("peak tensor memory, MiB")
    axis.set_ylabel("time to target, s (median over studies)")
    log_if_wide(axis, xs, "x")
    log_if_wide(axis, ys, "y")
    axis.grid(alpha=0.3, which="both")
    legend_axis.legend(handles, labels, loc="upper left", bbox_to_anchor=(0, 1), borderaxespad=0, frameon=False,
                       fontsize=8.5, handlelength=3.2)
    if path:
        save(figure, path)
    return figure


def step_time_stats(results, metric):
    """Per optimizer with step times, matplotlib's box statistics of one run: among its chosen runs the
    one with the median p50 (the lower middle one for an even count), so every box is a real run's. Box:
    p25–p75 around the median, whiskers min to p99, the point beyond them the slowest step. Also the
    run's refresh and ordinary means ((steps, mean) each)."""
    stats = []
    for name, selection in selections(results, metric).items():
        timed = sorted((r for r in selection.chosen.values() if (r.get("step_time_s") or {}).get("p50") is not None),
                       key=lambda r: r["step_time_s"]["p50"])
        if not timed:
            continue
        times = timed[(len(timed) - 1) // 2]["step_time_s"]
        stats.append({"label": name, "whislo": times["min"], "q1": times["p25"], "med": times["p50"],
                      "q3": times["p75"], "whishi": times["p99"], "fliers": [times["max"]],
                      "refresh": times.get("refresh") or {}, "ordinary": times.get("ordinary") or {}})
    return stats


def step_time_figure(results, metric, name, path, styles):
    """Box per optimizer of a chosen run's step times (step_time_stats), log scale; refresh steps' mean as a
    filled triangle, ordinary steps' as an open one."""
    from matplotlib.lines import Line2D

    stats = step_time_stats(results, metric)
    figure, (axis,), legend_axis = new_figure(
        1, f"{name}: step times per optimizer\n(one chosen run each, the median one by p50; box p25–p75, "
           f"whiskers min–p99, dot: slowest step; triangles: mean of refresh and ordinary steps)",
        width=max(PANEL_WIDTH, 0.7 * len(stats) + 1.5))
    boxes = axis.bxp([{k: v for k, v in box.items() if k not in ("refresh", "ordinary")} for box in stats],
                     showfliers=True, patch_artist=True)
    for index, box in enumerate(stats):
        style = styles[box["label"]]
        boxes["boxes"][index].set(facecolor=style.color, alpha=0.35, edgecolor=style.color)
        boxes["medians"][index].set(color=style.color, linewidth=2)
        boxes["fliers"][index].set(marker="o", markerfacecolor=style.color, markeredgecolor=style.color)
        for kind, filled in (("refresh", True), ("ordinary", False)):
            if box[kind].get("steps") and box[kind].get("mean") is not None:
                axis.plot([index + 1.3], [box[kind]["mean"]], marker="^", linestyle="none", color=style.color,
                          markerfacecolor=style.color if filled else "white", markersize=7, label="_mean")
    axis.set_yscale("log")
    axis.set_ylabel("step time, s (log scale)")
    axis.tick_params(axis="x", labelrotation=30)
    axis.grid(alpha=0.3, which="both", axis="y")
    handles = [Line2D([], [], marker="^", linestyle="none", color="0.3", markerfacecolor="0.3"),
               Line2D([], [], marker="^", linestyle="none", color="0.3", markerfacecolor="white")]
    legend_axis.legend(handles, ["mean of refresh steps", "mean of ordinary steps"], loc="upper left",
                       bbox_to_anchor=(0, 1), borderaxespad=0, frameon=False, fontsize=8.5)
    if path:
        save(figure, path)
    return figure


def experiment_figures(results, metric, name, folder, styles):
    """Writes the experiment's figures into `folder`; returns [(file stem, alt text)] of what it wrote."""
    written = []
    target = results[0].get("target") or {}
    target_line = None
    if target.get("metric") == metric.curve_key and finite(target.get("value")):
        target_line = (f"target ({target['metric']} ≥ {target['value']:g})", target["value"])
    curve_figure(results, metric, name, metric.curve_key, metric.curve_name, metric.curve_name,
                 f"{folder}/{name}.png", styles, target_line)
    written.append((name, f"{name}: {metric.curve_name} against time and steps"))
    curve_figure(results, metric, name, "train_loss", "training loss (epoch mean)", "training loss",
                 f"{folder}/{name}-train-loss.png", styles)
    written.append((f"{name}-train-loss", f"{name}: training loss against time and steps"))
    keys = [key for key in fidelity_keys(results) if key in FIDELITY_LABELS]
    if keys:
        fidelity_figure(results, metric, name, keys, f"{folder}/{name}-fidelity.png", styles)
        written.append((f"{name}-fidelity", f"{name}: fidelity to the exact natural gradient"))
    if memory_points(results, metric):
        memory_figure(results, metric, name, f"{folder}/{name}-memory.png", styles)
        written.append((f"{name}-memory", f"{name}: time to target against peak memory"))
    if step_time_stats(results, metric):
        step_time_figure(results, metric, name, f"{folder}/{name}-step-times.png", styles)
        written.append((f"{name}-step-times", f"{name}: step times per optimizer"))
    return written


def plot_profiles(ratios, scale, path, styles):
    """Performance profiles: ρ(τ) per optimizer, best score first in the legend; optimizers never within
    4× of the best are listed, not drawn (their line would lie on 0). Equal lines are offset a little so
    each stays visible."""
    from matplotlib.lines import Line2D

    workloads = len(next(iter(ratios.values()))) if ratios else 0
    figure, (axis,), legend_axis = new_figure(
        1, f"Performance profiles by time to target, scale {scale} ({workloads} experiment{'s' if workloads != 1 else ''})\nρ(τ): the share of "
           f"experiments in which an optimizer reaches the target within τ × the best optimizer's time\n(AlgoPerf; "
           f"score B = mean of ρ over τ in [1, 4]; lines offset by up to ±{PROFILE_OFFSET * (len(ratios) - 1) / 2:.3f}"
           f" so that equal ones stay visible)", width=PANEL_WIDTH * 1.6)
    scores = {name: protocol.algoperf_score(per) for name, per in ratios.items()}
    order = sorted(ratios, key=lambda n: (-scores[n], n))
    drawn = [n for n in order if any(r <= protocol.MAX_TAU for r in ratios[n].values())]
    taus = sorted({1.0, protocol.MAX_TAU} | {r for n in drawn for r in ratios[n].values() if r <= protocol.MAX_TAU})
    handles, labels = [], []
    for index, name in enumerate(drawn):
        offset = PROFILE_OFFSET * (index - (len(drawn) - 1) / 2)
        ys = [protocol.profile(ratios[name], tau) + offset for tau in taus]
        jumps = [i for i in range(len(taus)) if i == 0 or ys[i] != ys[i - 1]]
        axis.step(taus, ys, where="post", markevery=jumps, label=name, **styles.line_kwargs(name))
        handles.append(Line2D([], [], **styles.line_kwargs(name)))
        labels.append(f"{name}  B = {scores[name]:.2f}")
    for name in order:
        if name not in drawn:
            handles.append(Line2D([], [], **styles.line_kwargs(name)))
            labels.append(f"{name}  never within {protocol.MAX_TAU:g}×")
    axis.set_xlim(1, protocol.MAX_TAU)
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("τ: time to target over the best optimizer's")
    axis.set_ylabel("ρ(τ): share of experiments")
    axis.grid(alpha=0.3)
    legend_axis.legend(handles, labels, loc="upper left", bbox_to_anchor=(0, 1), borderaxespad=0, frameon=False,
                       fontsize=8.5, handlelength=3.2, title="best score first", title_fontsize=8.5)
    if path:
        save(figure, path)
    return figure

