"""What runs a network: the :class:`Engine` protocol and the registry of engines.

An engine turns a loaded model into one forward callable, ``(N, C, H, W)`` float tensor in
``[0, 1]`` on the device choice's torch device -> ``(N, C, sH, sW)`` in ``[0, 1]``, the contract
of a spandrel descriptor. The tiler and the upscaler know nothing else about engines. An engine
that runs out of memory raises ``torch.OutOfMemoryError`` (the tiler then splits the tile); inside
a call it polls :func:`core._cancel.check_cancelled`.

Adding an engine is one module with a class that satisfies :class:`Engine`, and one ``add`` line
in :mod:`core.engines._engines`. No other file names it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from .._device import DeviceChoice
from ..errors import UnknownNameError
from ._probe import ActivationProfile

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor

    from ..models import ModelInfo

__all__ = ["ANY_SHAPE", "AUTO", "BuildRequest", "Engine", "EngineOptions", "EngineRegistry", "Runner", "ShapeLimits"]

AUTO = "auto"  # not an engine: "measure the engines that can run this model here, keep the fastest"
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs a model, and how.

    Attributes:
        engine: ``"auto"`` or a registered engine's name (``None``: ``$STUDIO_ENGINE``, else auto).
        compile_mode: an engine that compiles (PyTorch's ``torch.compile``) compiles in this mode;
            ``None``: eager. With ``engine="auto"`` it means the engine that compiles.
        channels_last: NHWC memory format for engines that offer it; ``None``: the engine decides.
        measure_later: with ``auto`` on the CPU, where this machine has no current measurement for the model,
            start at once on the engine measured before (or the reference, which needs no compile) instead of
            measuring first; the upscaler then says :attr:`~core.Upscaler.measurement_due`, and whoever keeps
            it measures in the background and swaps (:func:`core.shared_upscaler` does).
    """

    engine: str | None = None
    compile_mode: str | None = None
    channels_last: bool | None = None
    measure_later: bool = False

    @classmethod
    def of(cls, value: str | EngineOptions | None) -> EngineOptions:
        """``value`` as options: a name is ``EngineOptions(engine=name)``."""
        return value if isinstance(value, EngineOptions) else cls(engine=value)


@dataclass(frozen=True)
class BuildRequest:
    """What an engine builds its forward from."""

    info: ModelInfo
    descriptor: ImageModelDescriptor  # fp32 or the choice's dtype, on its device
    choice: DeviceChoice
    cache_dir: Path  # where the engine may keep converted or compiled files: beside the weights
    options: EngineOptions


@dataclass(frozen=True)
class ShapeLimits:
    """The input sides (height and width, LR pixels) an engine's forward accepts, as a TensorRT profile states
    them: at least ``minimum``, at most ``maximum`` (``None``: any), a multiple of ``multiple``; ``optimal``: the
    side it runs best at (the tiler's default window). ``minimum == maximum``: one fixed shape.

    The tiler obeys them: its windows (a tile and its context) are at most ``maximum`` and, where it chooses,
    ``optimal``; an input it cannot make fit (an image smaller than a fixed shape, a side that is not a multiple)
    is padded at the bottom and right edges by replication, and the padding is cut off the output.
    """

    minimum: int = 1
    optimal: int | None = None
    maximum: int | None = None
    multiple: int = 1

    def __post_init__(self) -> None:
        top = self.maximum if self.maximum is not None else self.minimum
        if not (1 <= self.minimum <= top and self.multiple >= 1 and top % self.multiple == 0
                and (self.optimal is None or self.minimum <= self.optimal <= top)):
            raise ValueError(f"Inconsistent shape limits: {self}.")

    @property
    def fixed(self) -> bool:
        return self.minimum == self.maximum

    def accepted(self, side: int) -> int:
        """The smallest side the forward accepts that is at least ``side`` (inputs are padded up to it).

        Raises:
            ValueError: ``side`` is over ``maximum`` (the tiler never makes such a window).
        """
        fitted = -(-max(side, self.minimum) // self.multiple) * self.multiple
        if self.maximum is not None and fitted > self.maximum:
            raise ValueError(f"An input side of {side} px is over the engine's largest, {self.maximum} px.")
        return fitted


ANY_SHAPE = ShapeLimits()


@dataclass(frozen=True)
class Runner:
    """A built engine: its forward and what the tiler must know about it.

    Attributes:
        forward: the call (see the module docstring).
        fixed_tiles: every call must get one input shape, whichever the first call had (a compiled graph).
        shapes: the input shapes the forward accepts, where the engine knows them when it is built.
        release: frees what the engine holds outside Python's reach (a compiled model, device buffers); the
            runner is not called after it. ``None``: nothing to free beyond what garbage collection does.
        note: how it runs, for :meth:`core.upscale.Upscaler.describe` (``"compiled, default"``).
    """

    forward: Forward
    fixed_tiles: bool = False
    note: str = ""
    shapes: ShapeLimits = ANY_SHAPE
    release: Callable[[], None] | None = None


class Engine(Protocol):
    """One way to run a network (PyTorch, ncnn, OpenVINO, …)."""

    name: str

    def version(self) -> str | None:
        """The installed runtime's version (part of the engine-choice cache key); ``None``: not installed."""
        ...

    def unsupported(self, info: ModelInfo, choice: DeviceChoice) -> str | None:
        """Why this engine cannot run ``info`` on ``choice`` here (a sentence for the user); ``None``: it can."""
        ...

    def build(self, request: BuildRequest) -> Runner:
        """The forward of ``request``'s model. Raises ``ConversionError`` where the model cannot be
        converted, ``DeviceUnavailableError`` where the device cannot be used."""
        ...

    def bytes_per_pixel(self, profile: ActivationProfile, choice: DeviceChoice) -> float | None:
        """Upper bound on the memory one more LR pixel of a tile costs on the memory ``choice`` runs in: host RAM on
        the CPU, the device's own on a GPU (see :mod:`core.engines._memory`). ``None``: not known before a call;
        the upscaler then measures it on the device (CUDA: the allocator's peak over two calls of the runner, or of
        the eager network where the runner takes limited shapes), and where it cannot, tiles by the device default."""
        ...


class EngineRegistry:
    """Engines by name, in the order they were added. The first one is the reference: the engine every
    other one is measured against, and the one that runs where nothing was measured."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    @contextmanager
    def scoped(self) -> Iterator[EngineRegistry]:
        """Within the block, engines added (a test's, a plugin tried out) are gone again afterwards."""
        saved = dict(self._engines)
        try:
            yield self
        finally:
            self._engines = saved

    def add(self, engine: Engine) -> None:
        if engine.name in self._engines or engine.name == AUTO:
            raise ValueError(f"An engine named {engine.name!r} is already registered.")
        self._engines[engine.name] = engine

    def __iter__(self) -> Iterator[Engine]:
        return iter(self._engines.values())

    def __contains__(self, name: object) -> bool:
        return name in self._engines

    def names(self) -> tuple[str, ...]:
        return tuple(self._engines)

    def choices(self) -> tuple[str, ...]:
        """What a user may ask for: ``auto`` and every engine."""
        return (AUTO, *self._engines)

    @property
    def reference(self) -> Engine:
        return next(iter(self._engines.values()))

    def get(self, name: str) -> Engine:
        """The engine called ``name``.

        Raises:
            UnknownNameError: an unknown name (the message lists the engines and suggests the closest); it is also
                a ``ValueError``, as a bad setting is.
        """
        try:
            return self._engines[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._engines, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"engine must be one of {', '.join(self.choices())}, got {name!r}.{hint}") from None

    def runnable(self, info: ModelInfo, choice: DeviceChoice) -> list[str]:
        """The engines that can run ``info`` on ``choice`` here, in registry order."""
        return [e.name for e in self if e.unsupported(info, choice) is None]
