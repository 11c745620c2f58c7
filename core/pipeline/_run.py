"""What a run needs to know wherever it runs: where (:class:`ClusterSettings`), which model and how
(:class:`ModelRun`), and what one input of a batch upscale gave (:class:`UpscaleOutcome`, made by
:func:`upscale_one`, the one per-image step that every executor runs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._io import encode_png
from .._ours import mark_png
from .._uri import read_any, write_any
from ..engines import ENGINES
from ..errors import CancelledError, SettingsError, StudioError
from ..upscale import Upscaler, UpscaleSettings

__all__ = ["ClusterSettings", "ModelRun", "UpscaleOutcome", "upscale_one"]


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how wide work runs on Ray.

    Attributes:
        address: ``None`` or ``""``: start a local Ray on this machine; ``"auto"``: the cluster
            this machine belongs to (``RAY_ADDRESS``); ``ray://`` (Ray Client) is refused; or
            ``"host:6379"``.
        workers: actors in the pool; ``None``: CPU workers, ``CPUs // threads``; GPU workers, as many
            as the work can use (the pool grows as GPU nodes join; the autoscaler's limit applies).
        threads: CPU threads per CPU actor (the PyTorch / ncnn thread count), fixed so results
            and speed do not depend on where an actor lands.
        gpus_per_worker: GPUs each actor asks Ray for (fractions share one); ``None``: 1 where the device
            is ``cuda``, or ``auto`` on a cluster that has GPUs now; else CPU workers.
        engine: the network engine every worker runs (``None``: ``$STUDIO_ENGINE``). ``auto`` is the
            reference engine, ``torch``, on a cluster: each machine's measured choice would give each
            node other numbers.
    """

    address: str | None = None
    workers: int | None = None
    threads: int = 1
    gpus_per_worker: float | None = None
    engine: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise SettingsError("workers must be >= 1.")
        if self.threads < 1:
            raise SettingsError("threads must be >= 1.")
        if self.gpus_per_worker is not None and not 0 <= self.gpus_per_worker <= 8:
            raise SettingsError("gpus per worker must be between 0 and 8 (0: CPU workers; 0.5: two share a GPU).")
        if self.engine is not None and self.engine not in ENGINES.choices():
            raise SettingsError(f"{self.engine!r} is not an engine; use one of {', '.join(ENGINES.choices())}.")


@dataclass(frozen=True)
class ModelRun:
    """The model a batch upscale runs, and how: its name, device, precision and weights folder (``None``: the
    default one), as the driver names them."""

    name: str
    device: str = "auto"
    precision: str = "auto"
    weights_dir: Path | None = None


@dataclass(frozen=True)
class UpscaleOutcome:
    """One input of a batch upscale: the PNG (``None`` where it failed, with ``error``, or where it was written
    to ``written``), the output's ``(width, height)``, the seconds the network took, and the pid of the process
    that made it."""

    index: int
    png: bytes | None
    size: tuple[int, int]
    seconds: float
    error: str
    pid: int
    written: str = ""


def upscale_one(upscaler: Upscaler, index: int, source: str, settings: UpscaleSettings, target: str = "",
                progress: Callable[[float, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> UpscaleOutcome:
    """Read ``source`` (a path or a URI), upscale it, and encode it as PNG with the input's colour profile;
    with a ``target``, write it there (atomically; an object appears only once uploaded) and return no
    bytes. A bad input or an unwritable target gives an outcome with ``error``; cancellation propagates."""
    png, size, seconds, error, written = None, (0, 0), 0.0, "", ""
    try:
        image = read_any(source, settings.limits)
        result = upscaler.upscale(image.pixels, settings, progress=progress, cancel=cancel)
        png, seconds = mark_png(encode_png(result.image, icc_profile=image.icc_profile)), result.seconds
        size = (result.image.shape[1], result.image.shape[0])
        if target:  # written where it belongs: the PNG goes no further
            written, png = write_any(target, png), None
    except CancelledError:
        raise
    except StudioError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"{exc.strerror or exc}: {exc.filename or source}"
    return UpscaleOutcome(index, png, size, seconds, error, os.getpid(), written)
