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

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import yaml

from .._errors import ConfigError
from .._io import from_unit, to_unit
from .._resize import crop_to_scale
from ._kernels import GAUSSIAN_TYPES, KernelParams, identity_kernel, make_kernel
from ._ops import add_gaussian_noise, add_poisson_noise, blur, jpeg, resize_to, usm_sharpen

__all__ = [
    "JPEG_ENGINES",
    "PRESETS",
    "RESIZE_MODES",
    "DegradationConfig",
    "DegradationParams",
    "DegradationResult",
    "FinalParams",
    "NoiseParams",
    "StageConfig",
    "StageImage",
    "StageParams",
    "apply_params",
    "config_from_dict",
    "config_to_dict",
    "load_degradation",
    "parse_degradation",
    "degrade",
    "make_pair",
    "params_from_dict",
    "sample_params",
]

RESIZE_MODES = ("area", "bilinear", "bicubic", "matlab")
# "diffjpeg": Real-ESRGAN's JPEG simulation, continuous quality; "opencv": a real codec, integer quality.
JPEG_ENGINES = ("diffjpeg", "opencv")
KERNEL_SIZES = (7, 9, 11, 13, 15, 17, 19, 21)


# ---------------------------------------------------------------- configuration


def _check_range(name: str, pair: tuple[float, float], low: float = -math.inf, high: float = math.inf) -> None:
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"{name} must be an ordered (min, max) pair, got {pair}.")
    if pair[0] < low or pair[1] > high:
        raise ValueError(f"{name} must lie within [{low}, {high}], got {pair}.")


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")


def _check_engine(engine: str) -> None:
    if engine not in JPEG_ENGINES:
        raise ValueError(f"jpeg_engine must be one of {', '.join(JPEG_ENGINES)}, got {engine!r}.")


def _check_distribution(name: str, probs: tuple[float, ...], count: int) -> None:
    if len(probs) != count or any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"{name} must be {count} non-negative probabilities summing to 1, got {probs}.")


@dataclass(frozen=True)
class StageConfig:
    """Ranges and probabilities of one degradation stage (used for both stages).

    Attributes:
        blur_prob: probability of blurring at all (1.0 in stage 1, 0.8 in stage 2).
        kernel_sizes: odd sizes drawn uniformly. kernel_types / kernel_probs: the Gaussian
            family and its probabilities. sinc_prob: probability of a sinc kernel instead
            (cut-off uniform in [pi/3, pi] for sizes < 13, else [pi/5, pi]).
        blur_sigma: sigma range (pixels). betag_range / betap_range: shapes of the
            generalised and plateau kernels.
        resize_probs: probabilities of up / down / keep. resize_range: scale factor range
            (relative to the current size in stage 1, to the target size in stage 2).
        resize_modes: drawn uniformly. resize_to_target: instead of a random factor, resize
            to exactly HR/scale (the classical model).
        noise_prob: probability of any noise. gaussian_noise_prob: Gaussian rather than
            Poisson. noise_range: Gaussian sigma in 0-255 units. poisson_scale_range: Poisson
            strength. gray_noise_prob: the same noise on every channel.
        jpeg_prob / jpeg_range: JPEG compression and its quality range.
    """

    blur_prob: float = 1.0
    kernel_sizes: tuple[int, ...] = KERNEL_SIZES
    kernel_types: tuple[str, ...] = GAUSSIAN_TYPES
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    resize_to_target: bool = False
    noise_prob: float = 1.0
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_range: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        for name in ("blur_prob", "sinc_prob", "noise_prob", "gaussian_noise_prob", "gray_noise_prob", "jpeg_prob"):
            _check_prob(name, getattr(self, name))
        if not self.kernel_sizes or any(s % 2 == 0 or not 3 <= s <= 21 for s in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd sizes in 3..21, got {self.kernel_sizes}.")
        unknown = [t for t in self.kernel_types if t not in GAUSSIAN_TYPES]
        if unknown:
            raise ValueError(f"Unknown kernel types {unknown}; use {', '.join(GAUSSIAN_TYPES)} (and sinc_prob).")
        _check_distribution("kernel_probs", self.kernel_probs, len(self.kernel_types))
        _check_range("blur_sigma", self.blur_sigma, 1e-3)
        _check_range("betag_range", self.betag_range, 1e-3)
        _check_range("betap_range", self.betap_range, 1e-3)
        _check_distribution("resize_probs (up, down, keep)", self.resize_probs, 3)
        _check_range("resize_range", self.resize_range, 1e-3)
        if self.resize_probs[0] and self.resize_range[1] < 1 or self.resize_probs[1] and self.resize_range[0] > 1:
            raise ValueError("resize_range must reach above 1 for 'up' and below 1 for 'down'.")
        if not self.resize_modes or any(m not in RESIZE_MODES for m in self.resize_modes):
            raise ValueError(f"resize_modes must be among {', '.join(RESIZE_MODES)}, got {self.resize_modes}.")
        _check_range("noise_range", self.noise_range, 0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, 0.0)
        _check_range("jpeg_range", self.jpeg_range, 1, 100)


SECOND_STAGE = StageConfig(
    blur_prob=0.8, blur_sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5),
)


@dataclass(frozen=True)
class DegradationConfig:
    """The whole model. Defaults are Real-ESRGAN's training settings (train_realesrgan_x4plus.yml).

    Attributes:
        scale: HR / LR size ratio.
        first / second: the stages; ``second=None`` gives the first-order (classical) model.
        final_sinc_prob: probability of the final sinc filter (else identity).
        final_kernel_sizes: sizes of the final sinc (cut-off uniform in [pi/3, pi]).
        final_resize_modes: modes of the final resize to HR/scale.
        final_sinc_first_prob: probability of "resize + sinc, then JPEG" (else the reverse).
        usm_sharpen: degrade the unsharp-masked HR (weight 0.5, 51 px Gaussian, threshold
            10/255), as Real-ESRGAN does.
        jpeg_engine: one of :data:`JPEG_ENGINES`.
        name: a label for presets and files.
    """

    scale: int = 4
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig | None = SECOND_STAGE
    final_sinc_prob: float = 0.8
    final_kernel_sizes: tuple[int, ...] = KERNEL_SIZES
    final_resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    final_sinc_first_prob: float = 0.5
    usm_sharpen: bool = True
    jpeg_engine: str = "diffjpeg"
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or not 1 <= self.scale <= 8:
            raise ValueError(f"scale must be an integer in 1..8, got {self.scale}.")
        _check_prob("final_sinc_prob", self.final_sinc_prob)
        _check_prob("final_sinc_first_prob", self.final_sinc_first_prob)
        if not self.final_kernel_sizes or any(s % 2 == 0 or not 3 <= s <= 21 for s in self.final_kernel_sizes):
            raise ValueError(f"final_kernel_sizes must be odd sizes in 3..21, got {self.final_kernel_sizes}.")
        if not self.final_resize_modes or any(m not in RESIZE_MODES for m in self.final_resize_modes):
            raise ValueError(f"final_resize_modes must be among {', '.join(RESIZE_MODES)}.")
        _check_engine(self.jpeg_engine)

    def to_json(self) -> str:
        return json.dumps(config_to_dict(self), indent=2)

    def to_yaml(self) -> str:
        return yaml.safe_dump(config_to_dict(self), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> DegradationConfig:
        return config_from_dict(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> DegradationConfig:
        return config_from_dict(yaml.safe_load(text))


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any) -> Any:
    """Rebuild a (nested, frozen) dataclass from plain data, lists becoming tuples."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"Expected a mapping for {cls.__name__}, got {type(data).__name__}.")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} settings: {', '.join(sorted(unknown))}.")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        target = next((t for t in getattr(hint, "__args__", (hint,)) if is_dataclass(t)), None)
        if target is not None:
            values[name] = _build(target, value)
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def parse_degradation(text: str, name: str = "config.yaml", scale: int | None = None) -> DegradationConfig:
    """A configuration from JSON (``name`` ends in ``.json``) or YAML ``text``, at ``scale`` if given.

    Raises:
        ConfigError: the text does not parse or holds invalid settings (the message names ``name``).
    """
    try:
        config = DegradationConfig.from_json(text) if name.endswith(".json") else DegradationConfig.from_yaml(text)
        return config if scale is None or scale == config.scale else replace(config, scale=scale)
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{name} is not a valid degradation configuration: {exc}") from exc


def load_degradation(spec: str | Path, scale: int | None = None) -> DegradationConfig:
    """A preset name (:data:`PRESETS`) or a JSON / YAML file, at ``scale`` if given.

    Raises:
        ConfigError: neither a preset nor a readable, valid configuration file.
    """
    if str(spec) in PRESETS:
        config = PRESETS[str(spec)]
        return config if scale is None or scale == config.scale else replace(config, scale=scale)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{str(spec)!r} is neither a preset ({', '.join(PRESETS)}) nor a config file.")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name} cannot be read: {exc}") from exc
    return parse_degradation(text, path.name, scale)


def config_to_dict(config: DegradationConfig) -> dict[str, Any]:
    """Plain data (JSON / YAML ready) for ``config``."""
    return _plain(config)


def config_from_dict(data: dict[str, Any]) -> DegradationConfig:
    """Rebuild and validate a configuration; missing fields take the defaults.

    Raises:
        ValueError: unknown fields or invalid values.
    """
    return _build(DegradationConfig, data)


# ---------------------------------------------------------------- sampled parameters


@dataclass(frozen=True)
class NoiseParams:
    """``kind`` is ``gaussian`` (``level`` = sigma in 0-255 units) or ``poisson`` (``level`` = scale)."""

    kind: str
    level: float
    grey: bool
    seed: int

    def __post_init__(self) -> None:
        if self.kind not in ("gaussian", "poisson") or self.level < 0:
            raise ValueError(f"Invalid noise {self.kind!r} level {self.level}.")


@dataclass(frozen=True)
class StageParams:
    """What one stage does. ``resize_factor`` is relative to the current size (stage 1) or
    to the target size (stage 2); ``resize_to_target`` ignores it and resizes to HR/scale.
    ``jpeg_quality`` is continuous for the ``diffjpeg`` engine, rounded for ``opencv``."""

    kernel: KernelParams | None
    resize_direction: str
    resize_factor: float
    resize_mode: str
    noise: NoiseParams | None
    jpeg_quality: float | None
    resize_to_target: bool = False


@dataclass(frozen=True)
class FinalParams:
    sinc_first: bool
    sinc: KernelParams | None
    resize_mode: str
    jpeg_quality: float | None


@dataclass(frozen=True)
class DegradationParams:
    """Every choice of one draw; JSON-serialisable with :func:`dataclasses.asdict`.

    ``usm_sharpen`` and ``jpeg_engine`` are not drawn: they come from the configuration (the
    defaults are Real-ESRGAN's), so that a saved draw replays the same way.
    """

    scale: int
    first: StageParams
    second: StageParams | None
    final: FinalParams | None
    usm_sharpen: bool = True
    jpeg_engine: str = "diffjpeg"

    def __post_init__(self) -> None:
        _check_engine(self.jpeg_engine)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def params_from_dict(data: dict[str, Any]) -> DegradationParams:
    """Rebuild parameters saved with ``asdict`` / ``to_json`` (for fixed mode)."""
    return _build(DegradationParams, data)


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


# ---------------------------------------------------------------- presets

_STAGE_CLASSIC = dict(resize_to_target=True, resize_modes=("matlab",), resize_probs=(0.0, 1.0, 0.0),
                      resize_range=(0.15, 1.0))

PRESETS: dict[str, DegradationConfig] = {
    "none": DegradationConfig(
        name="none (bicubic only)", second=None, usm_sharpen=False,
        first=StageConfig(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, **_STAGE_CLASSIC),
    ),
    "classical": DegradationConfig(
        name="classical (first order)", second=None, usm_sharpen=False, jpeg_engine="opencv",
        first=StageConfig(kernel_types=("iso", "aniso"), kernel_probs=(0.5, 0.5), sinc_prob=0.0,
                          blur_sigma=(0.2, 2.0), gaussian_noise_prob=1.0, noise_range=(1.0, 15.0),
                          gray_noise_prob=0.0, jpeg_range=(60, 95), **_STAGE_CLASSIC),
    ),
    "realesrgan": DegradationConfig(name="Real-ESRGAN training default"),
    "mild": DegradationConfig(
        name="mild",
        first=StageConfig(blur_sigma=(0.2, 1.5), resize_range=(0.5, 1.2), noise_range=(1.0, 10.0),
                          poisson_scale_range=(0.05, 1.0), jpeg_range=(60, 95)),
        second=replace(SECOND_STAGE, blur_prob=0.5, blur_sigma=(0.2, 1.0), noise_range=(1.0, 8.0),
                       poisson_scale_range=(0.05, 0.8), jpeg_range=(70, 95)),
        final_sinc_prob=0.5,
    ),
    "severe": DegradationConfig(
        name="severe",
        first=StageConfig(blur_sigma=(1.0, 4.0), resize_probs=(0.1, 0.8, 0.1), resize_range=(0.15, 1.2),
                          noise_range=(10.0, 40.0), poisson_scale_range=(1.0, 4.0), jpeg_range=(20, 60)),
        second=replace(SECOND_STAGE, blur_prob=1.0, blur_sigma=(0.5, 2.0), noise_range=(5.0, 30.0),
                       poisson_scale_range=(0.5, 3.0), jpeg_range=(20, 60)),
        final_sinc_prob=1.0,
    ),
}
