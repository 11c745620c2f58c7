"""Models: the catalogue of named models, their weights (your own files, the official downloads, the
ncnn package converted to PyTorch) and how they load."""

from __future__ import annotations

from ._catalogue import CATALOGUE, DEFAULT_MODEL, ModelSpec
from ._ncnn import NcnnLayer, NcnnModel, convert_ncnn, parse_param, read_weights
from ._weights import (
    DownloadProgress,
    LoadedModel,
    ModelInfo,
    download_weights,
    list_models,
    load_model,
    model_info,
    ncnn_model_files,
)

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "DownloadProgress", "LoadedModel", "ModelInfo", "ModelSpec", "NcnnLayer",
           "NcnnModel", "convert_ncnn", "download_weights", "list_models", "load_model", "model_info",
           "ncnn_model_files", "parse_param", "read_weights"]
