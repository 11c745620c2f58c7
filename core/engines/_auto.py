"""What ``engine="auto"`` runs a model with on a device: the engines that can run it there, where their
measurements live, and what was measured (see :mod:`core.engines._choice`)."""

from __future__ import annotations

from pathlib import Path

import torch

from .._device import DeviceChoice
from .._settings import default_weights_dir
from ..models import ModelInfo
from ._choice import EngineChoice, forget, remembered
from ._engines import ENGINES

__all__ = ["CPU_FP32", "auto_engine", "cpu_engine_label", "cpu_engines", "engine_folder", "forget_engine", "place_of"]


CPU_FP32 = DeviceChoice("cpu", "fp32", "where engines are measured")


def place_of(choice: DeviceChoice) -> str:
    """What a measurement on ``choice`` holds for besides this machine: ``""`` on the CPU in fp32 (the keys the
    measurements always had), else the device's name and the precision (``"NVIDIA H100 80GB HBM3 · fp16"``)."""
    if choice.device == "cpu" and choice.precision == "fp32":
        return ""
    name = choice.device
    if choice.device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(choice.device))
    return f"{name} · {choice.precision}"


def cpu_engines(info: ModelInfo) -> list[str]:
    """The engines that can run ``info`` on the CPU in fp32 here, the reference (PyTorch) first."""
    return ENGINES.runnable(info, CPU_FP32)


def engine_folder(info: ModelInfo) -> Path:
    """Where the engines' caches and measurements of ``info`` live: beside its weights."""
    return info.path.parent if info.path is not None else default_weights_dir()


def auto_engine(info: ModelInfo, choice: DeviceChoice = CPU_FP32) -> EngineChoice | None:
    """What ``engine="auto"`` runs ``info`` with on ``choice`` (this machine's CPU in fp32 by default), as
    measured on its first load there; ``None`` where it has not been measured yet, or where one engine alone
    can run it there (then it runs on that one)."""
    return remembered(info.fingerprint, engine_folder(info), place_of(choice))


def cpu_engine_label(info: ModelInfo) -> str:
    """What ``engine="auto"`` runs ``info`` with on this CPU, for tables: ``"ncnn (measured)"`` once the
    choice is final, ``"ncnn (measured 1 of 3)"`` before, ``"torch (only engine)"`` or ``"measured on
    first load"``."""
    engines = cpu_engines(info)
    if len(engines) == 1:
        return f"{engines[0]} (only engine)"
    found = auto_engine(info)
    if found is None:
        return "measured on first load"
    return f"{found.engine} (measured)" if found.final else f"{found.engine} (measured {found.progress()})"


def forget_engine(info: ModelInfo, choice: DeviceChoice = CPU_FP32) -> bool:
    """Forget the measured engine of ``info`` on ``choice`` on this machine: its next load there measures again."""
    return forget(info.fingerprint, engine_folder(info), place_of(choice))
