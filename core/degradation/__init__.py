"""Degradations: the Real-ESRGAN second-order pipeline as small seeded functions (kernels, ops, JPEG),
its configuration and presets, and the pairs it makes for evaluation."""

from __future__ import annotations

from ._config import (
    JPEG_ENGINES,
    PRESETS,
    RESIZE_MODES,
    DegradationConfig,
    DegradationParams,
    FinalParams,
    NoiseParams,
    StageConfig,
    StageParams,
    config_from_dict,
    config_to_dict,
    load_degradation,
    params_from_dict,
    parse_degradation,
    parse_params,
)
from ._kernels import GAUSSIAN_TYPES, KERNEL_TYPES, KernelParams, identity_kernel, make_kernel, sinc_kernel
from ._ops import add_gaussian_noise, add_poisson_noise, blur, jpeg, resize_to, usm_sharpen
from ._pipeline import DegradationResult, StageImage, apply_params, degrade, make_pair, sample_params

__all__ = ["GAUSSIAN_TYPES", "JPEG_ENGINES", "KERNEL_TYPES", "PRESETS", "RESIZE_MODES", "DegradationConfig",
           "DegradationParams", "DegradationResult", "FinalParams", "KernelParams", "NoiseParams", "StageConfig",
           "StageImage", "StageParams", "add_gaussian_noise", "add_poisson_noise", "apply_params", "blur",
           "config_from_dict", "config_to_dict", "degrade", "identity_kernel", "jpeg", "load_degradation",
           "make_kernel", "make_pair", "params_from_dict", "parse_degradation", "parse_params", "resize_to",
           "sample_params", "sinc_kernel", "usm_sharpen"]
