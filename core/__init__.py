"""Real-ESRGAN studio core: a pure library (no Streamlit, no FastAPI).

Image convention: see :mod:`core._io`. Public API below; everything else is private.
"""

from __future__ import annotations

from ._catalogue import CATALOGUE, DEFAULT_MODEL, ModelSpec
from ._datasets import Dataset, DatasetError, DatasetItem, download_div2k, extract_zip, open_dataset
from ._device import DeviceChoice, available_devices, resolve_device
from ._errors import (
    CancelledError,
    ConversionError,
    DeviceUnavailableError,
    DownloadError,
    ImageDecodeError,
    ImageTooLargeError,
    OutOfMemoryError,
    StudioError,
    UnknownModelError,
    UnsupportedImageError,
    UnsupportedModelError,
    WeightsMissingError,
)
from ._evaluate import BASELINES, EvalResult, EvalRow, EvalSettings, ResultDB, evaluate, write_results
from ._io import ImageLimits, decode_image, encode_png, image_info, read_image, to_display, write_png
from ._metrics import METRICS, MetricInfo, compute_metric, niqe, psnr, rgb_to_y, ssim
from ._ncnn import NcnnModel, convert_ncnn
from ._resize import RESIZE_METHODS, imresize, resize, target_size
from ._samples import list_samples, load_sample
from ._tiling import Tile, blend_ramp, plan_axis, plan_tiles, run_tiled
from ._upscaler import Upscaler, UpscaleResult, UpscaleSettings, default_tile
from ._weights import (
    LoadedModel,
    ModelInfo,
    default_weights_dir,
    download_weights,
    list_models,
    load_model,
    model_info,
    ncnn_model_files,
)

__all__ = [
    "BASELINES",
    "METRICS",
    "Dataset",
    "DatasetError",
    "DatasetItem",
    "EvalResult",
    "EvalRow",
    "EvalSettings",
    "MetricInfo",
    "ResultDB",
    "compute_metric",
    "download_div2k",
    "evaluate",
    "extract_zip",
    "niqe",
    "open_dataset",
    "psnr",
    "rgb_to_y",
    "ssim",
    "write_results",
    "CATALOGUE",
    "DEFAULT_MODEL",
    "RESIZE_METHODS",
    "CancelledError",
    "ConversionError",
    "DeviceChoice",
    "DeviceUnavailableError",
    "DownloadError",
    "ImageDecodeError",
    "ImageLimits",
    "ImageTooLargeError",
    "LoadedModel",
    "ModelInfo",
    "ModelSpec",
    "NcnnModel",
    "OutOfMemoryError",
    "StudioError",
    "Tile",
    "UnknownModelError",
    "UnsupportedImageError",
    "UnsupportedModelError",
    "UpscaleResult",
    "UpscaleSettings",
    "Upscaler",
    "WeightsMissingError",
    "available_devices",
    "blend_ramp",
    "convert_ncnn",
    "decode_image",
    "default_tile",
    "default_weights_dir",
    "download_weights",
    "encode_png",
    "image_info",
    "imresize",
    "list_models",
    "list_samples",
    "load_model",
    "load_sample",
    "model_info",
    "ncnn_model_files",
    "plan_axis",
    "plan_tiles",
    "read_image",
    "resize",
    "resolve_device",
    "run_tiled",
    "target_size",
    "to_display",
    "write_png",
]
