"""The degradation model's configuration (what may be drawn, as in Real-ESRGAN's training options), the
parameters of one draw, and the presets; read from and written to YAML / JSON. See
:mod:`core.degradation._pipeline` for what they drive."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, cast, get_type_hints

import yaml

from ..errors import ConfigError
from ._kernels import GAUSSIAN_TYPES, KernelParams

__all__ = ["JPEG_ENGINES", "PRESETS", "RESIZE_MODES", "DegradationConfig", "DegradationParams", "FinalParams",
           "NoiseParams", "StageConfig", "StageParams", "config_from_dict", "config_to_dict", "load_degradation",
           "params_from_dict", "parse_degradation", "parse_params"]

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
            values[name] = _build(cast(type, target), value)
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


def parse_params(text: str, name: str = "params.json") -> DegradationParams:
    """Drawn parameters saved as JSON: the Degradation Lab's "Save these parameters" file, or the
    ``*_params.json`` that ``realesrgan-studio degrade`` writes beside each LR (its ``params``).

    Raises:
        ConfigError: not JSON, or not parameters (the message names ``name`` and says what it is instead).
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{name} is not JSON ({exc}).") from exc
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]  # realesrgan-studio degrade's file: {"seed", "config", "params"}
    first = data.get("first") if isinstance(data, dict) else None
    if isinstance(first, dict) and "resize_direction" not in first and ("name" in data or "blur_prob" in first):
        raise ConfigError(f"{name} is a degradation configuration, not drawn parameters: load it in the sampled "
                          "mode.")
    try:
        return params_from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} does not hold drawn degradation parameters ({exc}).") from exc


# ---------------------------------------------------------------- presets

_STAGE_CLASSIC: dict[str, Any] = dict(resize_to_target=True, resize_modes=("matlab",), resize_probs=(0.0, 1.0, 0.0),
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
