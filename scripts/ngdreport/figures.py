"""The plots: per experiment, the curves of every configuration against time and epochs; per scale, the
performance profiles."""
import statistics

from . import protocol
from .model import epoch_fidelity, fidelity_keys, rows_of


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
