"""Benchmark and sweep charts (Altair), built to be read at a glance and not to mislead.

* Means are dots, not bars: a bar's length says "value", so a bar must start at zero, and from
  zero 27.8 and 28.6 dB look the same. A dot plot's axis may span the data, so small
  differences show at their true proportion, with the values printed beside the dots.
* One colour per method, the same in every chart and on every page (bicubic is always the same
  hue), from a palette of well-separated hues; methods are named on the axis in full (no legend
  to cut, no rotated labels).
* Both Benchmark charts have the same height, which grows with the number of methods.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

import core

ROW_HEIGHT = 36  # px per method
MIN_HEIGHT = 180
AXES_HEIGHT = 90  # px for the title and the value axis, on top of the plot's height
# tableau10: ten distinct hues; methods beyond ten repeat them, still named on the axis
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
_BASELINES = ("hr", "bicubic", "bicubic-opencv", "lanczos")  # the first hues, in this order


def method_colours(methods: list[str]) -> list[str]:
    """The colour of each method: baselines first, then models in the catalogue's order, so a method keeps its
    colour whatever else a chart shows."""
    order = [*_BASELINES, *(info.name for info in core.list_models())]
    return [PALETTE[(order.index(m) if m in order else len(order) + i) % len(PALETTE)] for i, m in enumerate(methods)]


def height(methods: int) -> int:
    return max(MIN_HEIGHT, ROW_HEIGHT * methods)


def value_domain(values: pd.Series) -> list[float]:
    """An axis range around ``values`` with a margin, so small differences are visible."""
    clean = values.dropna()
    if clean.empty:
        return [0.0, 1.0]
    low, high = float(clean.min()), float(clean.max())
    margin = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    return [low - margin, high + margin]


def _axes(metric: str, column: str, methods: list[str], values: pd.Series) -> tuple[alt.X, alt.Y, alt.Color]:
    info = core.METRICS[metric]
    better = "higher" if info.higher_is_better else "lower"
    title = f"{column} ({better} is better{', ' + info.unit if info.unit else ''})"
    x = alt.X(f"{column}:Q", title=title, scale=alt.Scale(domain=value_domain(values), zero=False, nice=False))
    y = alt.Y("method:N", sort=methods, title=None, axis=alt.Axis(labelLimit=0))
    colour = alt.Color("method:N", scale=alt.Scale(domain=methods, range=method_colours(methods)), legend=None)
    return x, y, colour


def means_chart(means: pd.DataFrame, metric: str, column: str) -> alt.LayerChart:
    """Per-method means as a dot plot on an axis that spans them, each dot labelled with its value."""
    data = means[["method", column]].dropna()
    methods = means["method"].tolist()
    x, y, colour = _axes(metric, column, methods, data[column])
    base = alt.Chart(data).encode(x=x, y=y)
    dots = base.mark_point(filled=True, size=160, opacity=1).encode(
        color=colour, tooltip=["method", alt.Tooltip(column, format=".4f")])
    labels = base.mark_text(align="left", dx=10, color="#888").encode(text=alt.Text(f"{column}:Q", format=".3f"))
    return (dots + labels).properties(height=height(len(methods)), title=f"Mean {column} per method")


def sweep_chart(points: pd.DataFrame, x_title: str, metric: str) -> alt.Chart:
    """A sweep's score per parameter value, one line per method, on a value axis that spans the scores."""
    info = core.METRICS[metric]
    methods = list(dict.fromkeys(points["method"]))
    title = f"{info.title} {info.arrow}" + (f" ({info.unit})" if info.unit else "")
    y = alt.Y("score:Q", title=title, scale=alt.Scale(domain=value_domain(points["score"]), zero=False, nice=False))
    colour = alt.Color("method:N", scale=alt.Scale(domain=methods, range=method_colours(methods)),
                       legend=alt.Legend(orient="bottom", title=None, labelLimit=0))
    return (alt.Chart(points.dropna(subset=["score"])).mark_line(point=True)
            .encode(x=alt.X("value:Q", title=x_title), y=y, color=colour,
                    tooltip=["method", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("score:Q", format=".4f")])
            .properties(height=300))


def images_chart(rows: pd.DataFrame, metric: str, column: str, methods: list[str]) -> alt.Chart:
    """Every image's score, one row of points per method (hover for the image's name)."""
    data = rows[["image", "method", column]].dropna()
    x, y, colour = _axes(metric, column, methods, data[column])
    return (alt.Chart(data).mark_circle(size=70, opacity=0.75)
            .encode(x=x, y=y, color=colour, tooltip=["image", "method", alt.Tooltip(column, format=".4f")])
            .properties(height=height(len(methods)), title=f"{column} per image"))


KERNEL_CELL = 9  # px per kernel tap


def kernel_chart(kernel, title: str) -> alt.Chart:
    """A blur kernel as a heat map with its colour scale (tap weights; they sum to 1)."""
    size = kernel.shape[0]
    data = pd.DataFrame([{"x": x - size // 2, "y": y - size // 2, "weight": float(kernel[y, x])}
                         for y in range(size) for x in range(kernel.shape[1])])
    low = min(0.0, float(kernel.min()))  # sinc kernels have negative lobes
    colour = alt.Color("weight:Q", scale=alt.Scale(scheme="inferno", domain=[low, float(kernel.max())]),
                       legend=alt.Legend(title="weight", format=".3f", gradientLength=size * KERNEL_CELL))
    return (alt.Chart(data, title=title).mark_rect()
            .encode(x=alt.X("x:O", title=None, axis=None), y=alt.Y("y:O", title=None, axis=None), color=colour,
                    tooltip=["x", "y", alt.Tooltip("weight:Q", format=".5f")])
            .properties(width=alt.Step(KERNEL_CELL), height=alt.Step(KERNEL_CELL)))
