"""The registry of engines: every engine the studio can run a network with, added here, in one place.

The first one added is the reference (PyTorch): the engine others are checked against and the one
that runs where nothing was measured.
"""

from __future__ import annotations

import os

from .._device import DeviceChoice
from ..errors import SettingsError
from ._ncnn import NcnnEngine
from ._openvino import OpenVinoEngine
from ._probe import ActivationProfile
from ._registry import AUTO, EngineRegistry
from ._torch import TorchEngine

__all__ = ["ENGINES", "cpu_bytes_per_pixel", "default_engine"]

ENGINES = EngineRegistry()
ENGINES.add(TorchEngine())
ENGINES.add(NcnnEngine())
ENGINES.add(OpenVinoEngine())


def default_engine() -> str:
    """``$STUDIO_ENGINE`` if set, else ``"auto"``.

    Raises:
        SettingsError: a value that is not ``auto`` or a registered engine (the message says which are).
    """
    value = os.environ.get("STUDIO_ENGINE", AUTO).strip().lower() or AUTO
    if value not in ENGINES.choices():
        raise SettingsError(f"STUDIO_ENGINE={value!r} is not an engine; use one of {', '.join(ENGINES.choices())}.")
    return value


def cpu_bytes_per_pixel(profile: ActivationProfile, engine: str, itemsize: int = 4) -> float:
    """Upper bound on the host memory one more LR pixel of a tile costs on ``engine`` on the CPU (a call on
    ``p`` pixels needs at most ``p * cpu_bytes_per_pixel(...) + CALL_OVERHEAD`` bytes; see
    :mod:`core.engines._memory`). ``itemsize``: bytes per activation element where the engine computes
    in the model's precision (4 for fp32, 2 for bf16).

    Raises:
        ValueError: an unknown engine, or one that states no bound on the CPU.
    """
    choice = DeviceChoice("cpu", "bf16" if itemsize == 2 else "fp32", "a memory bound")
    bound = ENGINES.get(engine).bytes_per_pixel(profile, choice)
    if bound is None:
        raise ValueError(f"The {engine} engine states no memory bound on the CPU.")
    return bound
