"""One drawing style per optimizer, the same in every figure of every report: colour, marker and line
style from one table keyed by the registry's names (optimizers/registry.cpp; docs/optimizers.md has a
settings block per name). An entry's variant ("fngd-refresh1", "gd", "psgd-d40") is drawn as a shade of
its base optimizer with a broken line; a name the table does not know gets a grey style of its own."""
import colorsys
from collections import OrderedDict, namedtuple

# color: a hex RGB; marker and linestyle: matplotlib's; filled: whether the marker is filled.
Style = namedtuple("Style", "color marker linestyle filled")

# The registry's optimizers: first-order methods in dark or warm colours, the curvature methods in the
# strong hues of matplotlib's tab10, the subspace methods in earth tones. Every (colour, marker) differs.
BASE_STYLES = OrderedDict([
    ("sgd", Style("#000000", "o", "-", True)),
    ("adamw", Style("#e6ab02", "s", "-", True)),
    ("nadamw", Style("#8c564b", "D", "-", True)),
    ("muon", Style("#17becf", "X", "-", True)),
    ("kfac", Style("#1f77b4", "^", "-", True)),
    ("eva", Style("#393b79", "v", "-", True)),
    ("shampoo", Style("#bcbd22", "P", "-", True)),
    ("soap", Style("#e377c2", "d", "-", True)),
    ("tengrad", Style("#d62728", "h", "-", True)),
    ("fngd", Style("#ff7f0e", "*", "-", True)),
    ("ngd", Style("#2ca02c", "p", "-", True)),
    ("sngd", Style("#9467bd", "H", "-", True)),
    # The official code's SNGD: a registry entry of its own, drawn as SNGD's shade.
    ("sngd-rfim", Style("#b07aa1", "8", "--", True)),
    ("dldr-psgd", Style("#637939", ">", "-", True)),
    ("dldr-pbfgs", Style("#843c39", "<", "-", True)),
    # The plugin guide's example (docs/optimizers.md, "Adding an optimizer").
    ("signsgd", Style("#fb9a99", "x", "-", True)),
])

# The low-rank suites' compression methods (scripts/ngdreport/lowrank.py, method_of), drawn in their
# Pareto figures instead of optimizers: the spectral measures as regularizers (solid), the rank rules
# (dash-dot), the pre-set formats (dashed). Every (colour, marker) differs among them.
METHOD_STYLES = OrderedDict([
    ("l1-reg", Style("#e41a1c", "o", "-", True)),
    ("hoyer-reg", Style("#377eb8", "s", "-", True)),
    ("hoyer_square-reg", Style("#4daf4a", "^", "-", True)),
    ("effective_rank-reg", Style("#984ea3", "D", "-", True)),
    ("budget-rule", Style("#ff7f00", "v", "-.", True)),
    ("ratio-rule", Style("#a65628", "<", "-.", True)),
    ("energy-rule", Style("#f781bf", ">", "-.", True)),
    ("effective_rank-rule", Style("#6a3d9a", "*", "-.", False)),
    ("dense", Style("#000000", "P", "--", False)),
    ("matrix", Style("#1b9e77", "h", "--", True)),
    ("tt", Style("#d95f02", "X", "--", True)),
    ("tucker2", Style("#7570b3", "d", "--", True)),
])

# What a variant may be a shade of: an optimizer, or a compression method (its storage pipelines).
FIXED_STYLES = OrderedDict(list(BASE_STYLES.items()) + list(METHOD_STYLES.items()))

# Variants of one base, in name order: a lighter, a darker, a much lighter shade; each with its own
# broken line and a hollow marker.
VARIANT_SHADES = ((0.45, "--"), (-0.45, ":"), (0.7, "-."), (-0.7, (0, (5, 1, 1, 1))))
UNKNOWN_MARKERS = ("1", "2", "3", "4", "+", "|", "_", ".")


def shade(color, amount):
    """`color` moved towards white (amount > 0) or black (amount < 0) by |amount| of the way, in
    lightness; black moves to a grey."""
    red, green, blue = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    hue, lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
    lightness = lightness + (1 - lightness) * amount if amount > 0 else lightness * (1 + amount)
    red, green, blue = colorsys.hls_to_rgb(hue, min(0.9, lightness), saturation)
    return "#" + "".join(f"{round(255 * c):02x}" for c in (red, green, blue))


class Styles:
    """Styles for the optimizers of one report: {name: base optimizer} for every name a figure may draw
    (an entry's variant or its optimizer); the same name always gets the same style."""

    def __init__(self, bases):
        self.styles = {}
        variants = OrderedDict()
        unknown = []
        for name, base in sorted(bases.items()):
            if name in BASE_STYLES:
                self.styles[name] = BASE_STYLES[name]
            elif name in METHOD_STYLES:
                self.styles[name] = METHOD_STYLES[name]
            elif base in FIXED_STYLES and base != name:
                variants.setdefault(base, []).append(name)
            else:
                unknown.append(name)
        for base, names in variants.items():
            for index, name in enumerate(names):
                amount, linestyle = VARIANT_SHADES[index % len(VARIANT_SHADES)]
                round_ = index // len(VARIANT_SHADES)  # a fifth variant of one base: half the shade, and so on
                color = shade(FIXED_STYLES[base].color, amount / (1 + round_))
                self.styles[name] = Style(color, FIXED_STYLES[base].marker, linestyle, round_ % 2 == 1)
        for index, name in enumerate(unknown):
            grey = 0.25 + 0.5 * ((index * 0.381966) % 1)  # golden-ratio steps through the greys
            self.styles[name] = Style(shade("#000000", grey), UNKNOWN_MARKERS[index % len(UNKNOWN_MARKERS)],
                                      ":", True)

    @classmethod
    def of(cls, results):
        """Styles for every optimizer and variant of these result files."""
        return cls({r["variant"]: r["optimizer"] for r in results})

    def __getitem__(self, name):
        if name not in self.styles:  # a name the report did not announce: styled like an unknown one
            self.styles.update(Styles({name: name}).styles)
        return self.styles[name]

    def line_kwargs(self, name, markers=True):
        style = self[name]
        kwargs = {"color": style.color, "linestyle": style.linestyle, "linewidth": 1.8}
        if markers:
            kwargs.update(marker=style.marker, markersize=6, markeredgecolor=style.color,
                          markerfacecolor=style.color if style.filled else "white", markeredgewidth=1.2)
        return kwargs
