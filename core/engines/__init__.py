"""Engines: what runs a network (PyTorch, ncnn, OpenVINO), behind one protocol and one registry,
and the per-model, per-machine, per-device measurement that picks the fastest (``engine="auto"``)."""

from __future__ import annotations

from .._device import openvino_available, openvino_devices
from ._auto import CPU_FP32, auto_engine, cpu_engine_label, cpu_engines, engine_folder, forget_engine, place_of
from ._choice import MEASUREMENTS, EngineChoice, EngineTrial, choose, cpu_name
from ._engines import ENGINES, cpu_bytes_per_pixel, default_engine
from ._memory import CALL_OVERHEAD
from ._ncnn import NcnnForward, ncnn_available
from ._openvino import OpenVinoForward
from ._probe import ActivationProfile, activation_profile, conv_flops_per_pixel
from ._registry import ANY_SHAPE, AUTO, BuildRequest, Engine, EngineOptions, EngineRegistry, Runner, ShapeLimits
from ._startup import check_environment
from ._torch import COMPILE_MODES

__all__ = ["ANY_SHAPE", "AUTO", "CALL_OVERHEAD", "COMPILE_MODES", "CPU_FP32", "ENGINES", "MEASUREMENTS",
           "ActivationProfile", "BuildRequest", "Engine", "EngineChoice", "EngineOptions", "EngineRegistry",
           "EngineTrial", "NcnnForward", "OpenVinoForward", "Runner", "ShapeLimits", "activation_profile",
           "auto_engine", "check_environment", "choose", "conv_flops_per_pixel", "cpu_bytes_per_pixel",
           "cpu_engine_label", "cpu_engines", "cpu_name", "default_engine", "engine_folder", "forget_engine",
           "ncnn_available", "openvino_available", "openvino_devices", "place_of"]
