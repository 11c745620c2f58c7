"""Image quality metrics that agree with the super-resolution literature (BasicSR / MATLAB), behind
one registry (:data:`METRICS`) that every front end lists.

Conventions (stated once, used everywhere):

* Inputs are edge-convention images (``uint8`` or ``uint16``, HWC, same shape for a pair).
  Values are brought to ``[0, 1]`` in ``float64`` first, so results do not depend on the bit
  depth; ``uint8`` results equal BasicSR's 0-255 computations.
* ``crop_border`` pixels are removed on every side before anything else.
* ``channel="y"``: the Y of YCbCr, ITU-R BT.601 studio range,
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for ``R, G, B`` in ``[0, 1]`` (not
  rounded). ``channel="rgb"``: all channels (PSNR over all values, SSIM averaged per channel).
* Grey images: ``grey="rgb"`` (default) reads them as RGB with three equal channels before the
  above, as BasicSR (``cv2.imread`` in colour) and published tables do, so their Y is
  ``(16 + 219 g) / 255``; ``grey="as-is"`` scores the grey channel itself (``Y = g``), which
  gives ``20 log10(255 / 219)`` = 1.32 dB less PSNR for the same error. Colour images are not
  affected.
* PSNR: ``10 log10(1 / MSE)`` (``inf`` for identical images).
* SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), population covariance,
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, mean over the valid region (scikit-image computes
  exactly this with the options used here).
* NIQE: Mittal et al. 2013 as MATLAB computes it, on Y scaled to 0-255 and rounded, 96x96
  blocks, two scales (the second made by MATLAB ``imresize(0.5)``), with the published
  pristine-model parameters (``core/data/niqe_pris_params.npz``); the local (MSCN)
  normalisation in float32 like BasicSR. Lower is better.
* LPIPS and DISTS: RGB in ``[0, 1]`` (grey read as RGB, alpha dropped), no crop, the authors'
  packages' maths on torchvision's ImageNet backbones (:mod:`._lpips`, :mod:`._dists`). Lower is better.
* CLIP-IQA and MUSIQ: no reference, RGB (grey read as RGB, alpha dropped), no crop, at the image's own
  size; MUSIQ as the authors' JAX / TensorFlow code computes it (:mod:`._musiq`). Higher is better.
* pyiqa's metrics (``pyiqa-*``), only where the optional extra is installed: pyiqa's own computations,
  under its non-commercial licence (:mod:`._pyiqa`).
"""

from __future__ import annotations

from ._dists import DistsNet, dists, download_dists, load_dists
from ._lpips import LpipsNet, download_lpips, load_lpips, lpips
from ._maps import HEAT_RAMP, Heat, difference_map, heat_colours, lr_consistency, ssim_map
from ._metrics import METRICS, check_ready, compute_metric, download_metric, score_images
from ._niqe import niqe
from ._pixel import GREY_MODES, Channel, Grey, psnr, rgb_to_y, ssim
from ._registry import FULL_REFERENCE, NO_REFERENCE, Kind, MetricInfo, MetricOptions, MetricRegistry, WeightsFile
from ._torchvision import weights_folder

__all__ = ["FULL_REFERENCE", "GREY_MODES", "HEAT_RAMP", "METRICS", "Heat", "NO_REFERENCE", "Channel", "DistsNet",
           "Grey", "Kind", "LpipsNet", "MetricInfo", "MetricOptions", "MetricRegistry", "WeightsFile", "check_ready",
           "compute_metric", "difference_map", "dists", "download_dists", "download_lpips", "download_metric",
           "heat_colours", "load_dists", "load_lpips", "lpips", "lr_consistency", "niqe", "psnr", "rgb_to_y",
           "score_images", "ssim", "ssim_map", "weights_folder"]
