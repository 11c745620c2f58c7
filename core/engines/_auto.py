"""What ``engine="auto"`` runs a model with on this machine's CPU: the engines that can run it, where
their measurements live, and what was measured (see :mod:`core.engines._choice`)."""

from __future__ import annotations

from pathlib import Path

from .._device import DeviceChoice
from .._settings import default_weights_dir
from ..models import ModelInfo
from ._choice import EngineChoice, forget, remembered
from ._engines import ENGINES

__all__ = ["auto_engine", "cpu_engine_label", "cpu_engines", "engine_folder", "forget_engine"]


CPU_FP32 = DeviceChoice("cpu", "fp32", "where engines are measured")


def cpu_engines(info: ModelInfo) -> list[str]:
    """The engines that can run ``info`` on the CPU in fp32 here, the reference (PyTorch) first."""
    return ENGINES.runnable(info, CPU_FP32)


def engine_folder(info: ModelInfo) -> Path:
    """Where the engines' caches and measurements of ``info`` live: beside its weights."""
    return info.path.parent if info.path is not None else default_weights_dir()


def auto_engine(info: ModelInfo) -> EngineChoice | None:
    """What ``engine="auto"`` runs ``info`` with on this machine's CPU in fp32, as measured on its
    first load here; ``None`` where it has not been measured yet, or where the reference is the only
    engine that can run it (then it runs on the reference)."""
    return remembered(info.fingerprint, engine_folder(info))


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


def forget_engine(info: ModelInfo) -> bool:
    """Forget the measured engine of ``info`` on this machine: its next load measures again."""
    return forget(info.fingerprint, engine_folder(info))
