"""The optional pyiqa extra: pyiqa's metrics registered beside ours with its licence, called through pyiqa's
documented API (``create_metric(name, device=...)``, then ``metric(target[, ref])`` on RGB tensors in
``[0, 1]``), created once, ready once pyiqa has loaded them, and a clear message when pyiqa cannot fetch its
weights. pyiqa itself (with timm and transformers) is not installed in CI: a stand-in with pyiqa's API
answers here; the adapter is run against the real pyiqa by hand (see the issue's note)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core.metrics import MetricRegistry, _pyiqa


class _StandIn:
    """pyiqa's ``InferenceModel`` as far as the adapter uses it: NR gives the mean, FR the mean |difference|."""

    def __init__(self, name: str, device: str, calls: list):
        self.name, self.device, self.calls = name, device, calls

    def __call__(self, target: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append((self.name, self.device, tuple(target.shape), target.dtype, float(target.max())))
        assert target.ndim == 4 and target.shape[1] == 3 and float(target.min()) >= 0 and float(target.max()) <= 1
        if ref is None:
            return target.mean(dim=(1, 2, 3))
        return (target - ref).abs().mean(dim=(1, 2, 3))[:, None]  # some pyiqa metrics answer (N, 1)


@pytest.fixture
def pyiqa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list = []
    created: list = []

    def create_metric(name: str, as_loss: bool = False, device=None):
        created.append((name, device))
        if name == "liqe":
            raise OSError("Connection refused: huggingface.co")
        return _StandIn(name, device, calls)

    module = types.SimpleNamespace(create_metric=create_metric, calls=calls, created=created)
    monkeypatch.setitem(__import__("sys").modules, "pyiqa", module)
    monkeypatch.setattr(_pyiqa, "_loaded", {})
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return module


def test_the_metrics_are_registered_with_pyiqas_licence_and_scored_through_its_api(pyiqa) -> None:
    registry = MetricRegistry()
    _pyiqa.register_pyiqa(registry)
    assert list(registry) == ["pyiqa-maniqa", "pyiqa-maniqa-pipal", "pyiqa-topiq-nr", "pyiqa-topiq-fr", "pyiqa-liqe",
                              "pyiqa-musiq"]
    assert registry.names("no-reference") == ["pyiqa-maniqa", "pyiqa-maniqa-pipal", "pyiqa-topiq-nr", "pyiqa-liqe",
                                              "pyiqa-musiq"]
    for metric in registry.values():
        assert "PolyForm-Noncommercial" in metric.weights[0].licence and "non-commercial" in metric.weights[0].licence
        assert metric.to_json()["weights"][0]["licence"] == metric.weights[0].licence
    maniqa, topiq_fr = registry["pyiqa-maniqa"], registry["pyiqa-topiq-fr"]
    assert not maniqa.ready()  # pyiqa has not fetched it yet
    options = core.metrics.MetricOptions()
    image = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert maniqa.compute(image, None, options) == pytest.approx(image.mean() / 255, rel=1e-6)
    assert maniqa.ready() and registry["pyiqa-maniqa"].ready()  # once loaded, for this process and the next
    assert (Path(core.default_weights_dir()) / "metrics" / "pyiqa-loaded" / "maniqa").is_file()
    grey = image[:, :, :1]
    assert maniqa.compute(grey, None, options) == pytest.approx(grey.mean() / 255, rel=1e-6)  # read as RGB
    assert maniqa.compute(image.astype(np.uint16) * 257, None, options) == pytest.approx(image.mean() / 255, rel=1e-6)
    assert pyiqa.created == [("maniqa", "cpu")]  # created once
    other = image[::-1].copy()
    expected = np.abs(image / 255 - other / 255).mean()
    assert topiq_fr.compute(image, other, options) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="full-reference"):
        topiq_fr.compute(image, None, options)
    with pytest.raises(ValueError, match="same shape"):
        topiq_fr.compute(image, other[:30], options)
    assert {call[3] for call in pyiqa.calls} == {torch.float32}


def test_offline_pyiqa_says_where_its_weights_go(pyiqa, tmp_path: Path) -> None:
    registry = MetricRegistry()
    _pyiqa.register_pyiqa(registry)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(core.errors.WeightsMissingError, match=r"pyiqa could not load liqe .*Connection refused.*"
                                                              + str(tmp_path / "torch" / "hub" / "pyiqa")):
        registry["pyiqa-liqe"].compute(image, None, core.metrics.MetricOptions())
    assert not registry["pyiqa-liqe"].ready()
    registry["pyiqa-topiq-nr"].download(None)  # a download is pyiqa creating the metric (and fetching its files)
    assert registry["pyiqa-topiq-nr"].ready() and ("topiq_nr", "cpu") in pyiqa.created


def test_the_extra_is_registered_only_where_pyiqa_can_be_imported() -> None:
    registered = [name for name in core.METRICS if name.startswith("pyiqa-")]
    assert bool(registered) == _pyiqa.pyiqa_available()
    if not registered:  # as in CI: pyiqa is installed without timm and transformers, for MUSIQ's test only
        assert "pyiqa" not in core.METRICS.names() and core.METRICS["musiq"].reference.startswith("google-research")
