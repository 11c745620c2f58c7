"""Benchmark and sweep charts: dots on axes around the data (never bars that do not start at zero), one
colour per method on every chart, full names, equal heights."""

from __future__ import annotations

import pandas as pd

from dashboard import charts


def _position(value: float, domain: list[float]) -> float:
    """Where on the axis (0 to 1) a dot of ``value`` sits."""
    return (value - domain[0]) / (domain[1] - domain[0])


def test_close_means_look_different_as_dots_and_methods_are_named_in_full() -> None:
    methods = ["bicubic", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"]
    means = pd.DataFrame({"method": methods, "PSNR ↑": [28.6, 27.8, 28.1]})
    spec = charts.means_chart(means, "psnr", "PSNR ↑").to_dict()
    assert spec["layer"][0]["mark"]["type"] == "point"  # a bar's length would claim the value from zero
    dots = spec["layer"][0]["encoding"]
    domain = dots["x"]["scale"]["domain"]
    assert dots["x"]["scale"]["zero"] is False and 27.0 < domain[0] < 27.8 and 28.6 < domain[1] < 29.5
    assert _position(28.6, domain) - _position(27.8, domain) > 0.5  # from zero they would sit 3 % apart
    assert dots["y"]["axis"]["labelLimit"] == 0 and dots["y"]["sort"] == methods  # no truncated names
    assert dots["color"]["scale"] == {"domain": methods, "range": charts.method_colours(methods)}
    assert dots["color"]["legend"] is None
    assert "higher is better" in dots["x"]["title"] and "dB" in dots["x"]["title"]
    assert spec["layer"][1]["mark"]["type"] == "text"  # each dot labelled with its value


def test_a_method_keeps_its_colour_whatever_else_is_shown() -> None:
    alone = charts.method_colours(["lanczos"])[0]
    assert charts.method_colours(["bicubic", "lanczos", "realesr-animevideov3"])[1] == alone
    assert charts.method_colours(["realesr-animevideov3", "lanczos"])[1] == alone
    assert len(set(charts.method_colours(["hr", "bicubic", "bicubic-opencv", "lanczos", "RealESRGAN_x4plus"]))) == 5


def test_the_sweep_axis_spans_the_scores_not_zero() -> None:
    points = pd.DataFrame({"value": [0, 1, 2] * 2, "method": ["bicubic"] * 3 + ["lanczos"] * 3,
                           "score": [30.1, 29.5, 28.7, 30.4, 29.9, 29.0], "metric": "psnr"})
    spec = charts.sweep_chart(points, "noise", "psnr").to_dict()
    y = spec["encoding"]["y"]
    assert y["scale"]["zero"] is False and 28.0 < y["scale"]["domain"][0] < 28.7 and y["scale"]["domain"][1] > 30.4
    assert spec["encoding"]["color"]["scale"]["range"] == charts.method_colours(["bicubic", "lanczos"])


def test_both_charts_share_colours_and_height() -> None:
    methods = [f"method {i}" for i in range(8)]
    means = pd.DataFrame({"method": methods, "NIQE ↓": [4 + i / 10 for i in range(8)]})
    rows = pd.DataFrame({"image": [f"img{j}" for j in range(16)], "method": methods * 2,
                         "NIQE ↓": [4 + j / 20 for j in range(16)]})
    bar = charts.means_chart(means, "niqe", "NIQE ↓").to_dict()
    dots = charts.images_chart(rows, "niqe", "NIQE ↓", methods).to_dict()
    assert bar["height"] == dots["height"] == 8 * charts.ROW_HEIGHT  # grows with the methods
    assert charts.means_chart(means.head(2), "niqe", "NIQE ↓").to_dict()["height"] == charts.MIN_HEIGHT
    assert dots["encoding"]["color"]["scale"] == bar["layer"][0]["encoding"]["color"]["scale"]
    assert "lower is better" in dots["encoding"]["x"]["title"]
    assert {t["field"] for t in dots["encoding"]["tooltip"]} >= {"image", "method"}


def test_value_domain_handles_equal_and_missing_values() -> None:
    assert charts.value_domain(pd.Series([0.5, 0.5])) == [0.475, 0.525]
    assert charts.value_domain(pd.Series([None, None], dtype=float)) == [0.0, 1.0]
    low, high = charts.value_domain(pd.Series([0.70, 0.72, None]))
    assert low < 0.70 and high > 0.72 and high - low < 0.03


def test_kernel_heat_map_has_its_colour_scale() -> None:
    import core

    kernel = core.degradation.make_kernel(core.degradation.KernelParams("sinc", 11, omega=1.0))  # negative lobes
    spec = charts.kernel_chart(kernel, "final sinc kernel (sinc)").to_dict()
    colour = spec["encoding"]["color"]
    assert colour["legend"]["title"] == "weight" and colour["scale"]["scheme"] == "inferno"
    assert colour["scale"]["domain"] == [float(kernel.min()), float(kernel.max())] and kernel.min() < 0
    weights = [row["weight"] for row in next(iter(spec["datasets"].values()))]
    assert len(weights) == 121 and abs(sum(weights) - 1) < 1e-5  # every tap, as computed
    assert spec["width"] == spec["height"] == {"step": charts.KERNEL_CELL}  # square taps, as big whatever the size
    assert spec["title"] == "final sinc kernel (sinc)"
