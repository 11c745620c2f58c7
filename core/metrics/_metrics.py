"""The registry of metrics, every one added here, in one place, and the two ways to compute them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from ..errors import WeightsMissingError
from ._clipiqa import clip_ready, clip_weights, clipiqa, download_clip
from ._dists import dists, dists_ready, dists_weights, download_dists
from ._lpips import download_lpips, lpips, lpips_ready, lpips_weights
from ._musiq import CHECKPOINTS, download_musiq, musiq, musiq_ready, musiq_weights
from ._niqe import niqe
from ._pixel import Channel, Grey, psnr, ssim
from ._pyiqa import pyiqa_available, register_pyiqa
from ._registry import FULL_REFERENCE, NO_REFERENCE, MetricInfo, MetricOptions, MetricRegistry
from ._torch import niqe_torch, psnr_torch, ssim_torch

__all__ = ["METRICS", "check_ready", "compute_metric", "download_metric", "score_images"]


def _reference(title: str, reference: np.ndarray | None) -> np.ndarray:
    if reference is None:
        raise ValueError(f"{title} is a full-reference metric: give a reference image.")
    return reference


def _on_gpu(options: MetricOptions) -> bool:
    """Hand-made metrics run on the torch path on CUDA (where the images are); on the CPU NumPy is faster."""
    return options.device.startswith("cuda")


def _psnr(image: np.ndarray, ref: np.ndarray | None, o: MetricOptions) -> float:
    args = (image, _reference("PSNR", ref))
    if _on_gpu(o):
        return psnr_torch(*args, crop_border=o.crop_border, channel=o.channel, grey=o.grey, device=o.device)
    return psnr(*args, crop_border=o.crop_border, channel=o.channel, grey=o.grey)


def _ssim(image: np.ndarray, ref: np.ndarray | None, o: MetricOptions) -> float:
    args = (image, _reference("SSIM", ref))
    if _on_gpu(o):
        return ssim_torch(*args, crop_border=o.crop_border, channel=o.channel, grey=o.grey, device=o.device)
    return ssim(*args, crop_border=o.crop_border, channel=o.channel, grey=o.grey)


def _niqe(image: np.ndarray, _ref: np.ndarray | None, o: MetricOptions) -> float:
    if _on_gpu(o):
        return niqe_torch(image, crop_border=o.crop_border, grey=o.grey, device=o.device)
    return niqe(image, crop_border=o.crop_border, grey=o.grey)


METRICS = MetricRegistry()
METRICS.add(MetricInfo(
    "psnr", "PSNR", FULL_REFERENCE, True, "dB", "Peak signal-to-noise ratio, BasicSR/MATLAB convention.",
    (0.0, float("inf")), "Y (ITU-R BT.601) or RGB", "scale", "BasicSR calculate_psnr (test_y_channel)", _psnr,
    devices=("cpu", "cuda")))
METRICS.add(MetricInfo(
    "ssim", "SSIM", FULL_REFERENCE, True, "", "Structural similarity, 11x11 Gaussian window, sigma 1.5.",
    (-1.0, 1.0), "Y (ITU-R BT.601) or RGB", "scale", "BasicSR calculate_ssim; scikit-image structural_similarity",
    _ssim, devices=("cpu", "cuda")))
METRICS.add(MetricInfo(
    "niqe", "NIQE", NO_REFERENCE, False, "", "Natural image quality evaluator (MATLAB), on Y.",
    (0.0, float("inf")), "Y (ITU-R BT.601), 0-255 rounded", "niqe_crop_border", "MATLAB niqe; BasicSR calculate_niqe",
    _niqe, devices=("cpu", "cuda"), version=2))  # 2: blocks without negative or positive values count, as in MATLAB
for _net, _title in (("alex", "AlexNet"), ("vgg", "VGG-16")):
    METRICS.add(MetricInfo(
        f"lpips-{_net}", f"LPIPS ({_title})", FULL_REFERENCE, False, "",
        f"Learned perceptual distance, v0.1, {_title} features (Zhang et al. 2018).", (0.0, float("inf")),
        "RGB", "none", "lpips 0.1.4 (richzhang/PerceptualSimilarity): LPIPS(net='" + _net + "', version='0.1')",
        lambda image, ref, o, net=_net: lpips(image, _reference("LPIPS", ref), net=net, device=o.device),
        devices=("cpu", "cuda"), weights=lpips_weights(_net), ready=lambda net=_net: lpips_ready(net),
        download=lambda progress, net=_net: download_lpips(net, progress)))
METRICS.add(MetricInfo(
    "dists", "DISTS", FULL_REFERENCE, False, "",
    "Structure and texture similarity of VGG-16 features, learned weights (Ding et al. 2020).", (0.0, 1.0),
    "RGB", "none", "DISTS_pytorch 0.1 (dingkeyan93/DISTS): DISTS()",
    lambda image, ref, o: dists(image, _reference("DISTS", ref), device=o.device),
    devices=("cpu", "cuda"), weights=dists_weights(), ready=dists_ready, download=download_dists))
for _prompts, _what in (("clipiqa", "the authors' prompt pair, Good photo. / Bad photo."),
                        ("clipiqa-ensemble", "five antonym prompt pairs averaged, as pyiqa's clipiqa")):
    METRICS.add(MetricInfo(
        _prompts, "CLIP-IQA" if _prompts == "clipiqa" else "CLIP-IQA (5 pairs)", NO_REFERENCE, True, "",
        f"How much more CLIP RN50 finds the image like a good than a bad photo; {_what} (Wang et al. 2023).",
        (0.0, 1.0), "RGB", "none",
        "piq 0.8.0 CLIPIQA()" + ("" if _prompts == "clipiqa" else " with pyiqa 0.1.16 clipiqa's five prompt pairs"),
        lambda image, _ref, o, p=_prompts: clipiqa(image, prompts=p, device=o.device),
        devices=("cpu", "cuda"), weights=clip_weights(), ready=clip_ready, download=download_clip))

for _c in CHECKPOINTS.values():
    METRICS.add(MetricInfo(
        _c.metric, "MUSIQ" if _c.dataset == "koniq" else f"MUSIQ ({_c.title})", NO_REFERENCE, True, "",
        f"Multi-scale image quality transformer, {_c.title} checkpoint: "
        + ("the mean of a predicted 1-10 distribution" if _c.classes > 1 else "a predicted mean opinion score")
        + " (Ke et al. 2021).", _c.value_range, "RGB", "none",
        "google-research musiq (JAX / Flax + TensorFlow), checked by hand; in CI: TensorFlow's ops for the "
        "preprocessing, pyiqa 0.1.16 musiq_arch (tanh GELU) for the network",
        lambda image, _ref, o, d=_c.dataset: musiq(image, dataset=d, device=o.device),
        devices=("cpu", "cuda"), weights=musiq_weights(_c.dataset), ready=lambda d=_c.dataset: musiq_ready(d),
        download=lambda progress, d=_c.dataset: download_musiq(progress, dataset=d)))
if pyiqa_available():  # the optional extra: pyiqa's metrics, under pyiqa's non-commercial licence
    register_pyiqa(METRICS)


def check_ready(names: list[str] | tuple[str, ...]) -> None:
    """Fail before any work where a metric's weights are not here.

    Raises:
        WeightsMissingError: naming the metrics, their files, and how to get them.
    """
    missing = [METRICS.get_metric(name) for name in names if not METRICS.get_metric(name).ready()]
    if missing:
        files = "; ".join(f"{m.name}: " + ", ".join(w.name for w in m.weights) for m in missing)
        raise WeightsMissingError(
            f"These metrics need network weights that are not here ({files}). Download them with "
            f"`realesrgan-studio metrics --download {','.join(m.name for m in missing)}` (or the dashboard's "
            "Models & System page), or drop the files in weights/metrics/ (torchvision's into $TORCH_HOME).")


def download_metric(name: str, progress: Callable[[int, int | None], None] | None = None) -> None:
    """Fetch what metric ``name`` needs (a no-op where it is ready or needs nothing).

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    metric = METRICS.get_metric(name)
    if not metric.ready() and metric.download is not None:
        metric.download(progress)


def compute_metric(
    name: str,
    image: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    crop_border: int = 0,
    channel: Channel = "y",
    grey: Grey = "rgb",
    device: str = "cpu",
) -> float:
    """Metric ``name`` of ``image`` (``uint8`` / ``uint16`` HWC); full-reference metrics need ``reference``.
    Learned metrics run on ``device``.

    Raises:
        UnknownNameError: no such metric.
        ValueError: the pair cannot be scored (no reference, other sizes, too small).
    """
    return METRICS.get_metric(name).compute(image, reference, MetricOptions(crop_border, channel, grey, device))


def score_images(
    images: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    *,
    metrics: Sequence[str] | None = None,
    crop_border: int = 0,
    niqe_crop_border: int = 0,
    options: MetricOptions | None = None,
    unscorable: Literal["none", "raise"] = "none",
) -> dict[str, dict[str, float | None]]:
    """``metrics`` of every image (default: every registered one whose weights are here; full-reference ones only
    against a ``reference``). The one scoring path of the studio: ``evaluate``, ``compare``, the Upscale and
    Benchmark pages all score here, so one pair has one number everywhere.

    ``options``: the channel, grey convention and device (its ``crop_border`` is replaced by the metric's own).
    Each metric crops as it declares (:attr:`MetricInfo.crop`): ``crop_border`` for PSNR / SSIM (the scale, in
    the literature), ``niqe_crop_border`` for NIQE, nothing for the learned metrics (as their authors run them).

    A metric that cannot score an image (NIQE below 96x96, a reference of another size) is ``None`` by default, so
    a UI can show the rest; with ``unscorable="raise"`` its ``ValueError`` is raised, named by the metric.
    """
    if metrics is None:
        metrics = [m.name for m in METRICS.values() if (reference is not None or not m.full_reference) and m.ready()]
    chosen = [METRICS.get_metric(name) for name in metrics]
    table: dict[str, dict[str, float | None]] = {}
    for name, image in images.items():
        row: dict[str, float | None] = {}
        for metric in chosen:
            if metric.full_reference and reference is None:
                continue
            border = {"scale": crop_border, "niqe_crop_border": niqe_crop_border}.get(metric.crop, 0)
            try:
                row[metric.name] = metric.compute(image, reference, replace(options or MetricOptions(),
                                                                            crop_border=border))
            except ValueError as exc:
                if unscorable == "raise":
                    raise ValueError(f"{metric.title}: {exc}") from exc
                row[metric.name] = None
        table[name] = row
    return table
