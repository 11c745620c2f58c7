"""Benchmark charts (Altair), built to be read at a glance.

* The axis spans the data, not zero to the data: 27.8 and 28.6 dB must look different.
* One colour per method, the same in every chart, from a palette of well-separated hues;
  methods are named on the axis in full (no legend to cut, no rotated labels).
* Both charts have the same height, which grows with the number of methods.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

import core

ROW_HEIGHT = 36  # px per method
MIN_HEIGHT = 180
AXES_HEIGHT = 90  # px for the title and the value axis, on top of the plot's height
PALETTE = "tableau10"  # ten distinct hues; methods beyond ten repeat them, still named on the axis


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
    colour = alt.Color("method:N", scale=alt.Scale(domain=methods, scheme=PALETTE), legend=None)
    return x, y, colour


def means_chart(means: pd.DataFrame, metric: str, column: str) -> alt.LayerChart:
    """Per-method means as horizontal bars from the axis start, each labelled with its value."""
    data = means[["method", column]].dropna()
    methods = means["method"].tolist()
    x, y, colour = _axes(metric, column, methods, data[column])
    base = alt.Chart(data).encode(x=x, y=y)
    bars = base.mark_bar(clip=True).encode(color=colour, tooltip=["method", alt.Tooltip(column, format=".4f")])
    labels = base.mark_text(align="left", dx=4, color="#888").encode(text=alt.Text(f"{column}:Q", format=".3f"))
    return (bars + labels).properties(height=height(len(methods)), title=f"Mean {column} per method")


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
