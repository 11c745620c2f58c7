"""The Real-ESRGAN second-order degradation model, seeded and stage by stage.

A high-resolution image is first sharpened with unsharp masking (as Real-ESRGAN degrades its
USM-sharpened ground truth), then goes through blur -> resize -> noise -> JPEG (stage 1), then blur
(with a probability) -> resize relative to the target size -> noise (stage 2), then a final
step in one of two orders, chosen 50/50: resize to HR/scale + sinc filter, then JPEG; or
JPEG, then resize + sinc. The sinc filter is applied with a probability, else an identity
kernel. The result is rounded to 8 bits. A configuration without a second stage is the
classical first-order model (blur, bicubic x1/s, noise, JPEG).

Operations follow the official code (Real-ESRGAN ``realesrgan_model.py``, BasicSR
``degradations.py``): resizes are PyTorch's ``interpolate`` (stage 1 by scale factor, so
coordinates map by ``1/s``; stage 2 and the final step by size; ``area`` averages whole-pixel
bins), JPEG is Real-ESRGAN's simulation with a continuous quality (:mod:`core.degradation._jpeg`; a real
codec with an integer quality is the ``opencv`` option), Poisson noise is drawn on the image
rounded to 8 bits, and plateau kernels draw beta as generalised ones do. What still differs:
random numbers come from numpy generators (same distributions, other draws than torch's).

Two steps keep every draw reproducible and visible:

1. :func:`sample_params` draws every random choice (kernel type and shape, resize factor
   and mode, noise kind and level and its seed, JPEG quality, final order) from an explicit
   ``numpy.random.Generator`` into a frozen :class:`DegradationParams`;
2. :func:`apply_params` applies those parameters, with no other randomness, and returns the
   image after every stage with a description of what was done.

"Fixed mode" is step 2 with parameters a user wrote (or edited) instead of sampled ones.
Images: input in the edge convention (``uint8`` / ``uint16`` HWC, grey or RGB; alpha is
dropped); stages are ``float32`` HWC in ``[0, 1]`` (OpenCV works in HWC); output ``uint8``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._io import from_unit, to_unit
from .._resize import crop_to_scale
from ._config import (
    DegradationConfig,
    DegradationParams,
    FinalParams,
    NoiseParams,
    StageConfig,
    StageParams,
)
from ._kernels import KernelParams, identity_kernel, make_kernel
from ._ops import add_gaussian_noise, add_poisson_noise, blur, jpeg, resize_to, usm_sharpen

__all__ = ["DegradationResult", "StageImage", "apply_params", "degrade", "make_pair", "sample_params"]


def _sample_kernel(stage: StageConfig, rng: np.random.Generator) -> KernelParams:
    size = int(rng.choice(stage.kernel_sizes))
    if rng.random() < stage.sinc_prob:
        low = np.pi / 3 if size < 13 else np.pi / 5
        return KernelParams("sinc", size, omega=float(rng.uniform(low, np.pi)))
    kind = str(stage.kernel_types[rng.choice(len(stage.kernel_types), p=stage.kernel_probs)])
    sigma_x = float(rng.uniform(*stage.blur_sigma))
    isotropic = not kind.endswith("aniso")
    sigma_y = sigma_x if isotropic else float(rng.uniform(*stage.blur_sigma))
    theta = 0.0 if isotropic else float(rng.uniform(-np.pi, np.pi))
    beta = 1.0
    if kind.startswith(("generalized", "plateau")):  # both: U(low, 1) or U(1, high), half the time each
        low, high = stage.betag_range if kind.startswith("generalized") else stage.betap_range
        beta = float(rng.uniform(low, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, high))
    return KernelParams(kind, size, sigma_x, sigma_y, theta, beta)


def _sample_quality(jpeg_range: tuple[int, int], engine: str, rng: np.random.Generator) -> float:
    if engine == "diffjpeg":  # continuous, as Real-ESRGAN draws it
        return float(rng.uniform(jpeg_range[0], jpeg_range[1]))
    return int(rng.integers(jpeg_range[0], jpeg_range[1] + 1))


def _sample_stage(stage: StageConfig, rng: np.random.Generator, with_jpeg: bool, engine: str) -> StageParams:
    kernel = _sample_kernel(stage, rng) if rng.random() < stage.blur_prob else None
    direction = ("up", "down", "keep")[rng.choice(3, p=stage.resize_probs)]
    low, high = stage.resize_range
    factor = {"up": lambda: rng.uniform(1.0, high), "down": lambda: rng.uniform(low, 1.0), "keep": lambda: 1.0}
    resize_factor = float(factor[direction]())
    mode = str(rng.choice(stage.resize_modes))
    noise = None
    if rng.random() < stage.noise_prob:
        gaussian = rng.random() < stage.gaussian_noise_prob
        level = rng.uniform(*(stage.noise_range if gaussian else stage.poisson_scale_range))
        grey = bool(rng.random() < stage.gray_noise_prob)
        noise = NoiseParams("gaussian" if gaussian else "poisson", float(level), grey, int(rng.integers(2**31)))
    quality = _sample_quality(stage.jpeg_range, engine, rng)
    jpeg = quality if with_jpeg and rng.random() < stage.jpeg_prob else None
    if stage.resize_to_target:
        direction, resize_factor = "target", 1.0
    return StageParams(kernel, direction, resize_factor, mode, noise, jpeg, stage.resize_to_target)


def sample_params(config: DegradationConfig, rng: np.random.Generator | int) -> DegradationParams:
    """Draw every random choice of one degradation from ``rng`` (a generator or a seed)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    engine = config.jpeg_engine
    first = _sample_stage(config.first, rng, with_jpeg=True, engine=engine)
    if config.second is None:
        return DegradationParams(config.scale, first, None, None, config.usm_sharpen, engine)
    second = _sample_stage(config.second, rng, with_jpeg=True, engine=engine)  # its JPEG is the final one
    sinc_first = bool(rng.random() < config.final_sinc_first_prob)
    sinc = None
    if rng.random() < config.final_sinc_prob:
        size = int(rng.choice(config.final_kernel_sizes))
        sinc = KernelParams("sinc", size, omega=float(rng.uniform(np.pi / 3, np.pi)))
    mode = str(rng.choice(config.final_resize_modes))
    final = FinalParams(sinc_first, sinc, mode, second.jpeg_quality)
    return DegradationParams(config.scale, first, replace(second, jpeg_quality=None), final, config.usm_sharpen,
                             engine)


# ---------------------------------------------------------------- application


@dataclass(frozen=True)
class StageImage:
    """The image after one step; ``applied`` is False for a step skipped by its probability."""

    name: str
    image: np.ndarray
    detail: str
    applied: bool = True


@dataclass(frozen=True)
class DegradationResult:
    lr: np.ndarray
    params: DegradationParams
    stages: tuple[StageImage, ...]


def _describe_kernel(k: KernelParams) -> str:
    """The kernel's type, size and only the parameters that shape it (an isotropic one has one σ)."""
    if k.type == "sinc":
        return f"sinc {k.size}x{k.size}, ω={k.omega:.3f}"
    if k.type.endswith("aniso"):
        text = f"{k.type} {k.size}x{k.size}, σ=({k.sigma_x:.2f}, {k.sigma_y:.2f}), θ={k.theta:.2f}"
    else:
        text = f"{k.type} {k.size}x{k.size}, σ={k.sigma_x:.2f}"
    return text + (f", β={k.beta:.2f}" if k.type.startswith(("generalized", "plateau")) else "")


def _noise(image: np.ndarray, noise: NoiseParams) -> np.ndarray:
    if noise.kind == "gaussian":
        return add_gaussian_noise(image, noise.level, noise.grey, noise.seed)
    return add_poisson_noise(image, noise.level, noise.grey, noise.seed)


def _run_stage(image: np.ndarray, stage: StageParams, index: int, base: tuple[float, float],
               target: tuple[int, int], record: list[StageImage], engine: str) -> np.ndarray:
    """One stage. ``base``: the size the resize factor applies to (the HR size in stage 1,
    ``HR / scale`` unrounded in stage 2, as Real-ESRGAN computes it)."""
    if stage.kernel is not None:
        image = blur(image, make_kernel(stage.kernel))
        record.append(StageImage(f"blur {index}", image, _describe_kernel(stage.kernel)))
    else:
        record.append(StageImage(f"blur {index}", image, "skipped", applied=False))
    if stage.resize_to_target:
        size = target
    else:
        size = (int(base[0] * stage.resize_factor), int(base[1] * stage.resize_factor))
    before = image.shape[:2]
    # stage 1 resizes by scale factor (interpolate(scale_factor=s)), stage 2 by size
    factor = stage.resize_factor if index == 1 and not stage.resize_to_target else None
    image = resize_to(image, size, stage.resize_mode, factor)
    # The factor is relative to the stage's base size (HR for stage 1, the LR target for stage 2),
    # not to the image it receives: say both sizes, so "x1.2" after a larger stage is not read as "up".
    base_name = "HR" if index == 1 else "LR"
    how = (f"to the LR size {target[1]}x{target[0]}" if stage.resize_to_target
           else f"x{stage.resize_factor:.3f} of the {base_name} size {base[1]:g}x{base[0]:g}")
    record.append(StageImage(f"resize {index}", image, f"{stage.resize_mode} {before[1]}x{before[0]} -> "
                             f"{image.shape[1]}x{image.shape[0]} ({how})"))
    if stage.noise is not None:
        image = _noise(image, stage.noise)
        unit = "σ" if stage.noise.kind == "gaussian" else "scale"
        record.append(StageImage(f"noise {index}", image, f"{stage.noise.kind} {unit}={stage.noise.level:.2f}"
                                 f"{' grey' if stage.noise.grey else ' colour'}"))
    else:
        record.append(StageImage(f"noise {index}", image, "skipped", applied=False))
    if stage.jpeg_quality is not None:
        image = jpeg(image, stage.jpeg_quality, engine)
        record.append(StageImage(f"jpeg {index}", image, _describe_jpeg(stage.jpeg_quality, engine)))
    return image


def _describe_jpeg(quality: float, engine: str) -> str:
    return f"quality {quality:.1f} (simulated, as Real-ESRGAN)" if engine == "diffjpeg" else \
        f"quality {round(quality)} (OpenCV codec)"


def _to_float(image: np.ndarray) -> np.ndarray:
    array = to_unit(image)
    return array[:, :, :3] if array.shape[2] == 4 else array  # alpha is not degraded


def apply_params(hr: np.ndarray, params: DegradationParams, *, keep_stages: bool = True) -> DegradationResult:
    """Degrade ``hr`` with fixed ``params``; no randomness beyond the recorded noise seeds.

    The LR size is exactly ``(H // scale, W // scale)``; crop HR to a multiple of the scale
    first (as :func:`make_pair` does) for an exact ratio.
    """
    image = _to_float(hr)
    height, width = image.shape[:2]
    target = (max(1, height // params.scale), max(1, width // params.scale))
    record: list[StageImage] = [StageImage("input", image, f"{width}x{height}")]
    if params.usm_sharpen:
        image = usm_sharpen(image)
        record.append(StageImage("usm sharpen", image, "unsharp mask: weight 0.5, 51 px Gaussian, threshold 10"))
    engine = params.jpeg_engine
    image = _run_stage(image, params.first, 1, (height, width), target, record, engine)
    if params.second is not None and params.final is not None:
        image = _run_stage(image, params.second, 2, (height / params.scale, width / params.scale), target, record,
                           engine)
        final = params.final
        kernel = make_kernel(final.sinc) if final.sinc is not None else identity_kernel()
        sinc_text = _describe_kernel(final.sinc) if final.sinc is not None else "no sinc"

        def resize_and_sinc(current: np.ndarray) -> np.ndarray:
            out = blur(resize_to(current, target, final.resize_mode), kernel)
            record.append(StageImage("resize + sinc", out, f"{final.resize_mode} -> {target[1]}x{target[0]}, "
                                     f"{sinc_text}"))
            return out

        def compress(current: np.ndarray) -> np.ndarray:
            if final.jpeg_quality is None:
                record.append(StageImage("jpeg 2", current, "skipped", applied=False))
                return current
            out = jpeg(current, final.jpeg_quality, engine)
            record.append(StageImage("jpeg 2", out, _describe_jpeg(final.jpeg_quality, engine)))
            return out

        image = compress(resize_and_sinc(image)) if final.sinc_first else resize_and_sinc(compress(image))
    elif image.shape[:2] != target:
        image = resize_to(image, target, "bicubic")
        record.append(StageImage("resize to target", image, f"bicubic -> {target[1]}x{target[0]}"))
    lr = from_unit(image)
    record.append(StageImage("output", lr.astype(np.float32) / 255.0, f"{target[1]}x{target[0]} 8-bit"))
    return DegradationResult(lr, params, tuple(record) if keep_stages else ())


def degrade(hr: np.ndarray, config: DegradationConfig, seed: int, *, keep_stages: bool = True) -> DegradationResult:
    """Sample parameters from ``seed`` and apply them: the same seed and config give the same bytes."""
    return apply_params(hr, sample_params(config, seed), keep_stages=keep_stages)


def make_pair(hr: np.ndarray, config: DegradationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, hr)`` for evaluation: HR cropped to a multiple of the scale, LR exactly HR / scale."""
    scale = config.scale
    cropped = crop_to_scale(hr, scale)
    return degrade(cropped, config, seed, keep_stages=False).lr, cropped
