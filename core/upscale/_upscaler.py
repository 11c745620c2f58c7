"""The upscaler: one shared, thread-safe object per (model, device, precision).

An :class:`Upscaler` holds only immutable state (the model on its device, its info, the
device choice, the engine's forward); every call keeps its working data in locals, so threads
and sessions can share one instance. A call goes through three layers, each knowing only the
one below: channels and alpha (:mod:`core.upscale._channels`) -> tiles and memory
(:mod:`core.upscale._tiling`, :meth:`Upscaler.tile_for`) -> the engine's forward
(:mod:`core.engines`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .._device import (
    DeviceChoice,
    activation_bytes_per_pixel,
    device_memory,
    prepare_device,
    resolve_device,
)
from .._resize import target_size
from ..engines import (
    ANY_SHAPE,
    AUTO,
    CALL_OVERHEAD,
    ENGINES,
    BuildRequest,
    EngineChoice,
    EngineOptions,
    ShapeLimits,
    activation_profile,
    auto_engine,
    choose,
    default_engine,
    engine_folder,
    place_of,
)
from ..errors import DeviceUnavailableError, UnsupportedImageError
from ..models import DownloadProgress, LoadedModel, ModelInfo, load_model
from ._channels import check_image, fit_channels, upscale_planes
from ._settings import (
    LARGEST_PAD,
    MAX_TILE,
    MEMORY_SHARE,
    MIN_TILE,
    SHALLOW_ARCHITECTURES,
    TILE_STEP,
    UpscalePlan,
    UpscaleResult,
    UpscaleSettings,
    default_overlap,
    default_pad,
    default_tile,
    passes,
)
from ._tiling import Network, StepCount, TileProgress, run_tiled, tile_for_memory

__all__ = ["Upscaler"]

ProgressCallback = Callable[[float, int], None]
CancelCheck = Callable[[], bool]


class Upscaler:
    """A loaded model on a device, ready to upscale images.

    Build it with :meth:`Upscaler.load` (or from a :class:`LoadedModel`). Calls are
    thread-safe; keep one instance per (model, device, precision) and share it.
    """

    def __init__(self, loaded: LoadedModel, choice: DeviceChoice, engine: str | EngineOptions = AUTO, *,
                 status: Callable[[str], None] | None = None) -> None:
        """``engine``: ``auto`` (the engine measured fastest for this model on this machine and device,
        :mod:`core.engines`, measured on the first load there, where several engines can run it; else the
        one that can), a registered engine's name to force one, or :class:`EngineOptions` (with
        ``compile_mode`` and ``channels_last``). ``status``: told what a first load is doing (measuring
        the engines) while it does.

        Raises:
            UnsupportedImageError: a network that is not grey -> grey or RGB -> RGB.
            DeviceUnavailableError: the engine cannot run this model on this device.
            ValueError: an unknown engine or compile mode.
        """
        descriptor = loaded.descriptor
        if descriptor.input_channels not in (1, 3) or descriptor.output_channels != descriptor.input_channels:
            raise UnsupportedImageError(
                f"{loaded.info.name} maps {descriptor.input_channels} to {descriptor.output_channels} "
                "channels; only grey or RGB models are supported."
            )
        options = EngineOptions.of(engine)
        self._info, self._choice = loaded.info, choice
        self._engine_choice, self._engine, self._measurement_due = _engine_for(loaded, choice, options, status)
        runtime = ENGINES.get(self._engine)
        why = runtime.unsupported(loaded.info, choice)
        if why is not None:
            raise DeviceUnavailableError(why)
        prepare_device(choice)
        self._descriptor = descriptor.to(choice.torch_device).to(choice.dtype).eval()
        request = BuildRequest(loaded.info, self._descriptor, choice, engine_folder(loaded.info), options)
        self._runner = runtime.build(request)
        self._compile_mode = options.compile_mode if self._runner.fixed_tiles else None
        self._released = False
        self._bytes_per_pixel: float | None = None
        self._memory_lock = threading.Lock()
        self._seconds_per_pixel: float | None = None  # of the last call: for time estimates
        self._steps = StepCount()  # the layers one call passes: progress inside a tile
        self._busy = [0, time.monotonic()]  # calls running now, and when the last one started or ended
        self._busy_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        name: str,
        *,
        device: str = "auto",
        precision: str = "auto",
        weights_dir: Path | None = None,
        allow_download: bool = False,
        download_progress: DownloadProgress | None = None,
        engine: str | EngineOptions | None = None,
        status: Callable[[str], None] | None = None,
    ) -> Upscaler:
        """Load model ``name`` (see :func:`core.models.load_model`) onto the resolved device; ``engine``
        (``None``, or options without one: ``$STUDIO_ENGINE``, else ``auto``) and ``status`` as for the
        constructor.
        """
        options = EngineOptions.of(engine)
        if options.engine is None:
            options = replace(options, engine=default_engine())
        loaded = load_model(name, weights_dir, allow_download=allow_download, progress=download_progress)
        choice = resolve_device(
            device, precision,
            supports_half=loaded.descriptor.supports_half,
            supports_bfloat16=loaded.descriptor.supports_bfloat16,
        )
        return cls(loaded, choice, options, status=status)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def choice(self) -> DeviceChoice:
        return self._choice

    @property
    def scale(self) -> int:
        """The default output scale (the catalogue's scale, else the network's)."""
        return self._info.scale or self._descriptor.scale

    @property
    def net_scale(self) -> int:
        return self._descriptor.scale

    def describe(self) -> str:
        """One line such as ``RealESRGAN_x4plus · cpu · fp32 · ncnn · weights: official file ...``."""
        engine = self.engine + (f" ({self._runner.note})" if self._runner.note else "")
        return f"{self._info.name} · {self._choice.label()} · {engine} · weights: {self._info.source}"

    @property
    def measurement_due(self) -> bool:
        """Built with ``measure_later`` (:class:`~core.engines.EngineOptions`) before this machine measured the
        engines for this model (or when a re-check is due): it runs on the engine measured before, or on the
        reference, and a load with ``auto`` would measure now."""
        return self._measurement_due

    @property
    def engine_choice(self) -> EngineChoice | None:
        """The measurement behind ``engine="auto"``'s choice (``None`` where the engine was forced,
        or where PyTorch ran without measuring)."""
        return self._engine_choice

    @property
    def compile_mode(self) -> str | None:
        return self._compile_mode

    def activation_bytes_per_pixel(self) -> float | None:
        """Peak memory per input pixel of one model call on the memory the device computes in: the engine's bound
        (``bytes_per_pixel`` of :class:`core.engines.Engine`: on the CPU, derived from the network's activations and
        the engine's buffers), else measured once on CUDA, else ``None`` (tiles by the device default)."""
        with self._memory_lock:
            if self._bytes_per_pixel is None:
                profile = activation_profile(self._descriptor.model, self._descriptor.input_channels)
                bound = ENGINES.get(self._engine).bytes_per_pixel(profile, self._choice)
                if bound is None:  # measured: through the runner where it takes any shape, else the eager network
                    limited = self._fixed_tiles or self._runner.shapes != ANY_SHAPE
                    network = self._descriptor if limited else self._runner.forward
                    bound = activation_bytes_per_pixel(network, self._descriptor.input_channels, self._choice.device,
                                                       self._choice.dtype)
                self._bytes_per_pixel = bound
            return self._bytes_per_pixel

    def tile_for(self, settings: UpscaleSettings) -> tuple[int, int]:
        """The ``(tile, batch)`` a call with ``settings`` uses.

        An explicit ``settings.tile`` is used as given. Otherwise the device default, lowered
        where needed (CUDA, and the CPU) to the largest tile whose batch fits in
        :data:`MEMORY_SHARE` of the free device memory or available RAM. ``tile=0`` ("no
        tiling") is capped the same way, from :data:`MAX_TILE` down: an image that fits runs
        whole, a larger one in the largest tiles that fit.
        """
        batch = settings.batch or 1
        if settings.tile:
            return settings.tile, batch
        tile = default_tile(self._choice.device) if settings.tile is None else MAX_TILE
        memory = device_memory(self._choice.device)
        per_pixel = self.activation_bytes_per_pixel() if memory is not None else None
        if memory is not None and per_pixel is not None:
            pad = settings.tile_pad if settings.tile_pad is not None else LARGEST_PAD
            budget = MEMORY_SHARE * memory[0] - (CALL_OVERHEAD if self._choice.device == "cpu" else 0)
            fits = tile_for_memory(per_pixel, max(budget, 1.0), batch=batch, pad=pad, multiple=TILE_STEP,
                                   largest=MAX_TILE)
            tile = max(MIN_TILE, min(tile, fits))
        elif settings.tile == 0:
            return 0, batch  # memory unknown (MPS): as asked
        return tile, batch

    def estimate_seconds(self, height: int, width: int, channels: int = 3,
                         settings: UpscaleSettings | UpscalePlan | None = None) -> float:
        """About how long :meth:`upscale` takes for an image of that size, from this upscaler's
        measured speed (its last call; the first estimate times a 64-px call, which takes well
        under a second and errs long, as small inputs cost more per pixel)."""
        if self._seconds_per_pixel is None:
            self.upscale(np.zeros((64, 64, 3), np.uint8), UpscaleSettings(tile=0))
        assert self._seconds_per_pixel is not None
        calls = passes(channels, (settings or UpscaleSettings()).alpha)
        return self._seconds_per_pixel * height * width * calls

    def output_size(self, height: int, width: int, outscale: float | None = None) -> tuple[int, int]:
        return target_size(height, width, outscale or self.scale)

    def release(self) -> None:
        """Free what the engine holds outside Python's reach (:attr:`core.engines.Runner.release`) now, not when
        this object is collected; the upscaler cannot run after it. For a caller that owns the upscaler (a
        shared one, :func:`core.shared_upscaler`, may be in use elsewhere: let the cache drop it)."""
        if not self._released and self._runner.release is not None:
            self._runner.release()
        self._released = True

    @property
    def engine(self) -> str:
        """The name of the registered engine that runs the network (see :data:`core.engines.ENGINES`)."""
        return self._engine

    @property
    def _fixed_tiles(self) -> bool:
        """Tiles of exactly the tile size: one input shape for a compiled graph."""
        return self._runner.fixed_tiles

    def resolve(self, settings: UpscaleSettings | UpscalePlan) -> UpscalePlan:
        """The :class:`UpscalePlan` of ``settings``: the tile and batch of :meth:`tile_for`, and the
        model's default context and blend where ``settings`` leaves them open. A plan is returned as is."""
        if isinstance(settings, UpscalePlan):
            return settings
        tile, batch = self.tile_for(settings)
        shallow = self.shallow
        pad = settings.tile_pad if settings.tile_pad is not None else default_pad(tile, shallow=shallow)
        overlap = settings.tile_overlap if settings.tile_overlap is not None else default_overlap(shallow=shallow)
        shapes = self._runner.shapes
        if shapes.maximum is not None or shapes.optimal is not None:  # the engine's windows: tile and context
            pad = min(pad, (shapes.maximum or shapes.optimal or 0) // 4)
            largest = (shapes.maximum or MAX_TILE + 2 * pad) - 2 * pad
            wanted = (shapes.optimal - 2 * pad) if shapes.optimal is not None and settings.tile is None else largest
            tile = min(tile or largest, wanted, largest) if not shapes.fixed else largest
        return UpscalePlan(outscale=settings.outscale, tile=tile, batch=batch, tile_overlap=overlap, tile_pad=pad,
                           alpha=settings.alpha, limits=settings.limits, fixed=self._fixed_tiles or shapes.fixed)

    @property
    def shallow(self) -> bool:
        """Whether the network's receptive field is small (:data:`SHALLOW_ARCHITECTURES`): less tile context."""
        return self._descriptor.architecture.id in SHALLOW_ARCHITECTURES

    def _run(self, planes: torch.Tensor, plan: UpscalePlan, progress: TileProgress) -> torch.Tensor:
        """The tile layer: ``planes`` fitted to the network's channels, through the engine tile by tile."""
        if self._released:
            raise ValueError(f"This {self._info.name} upscaler was released; load the model again.")
        planes = fit_channels(planes, self._descriptor.input_channels)
        forward = self._runner.forward
        if self._runner.shapes != ANY_SHAPE:
            forward = _conformed(forward, self._runner.shapes, self.net_scale)
        net = Network(forward, self.net_scale, self._choice.torch_device, self._choice.dtype)
        out = run_tiled(planes.contiguous(), net, plan.tiling, progress)
        return out.clamp(0, 1)  # not in place: a single-tile result may be an inference-mode tensor

    def count_tiles(self, height: int, width: int, settings: UpscaleSettings | UpscalePlan, channels: int = 3) -> int:
        """How many tiles :meth:`upscale` will run (for progress bars)."""
        plan = self.resolve(settings)
        return len(plan.tiling.tiles(height, width)) * plan.passes(channels)

    def upscale(
        self,
        image: np.ndarray,
        settings: UpscaleSettings | UpscalePlan | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> UpscaleResult:
        """Upscale an edge-convention image.

        Args:
            image: ``uint8`` / ``uint16`` array ``(H, W)`` or ``(H, W, C)``, ``C`` in
                ``{1, 3, 4}``.
            settings: see :class:`UpscaleSettings` (or the plan :meth:`resolve` made of them).
            progress: called with ``(model calls done, total)`` after each tile, and inside a call, in
                fractions, as the engine passes its layers (PyTorch and ncnn on the CPU; once the upscaler
                has run one call, as :meth:`estimate_seconds` does).
            cancel: polled between tiles; returning ``True`` raises ``CancelledError``.

        Returns:
            :class:`UpscaleResult` whose image has the input's dtype and channel count
            (RGB if the input was RGBA and ``alpha="drop"``).

        Raises:
            UnsupportedImageError, ImageTooLargeError, CancelledError, OutOfMemoryError.
        """
        with self._busy_lock:
            self._busy = [self._busy[0] + 1, time.monotonic()]
        try:
            return self._upscale(image, self.resolve(settings or UpscaleSettings()),
                                 TileProgress(progress, cancel, steps=self._steps))
        finally:
            with self._busy_lock:
                self._busy = [self._busy[0] - 1, time.monotonic()]

    def idle_seconds(self) -> float:
        """How long no :meth:`upscale` call has run on this upscaler (0 while one runs): background work, such
        as measuring the engines, waits for a quiet moment instead of slowing a user's request."""
        with self._busy_lock:
            running, since = self._busy
        return 0.0 if running else time.monotonic() - since

    def _upscale(self, image: np.ndarray, plan: UpscalePlan, progress: TileProgress) -> UpscaleResult:
        """:meth:`upscale` with the settings resolved."""
        start = time.perf_counter()
        array = check_image(image)
        height, width, channels = array.shape
        out_size = self.output_size(height, width, plan.outscale)
        plan.limits.check_upscale(width, height, out_size)
        net_size = (height * self.net_scale, width * self.net_scale)
        plan.limits.check_output(net_size[1], net_size[0], source=(width, height), network=self.net_scale)
        calls = plan.passes(channels)
        total = self.count_tiles(height, width, plan, channels)
        final = upscale_planes(array, plan, lambda planes, part: self._run(planes, plan, part), net_size, out_size,
                               progress, total)
        seconds = time.perf_counter() - start
        self._seconds_per_pixel = seconds / (height * width * calls)
        return UpscaleResult(image=final, model=self._info.name, device=self._choice.device,
                             precision=self._choice.precision, seconds=seconds,
                             tile=plan.tile if total > calls else 0, batch=plan.batch)


def _engine_for(loaded: LoadedModel, choice: DeviceChoice, options: EngineOptions,
                status: Callable[[str], None] | None) -> tuple[EngineChoice | None, str, bool]:
    """The engine that runs ``loaded`` on ``choice``, the measurement behind it where ``auto`` measured, and
    whether a measurement is due (``options.measure_later`` only).

    ``auto`` measures, without ``torch.compile``, the engines that can run the model on ``choice``'s device and
    precision where there are several (on the CPU in fp32 here: PyTorch, ncnn, OpenVINO; on CUDA, wherever a
    second engine is registered), and remembers the result for that device; where one engine alone can run it,
    it takes that one (PyTorch; OpenVINO on an Intel GPU)."""
    if options.engine is not None and options.engine != AUTO:
        ENGINES.get(options.engine)  # an unknown name fails here, with the list
        return None, options.engine, False
    engines = ENGINES.runnable(loaded.info, choice)
    if options.compile_mode is not None or len(engines) <= 1:
        return None, engines[0] if engines else ENGINES.reference.name, False
    if options.measure_later:
        before = auto_engine(loaded.info, choice)
        if before is None or before.engine not in engines:
            return None, engines[0], True  # the reference: right at once, nothing to compile
        if before.due():
            return before, before.engine, True

    def build(engine: str) -> Upscaler:
        return Upscaler(loaded, choice, replace(options, engine=engine))

    measured = choose(loaded.info.fingerprint, engine_folder(loaded.info), engines, build, UpscaleSettings(tile=0),
                      status, loaded.info.name, place_of(choice))
    return measured, measured.engine, False


def _conformed(forward: Callable[[torch.Tensor], torch.Tensor], shapes: ShapeLimits,
               scale: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` for any input: one the engine does not accept (smaller than its fixed shape, a side that is
    not a multiple) is padded at the bottom and right by replication, and the padding is cut off the output."""
    def call(tensor: torch.Tensor) -> torch.Tensor:
        height, width = tensor.shape[-2:]
        fitted = shapes.accepted(height), shapes.accepted(width)
        if fitted == (height, width):
            return forward(tensor)
        padded = torch.nn.functional.pad(tensor, (0, fitted[1] - width, 0, fitted[0] - height), mode="replicate")
        return forward(padded)[..., : height * scale, : width * scale]

    return call
