"""The registry of metrics, every one added here, in one place, and the two ways to compute them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
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


def _lpips(image: np.ndarray, ref: np.ndarray | None, o: MetricOptions, *, net: str) -> float:
    return lpips(image, _reference("LPIPS", ref), net=net, device=o.device)


def _dists(image: np.ndarray, ref: np.ndarray | None, o: MetricOptions) -> float:
    return dists(image, _reference("DISTS", ref), device=o.device)


def _clipiqa(image: np.ndarray, _ref: np.ndarray | None, o: MetricOptions, *, prompts: str) -> float:
    return clipiqa(image, prompts=prompts, device=o.device)


def _download_musiq(progress: Callable[[int, int | None], None] | None, *, dataset: str) -> None:
    download_musiq(progress, dataset=dataset)


def _musiq(image: np.ndarray, _ref: np.ndarray | None, o: MetricOptions, *, dataset: str) -> float:
    return musiq(image, dataset=dataset, device=o.device)


METRICS = MetricRegistry()
METRICS.add(MetricInfo(
    name="psnr", title="PSNR", kind=FULL_REFERENCE, higher_is_better=True, unit="dB",
    description="Peak signal-to-noise ratio, BasicSR/MATLAB convention.", value_range=(0.0, float("inf")),
    colour="Y (ITU-R BT.601) or RGB", crop="scale", reference="BasicSR calculate_psnr (test_y_channel)",
    compute=_psnr, devices=("cpu", "cuda")))
METRICS.add(MetricInfo(
    name="ssim", title="SSIM", kind=FULL_REFERENCE, higher_is_better=True, unit="",
    description="Structural similarity, 11x11 Gaussian window, sigma 1.5.", value_range=(-1.0, 1.0),
    colour="Y (ITU-R BT.601) or RGB", crop="scale",
    reference="BasicSR calculate_ssim; scikit-image structural_similarity", compute=_ssim, devices=("cpu", "cuda")))
METRICS.add(MetricInfo(
    name="niqe", title="NIQE", kind=NO_REFERENCE, higher_is_better=False, unit="",
    description="Natural image quality evaluator (MATLAB), on Y.", value_range=(0.0, float("inf")),
    colour="Y (ITU-R BT.601), 0-255 rounded", crop="niqe_crop_border", reference="MATLAB niqe; BasicSR calculate_niqe",
    compute=_niqe, devices=("cpu", "cuda"),
    version=2))  # 2: blocks without negative or positive values count, as in MATLAB
for net, title in (("alex", "AlexNet"), ("vgg", "VGG-16")):
    METRICS.add(MetricInfo(
        name=f"lpips-{net}", title=f"LPIPS ({title})", kind=FULL_REFERENCE, higher_is_better=False, unit="",
        description=f"Learned perceptual distance, v0.1, {title} features (Zhang et al. 2018).",
        value_range=(0.0, float("inf")), colour="RGB", crop="none",
        reference=f"lpips 0.1.4 (richzhang/PerceptualSimilarity): LPIPS(net='{net}', version='0.1')",
        compute=partial(_lpips, net=net), devices=("cpu", "cuda"), weights=lpips_weights(net),
        ready=partial(lpips_ready, net), download=partial(download_lpips, net)))
METRICS.add(MetricInfo(
    name="dists", title="DISTS", kind=FULL_REFERENCE, higher_is_better=False, unit="",
    description="Structure and texture similarity of VGG-16 features, learned weights (Ding et al. 2020).",
    value_range=(0.0, 1.0), colour="RGB", crop="none", reference="DISTS_pytorch 0.1 (dingkeyan93/DISTS): DISTS()",
    compute=_dists, devices=("cpu", "cuda"), weights=dists_weights(), ready=dists_ready, download=download_dists))
for prompts, title, what, reference in (
        ("clipiqa", "CLIP-IQA", "the authors' prompt pair, Good photo. / Bad photo.", "piq 0.8.0 CLIPIQA()"),
        ("clipiqa-ensemble", "CLIP-IQA (5 pairs)", "five antonym prompt pairs averaged, as pyiqa's clipiqa",
         "piq 0.8.0 CLIPIQA() with pyiqa 0.1.16 clipiqa's five prompt pairs")):
    METRICS.add(MetricInfo(
        name=prompts, title=title, kind=NO_REFERENCE, higher_is_better=True, unit="",
        description=f"How much more CLIP RN50 finds the image like a good than a bad photo; {what} (Wang et al. 2023).",
        value_range=(0.0, 1.0), colour="RGB", crop="none", reference=reference,
        compute=partial(_clipiqa, prompts=prompts), devices=("cpu", "cuda"), weights=clip_weights(),
        ready=clip_ready, download=download_clip))
for checkpoint in CHECKPOINTS.values():
    METRICS.add(MetricInfo(
        name=checkpoint.metric, title="MUSIQ" if checkpoint.dataset == "koniq" else f"MUSIQ ({checkpoint.title})",
        kind=NO_REFERENCE, higher_is_better=True, unit="",
        description=f"Multi-scale image quality transformer, {checkpoint.title} checkpoint: "
                    + ("the mean of a predicted 1-10 distribution" if checkpoint.classes > 1
                       else "a predicted mean opinion score") + " (Ke et al. 2021).",
        value_range=checkpoint.value_range, colour="RGB", crop="none",
        reference="google-research musiq (JAX / Flax + TensorFlow), checked by hand; in CI: TensorFlow's ops for the "
                  "preprocessing, pyiqa 0.1.16 musiq_arch (tanh GELU) for the network",
        compute=partial(_musiq, dataset=checkpoint.dataset), devices=("cpu", "cuda"),
        weights=musiq_weights(checkpoint.dataset), ready=partial(musiq_ready, checkpoint.dataset),
        download=partial(_download_musiq, dataset=checkpoint.dataset)))
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
