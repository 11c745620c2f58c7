"""The seams: an engine or a metric added by one registration reaches every front end and executor
that lists engines or metrics, with no other change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from cli.main import main
from core.engines import ENGINES, Runner, ShapeLimits
from core.metrics import FULL_REFERENCE, METRICS, MetricInfo


class _NearestEngine:
    """A toy engine: nearest-neighbour enlargement by the network's scale, on the CPU only."""

    name = "nearest-test"

    def version(self) -> str | None:
        return "0.1"

    def unsupported(self, info: core.ModelInfo, choice: core.DeviceChoice) -> str | None:
        return None if choice.device == "cpu" else f"{self.name} runs on the CPU only."

    def bytes_per_pixel(self, profile, choice: core.DeviceChoice) -> float | None:
        return 1000.0 if choice.precision == "fp32" else None  # in bf16: no bound stated

    def build(self, request) -> Runner:
        scale = request.descriptor.scale
        return Runner(lambda tensor: torch.nn.functional.interpolate(tensor, scale_factor=scale, mode="nearest"),
                      note="toy")


@pytest.fixture
def toy_engine(monkeypatch: pytest.MonkeyPatch):
    with ENGINES.scoped():
        ENGINES.add(_NearestEngine())
        yield ENGINES.get("nearest-test")


def test_an_engine_registered_once_runs_and_is_offered_everywhere(toy_engine, weights_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    image = core.load_sample("chelsea")[:40, :48]
    upscaler = core.Upscaler.load("realesr-animevideov3", device="cpu", engine="nearest-test")
    assert upscaler.engine == "nearest-test" and "nearest-test (toy)" in upscaler.describe()
    out = upscaler.upscale(image, core.UpscaleSettings(tile=0)).image
    assert np.array_equal(out, np.repeat(np.repeat(image, 4, axis=0), 4, axis=1))  # its forward ran
    assert upscaler.activation_bytes_per_pixel() == 1000.0  # its memory bound sizes the tiles
    monkeypatch.setenv("STUDIO_ENGINE", "nearest-test")  # the setting accepts it
    assert core.engines.default_engine() == "nearest-test"
    assert "nearest-test 0.1" in core.engines._choice.machine_key()  # a new version measures again
    assert "nearest-test" in core.engines.cpu_engines(upscaler.info)  # auto measures it
    assert main(["engines", "realesr-animevideov3"]) == 0  # the CLI table has its column
    assert "nearest-test" in capsys.readouterr().out.splitlines()[0]
    with pytest.raises(core.errors.DeviceUnavailableError, match="CPU only"):
        core.Upscaler(core.load_model("realesr-animevideov3"), core.DeviceChoice("mps", "fp32", "test"),
                      "nearest-test")


@pytest.mark.slow
def test_auto_measures_the_engines_of_the_device_and_precision_it_runs_on(toy_engine, weights_dir: Path) -> None:
    """Issue 42.5: ``auto`` measured on the CPU in fp32 only, and elsewhere took the first engine. Where two engines
    can run a model on another device or precision (CPU bf16 here; CUDA with a TensorRT engine is the same path),
    it measures them there and remembers the result for that place alone; an engine that states no memory bound
    there gets the device's default tile."""
    bf16 = core.DeviceChoice("cpu", "bf16", "test")
    loaded = core.load_model("realesr-animevideov3")
    said: list[str] = []
    upscaler = core.Upscaler(loaded, bf16, "auto", status=said.append)
    measured = upscaler.engine_choice
    assert measured is not None and [t.engine for t in measured.trials] == ["torch", "nearest-test"]
    assert upscaler.engine == "torch" and not measured.trial("nearest-test").agrees  # nearest is not the network
    assert any("on cpu · bf16" in line for line in said), said
    assert core.engines.auto_engine(loaded.info, bf16) == measured
    assert core.engines.auto_engine(loaded.info) is None  # the CPU in fp32 was not measured by this
    assert core.engines.place_of(bf16) == "cpu · bf16" and core.engines.place_of(core.engines.CPU_FP32) == ""
    again = core.Upscaler(loaded, bf16, "auto")
    assert again.engine_choice == measured  # remembered: no second measurement
    toy = core.Upscaler(loaded, bf16, "nearest-test")
    assert toy.activation_bytes_per_pixel() is None and toy.tile_for(core.UpscaleSettings()) == (384, 1)
    assert core.engines.forget_engine(loaded.info, bf16) and core.engines.auto_engine(loaded.info, bf16) is None


def test_an_unknown_engine_is_refused_with_the_registered_names() -> None:
    with pytest.raises(ValueError, match="one of auto, torch, ncnn, openvino.*Did you mean 'ncnn'"):
        core.Upscaler.load("realesr-animevideov3", device="cpu", engine="nccn")
    with pytest.raises(ValueError, match="already registered"):
        ENGINES.add(ENGINES.get("torch"))


@pytest.fixture
def toy_metric(monkeypatch: pytest.MonkeyPatch):
    def mae(image: np.ndarray, reference: np.ndarray | None, options) -> float:
        if reference is None or reference.shape != image.shape:
            raise ValueError("MAE needs a reference of the same size.")
        return float(np.mean(np.abs(image.astype(np.float64) - reference)))

    metric = MetricInfo("mae-test", "MAE", FULL_REFERENCE, False, "", "Mean absolute error (a test metric).",
                        (0.0, 255.0), "RGB", "none", "numpy", mae)
    with METRICS.scoped():
        METRICS.add(metric)
        yield metric


def test_a_metric_registered_once_is_computed_by_every_entry_point(toy_metric, tmp_path: Path) -> None:
    hr = core.load_sample("coffee")[:96, :128]
    lr = core.resize(hr, (24, 32), "matlab")
    up = core.resize(lr, (96, 128), "matlab")
    expected = float(np.mean(np.abs(up.astype(np.float64) - hr)))
    assert core.compute_metric("mae-test", up, hr) == expected
    assert core.score_images({"bicubic": up}, hr)["bicubic"]["mae-test"] == expected
    assert core.score_images({"bicubic": up})["bicubic"].get("mae-test") is None  # full-reference: not without HR
    core.write_png(tmp_path / "hr" / "coffee.png", hr)
    result = core.evaluate(core.open_dataset(tmp_path / "hr", 4), ["bicubic"], ["mae-test", "psnr"])
    assert result.rows[0].metrics["mae-test"] == pytest.approx(expected)
    out = tmp_path / "run"
    assert main(["evaluate", "--dataset", str(tmp_path / "hr"), "--methods", "bicubic", "--metrics", "mae-test",
                 "--out", str(out), "-q"]) == 0
    assert json.loads((out / "results.json").read_text())["rows"][0]["metrics"]["mae-test"] == pytest.approx(expected)


def test_an_unknown_metric_is_refused_with_a_suggestion() -> None:
    with pytest.raises(core.errors.UnknownNameError, match="Did you mean 'psnr'"):
        core.compute_metric("psnt", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))
    assert METRICS.names(kind="no-reference") == ["niqe", "clipiqa", "clipiqa-ensemble", "musiq",
                                                      "musiq-spaq", "musiq-paq2piq", "musiq-ava"]
    assert METRICS.names(kind=FULL_REFERENCE) == ["psnr", "ssim", "lpips-alex", "lpips-vgg", "dists"]


class _Fixed64Engine:
    """A toy engine with one fixed input shape, 64x64 (a TensorRT engine built for one profile): the network
    itself, refusing any other shape, and something to free when released."""

    name = "fixed64-test"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.released = 0

    def version(self) -> str | None:
        return "0.1"

    def unsupported(self, info: core.ModelInfo, choice: core.DeviceChoice) -> str | None:
        return None if choice.device == "cpu" else f"{self.name} runs on the CPU only."

    def bytes_per_pixel(self, profile, choice: core.DeviceChoice) -> float | None:
        return 1000.0

    def build(self, request) -> Runner:
        descriptor = request.descriptor

        def forward(tensor: torch.Tensor) -> torch.Tensor:
            self.shapes.append(tuple(tensor.shape[-2:]))
            if tuple(tensor.shape[-2:]) != (64, 64):
                raise RuntimeError(f"this engine was built for 64x64 inputs, got {tuple(tensor.shape)}")
            with torch.inference_mode():
                return descriptor(tensor)

        def release() -> None:
            self.released += 1

        return Runner(forward, shapes=ShapeLimits(minimum=64, optimal=64, maximum=64), release=release,
                      note="64x64 only")


def test_an_engine_with_fixed_shapes_is_tiled_to_them_and_matches_the_reference(weights_dir: Path) -> None:
    """Issue 42.5: the contract could not say "only 64x64 inputs". An engine declares its shape limits; the tiler
    makes every window fit (padding what is smaller), and the result equals the reference engine's."""
    from tests.conftest import psnr

    engine = _Fixed64Engine()
    photo = core.load_sample("chelsea")[37:187, 101:304]  # 150x203: no side a multiple of 64
    reference = core.Upscaler.load("realesr-animevideov3", device="cpu", engine="torch")
    with ENGINES.scoped():
        ENGINES.add(engine)
        upscaler = core.Upscaler.load("realesr-animevideov3", device="cpu", engine="fixed64-test")
        for image in (photo, photo[:40, :50]):  # larger than the shape, and smaller than it on both sides
            engine.shapes.clear()
            ours = upscaler.upscale(image).image
            theirs = reference.upscale(image, core.UpscaleSettings(tile=0)).image
            assert ours.shape == theirs.shape == (image.shape[0] * 4, image.shape[1] * 4, 3)
            assert set(engine.shapes) == {(64, 64)}, engine.shapes  # every call had the one shape
            gain = psnr(ours / 255.0, theirs / 255.0)
            print(f"{image.shape[1]}x{image.shape[0]} through 64x64 windows: {gain:.2f} dB against the torch engine")
            assert gain >= 50 if image is photo else gain >= 35, gain
        assert upscaler.resolve(core.UpscaleSettings(tile=512)).tile == 32  # a window of 64 with 16 px context
        upscaler.release()
        upscaler.release()
        assert engine.released == 1
        with pytest.raises(ValueError, match="released"):
            upscaler.upscale(photo)
    with pytest.raises(ValueError, match="Inconsistent shape limits"):
        ShapeLimits(minimum=64, maximum=48)
    assert ShapeLimits(minimum=8, maximum=256, multiple=8).accepted(61) == 64
