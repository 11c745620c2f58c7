"""Benchmark charts: axes around the data, one colour per method, full names, equal heights."""

from __future__ import annotations

import pandas as pd

from dashboard import charts


def _bar_share(value: float, domain: list[float]) -> float:
    """How much of the axis a bar of ``value`` covers."""
    return (value - domain[0]) / (domain[1] - domain[0])


def test_close_means_look_different_and_methods_are_named_in_full() -> None:
    methods = ["bicubic", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"]
    means = pd.DataFrame({"method": methods, "PSNR ↑": [28.6, 27.8, 28.1]})
    spec = charts.means_chart(means, "psnr", "PSNR ↑").to_dict()
    bars = spec["layer"][0]["encoding"]
    domain = bars["x"]["scale"]["domain"]
    assert bars["x"]["scale"]["zero"] is False and 27.0 < domain[0] < 27.8 and 28.6 < domain[1] < 29.5
    assert _bar_share(27.8, domain) < 0.5 * _bar_share(28.6, domain)  # from zero they would be 97 % alike
    assert bars["y"]["axis"]["labelLimit"] == 0 and bars["y"]["sort"] == methods  # no truncated names
    assert bars["color"]["scale"] == {"domain": methods, "scheme": charts.PALETTE} and bars["color"]["legend"] is None
    assert "higher is better" in bars["x"]["title"] and "dB" in bars["x"]["title"]
    assert spec["layer"][1]["mark"]["type"] == "text"  # each bar labelled with its value


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
