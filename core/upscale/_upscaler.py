"""The upscaler: one shared, thread-safe object per (model, device, precision).

An :class:`Upscaler` holds only immutable state (the model on its device, its info, the
device choice); every call keeps its working data in locals, so threads and sessions
can share one instance. A call takes an edge-convention image (``uint8`` / ``uint16``
HWC, grey / RGB / RGBA) and returns one of the same kind, upscaled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from .._device import (
    DeviceChoice,
    activation_bytes_per_pixel,
    device_memory,
    prepare_device,
    resolve_device,
)
from .._errors import DeviceUnavailableError, UnsupportedImageError
from .._io import ImageLimits
from .._resize import resize, target_size
from .._settings import ENGINE_NAMES, default_engine, default_weights_dir
from ..engines._choice import EngineChoice, forget, remembered
from ..engines._choice import choose as choose_engine
from ..engines._memory import CALL_OVERHEAD, cpu_bytes_per_pixel
from ..engines._ncnn import NcnnForward, ncnn_available
from ..engines._openvino import OpenVinoForward, openvino_available
from ..engines._probe import activation_profile
from ..models._weights import DownloadProgress, LoadedModel, ModelInfo, load_model, ncnn_model_files
from ._tiling import Network, TilePlan, TileProgress, check_cancelled, run_tiled, tile_for_memory

__all__ = ["ALPHA_MODES", "COMPILE_MODES", "ENGINES", "MAX_TILE", "MIN_TILE", "TILE_STEP", "AlphaMode",
           "UpscalePlan", "UpscaleResult", "UpscaleSettings", "Upscaler", "auto_engine",
           "cpu_engine_label", "default_overlap", "forget_engine", "default_pad", "default_tile"]

AlphaMode = Literal["model", "bicubic", "drop"]
ALPHA_MODES: tuple[str, ...] = get_args(AlphaMode)  # the one list every front end offers
ENGINES = ENGINE_NAMES  # what runs the network: chosen per model (auto) or forced
ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

# Luma weights used to fold an RGB model output back to one channel (as OpenCV's
# RGB2GRAY and the official Real-ESRGAN script do for grey images and alpha).
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
MAX_OUTSCALE = 16.0
# Tile sizes a caller may ask for. Below 32 px the context around each tile costs more than the
# tile (a 1-px tile runs (1 + 2 * 24)^2 = 2401 px per output pixel) and one call holds a worker
# for minutes; the out-of-memory fallback may still go lower on its own.
MIN_TILE = 32
MAX_TILE = 8192
# Automatic tiles are multiples of this: free memory drifts by a few per cent between calls,
# and a coarse step keeps the tile (and the sidebar's figure) from changing with every drift.
TILE_STEP = 64
# torch.compile modes (opt-in): "reduce-overhead" adds CUDA graphs on CUDA.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# Share of the free device memory (or available RAM) the tiles of one call may use.
MEMORY_SHARE = 0.5


def default_tile(device: str) -> int:
    """Default tile size in input pixels: bounded memory, small overhead on each device.

    This is an upper bound: :meth:`Upscaler.tile_for` lowers it to what fits in free GPU
    memory (CUDA) or available RAM (CPU).
    """
    return 512 if device.startswith("cuda") else 384


# Architectures whose receptive field is a few tens of pixels (a plain stack of 3x3 convolutions):
# 16 px of context already gives tiles that equal untiled output to > 87 dB (benchmarks/seams.py).
SHALLOW_ARCHITECTURES = frozenset({"Compact"})


def default_pad(tile: int, *, shallow: bool = False) -> int:
    """Default context per tile side, in input pixels (see :func:`default_overlap`).

    Deep networks (ESRGAN's 23 RRDB blocks, transformers) see far beyond a tile's edge. On the
    bundled photos with texture across the seams (benchmarks/seams.py, x4plus), 16 px of context
    with an 8 px blend left the seam band at 40.3 dB against untiled output (128 px tiles) and
    42.0 dB (256 px tiles), the image at 48.0 / 53.5 dB; 24 px with a 16 px blend gives 44.2 /
    45.9 dB in the band and 51.1 / 57.8 dB over the image, at 1.26x the untiled time with 256 px
    tiles. Tiles below 128 px, whose seams are dense, get 8 px more. ``shallow``
    (:data:`SHALLOW_ARCHITECTURES`) models need 16 px (8 px more below 128 px tiles)."""
    small = 0 < tile < 128
    if shallow:
        return 24 if small else 16
    return 32 if small else 24


def default_overlap(*, shallow: bool = False) -> int:
    """Default blended overlap between tiles: 16 px for deep networks (the blend ramp halves what
    is left of a seam; benchmarks/seams.py), 8 px for shallow ones."""
    return 8 if shallow else 16


LARGEST_PAD = default_pad(1)  # the memory estimate of an automatic tile assumes the largest default


@dataclass(frozen=True)
class UpscaleSettings:
    """How to upscale one image. Frozen and hashable, so caches can key on it.

    Attributes:
        outscale: final scale in ``(0, 16]``; ``None`` means the model's own scale. The
            model runs at its native scale, then the result is resized to the exact size
            ``round(H * outscale) x round(W * outscale)`` (Lanczos up, area down).
        tile: tile size in input pixels (:data:`MIN_TILE` to :data:`MAX_TILE`); ``None`` = the
            device's default, lowered to what fits in free memory (:meth:`Upscaler.tile_for`);
            ``0`` = no tiling where the whole image fits in memory, else the largest tile that does.
        batch: tiles per model call (they share one shape); ``None`` = 1. Batches help
            where one tile leaves the GPU idle; on out-of-memory the batch is halved first.
        tile_overlap: blended overlap between tiles, input pixels; ``None`` =
            :func:`default_overlap` of the model (16 px, 8 px for shallow networks).
        tile_pad: extra context given to each tile and cut off its output, input pixels;
            ``None`` = :func:`default_pad` of the tile and model (24 px for deep networks,
            16 px for shallow ones; 8 px more below 128 px tiles).
        alpha: RGBA only: ``model`` (alpha upscaled by the model as a grey image),
            ``bicubic`` (alpha resized with bicubic) or ``drop`` (RGB output).
        limits: input / output pixel limits.
    """

    outscale: float | None = None
    tile: int | None = None
    batch: int | None = None
    tile_overlap: int | None = None
    tile_pad: int | None = None
    alpha: AlphaMode = "model"
    limits: ImageLimits = field(default_factory=ImageLimits)

    def __post_init__(self) -> None:
        if self.outscale is not None and not 0 < self.outscale <= MAX_OUTSCALE:
            raise ValueError(f"outscale must be in (0, {MAX_OUTSCALE:g}], got {self.outscale}.")
        if self.tile is not None and self.tile != 0 and not MIN_TILE <= self.tile <= MAX_TILE:
            raise ValueError(f"tile must be 0 (no tiling where it fits) or between {MIN_TILE} and {MAX_TILE} px, "
                             f"got {self.tile}.")
        if self.batch is not None and not 1 <= self.batch <= 64:
            raise ValueError("batch must be between 1 and 64.")
        if (self.tile_overlap is not None and self.tile_overlap < 0) or (self.tile_pad is not None
                                                                          and self.tile_pad < 0):
            raise ValueError("tile_overlap and tile_pad must be >= 0.")
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be model, bicubic or drop, got {self.alpha!r}.")


@dataclass(frozen=True)
class UpscalePlan:
    """:class:`UpscaleSettings` resolved for one upscaler (:meth:`Upscaler.resolve`): every
    choice concrete. Resolve once, then count tiles and upscale with the plan, so both agree
    even if free memory changes in between.

    ``tile=0``: the image runs as one tile. ``fixed``: tiles of exactly ``tile`` pixels
    (a compiled graph sees one input shape).
    """

    outscale: float | None
    tile: int
    batch: int
    tile_overlap: int
    tile_pad: int
    alpha: AlphaMode
    limits: ImageLimits
    fixed: bool = False

    @property
    def tiling(self) -> TilePlan:
        return TilePlan(self.tile, self.tile_overlap, self.tile_pad, self.batch, self.fixed)

    def passes(self, channels: int) -> int:
        return _passes(channels, self.alpha)


@dataclass(frozen=True)
class UpscaleResult:
    """An upscaled image and how it was made."""

    image: np.ndarray
    model: str
    device: str
    precision: str
    seconds: float
    tile: int  # 0 where the image ran as one tile
    batch: int = 1


class Upscaler:
    """A loaded model on a device, ready to upscale images.

    Build it with :meth:`Upscaler.load` (or from a :class:`LoadedModel`). Calls are
    thread-safe; keep one instance per (model, device, precision) and share it.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        choice: DeviceChoice,
        engine: str = "auto",
        *,
        compile_mode: str | None = None,
        channels_last: bool | None = None,
        status: Callable[[str], None] | None = None,
    ) -> None:
        """``engine``: ``auto`` (on the CPU in fp32: the engine measured fastest for this model on this
        machine, :mod:`core.engines._choice`, measured on the first load; elsewhere PyTorch), or
        ``torch``, ``ncnn``, ``openvino`` to force one.
        ``compile_mode``: one of :data:`COMPILE_MODES` to run the network through
        ``torch.compile`` (compiled once per tile shape), ``None`` for eager; with ``engine="auto"``
        it means PyTorch; ignored where ncnn or OpenVINO is forced (``describe()`` says which).
        ``channels_last``: NHWC memory format; ``None`` = on for the CPU and CUDA.
        ``status``: told what a first load is doing (measuring the engines) while it does."""
        descriptor = loaded.descriptor
        if descriptor.input_channels not in (1, 3) or descriptor.output_channels != descriptor.input_channels:
            raise UnsupportedImageError(
                f"{loaded.info.name} maps {descriptor.input_channels} to {descriptor.output_channels} "
                "channels; only grey or RGB models are supported."
            )
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)} or None, got {compile_mode!r}.")
        prepare_device(choice)
        self._descriptor = descriptor.to(choice.torch_device).to(choice.dtype).eval()
        if channels_last is None:  # NHWC: faster convolutions on the CPU, and tensor-core friendly on CUDA
            channels_last = choice.device == "cpu" or choice.device.startswith("cuda")
        self._channels_last = channels_last
        if channels_last:
            self._descriptor.model.to(memory_format=torch.channels_last)
        self._info = loaded.info
        self._choice = choice
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
        self._engine_choice: EngineChoice | None = None
        if choice.openvino_device is not None:  # a device only OpenVINO drives (Intel graphics)
            if engine not in ("auto", "openvino"):
                raise DeviceUnavailableError(f"{choice.device} runs the network on OpenVINO only, not on {engine}.")
            engine = "openvino"
        if engine == "auto":
            self._engine_choice = _measured_engine(loaded, choice, compile_mode, channels_last, status)
            engine = self._engine_choice.engine if self._engine_choice is not None else "torch"
        self._ncnn = _ncnn_engine(loaded.info, choice, engine)
        self._openvino = _openvino_engine(loaded, self._descriptor, choice, engine)
        self._compile_mode = None if self._ncnn is not None or self._openvino is not None else compile_mode
        self._compiled = (
            torch.compile(self._descriptor.model, mode=self._compile_mode)
            if self._compile_mode else None
        )
        # Compiled graphs run on one thread of their own: CUDA graphs keep per-thread state and
        # fail when called from several threads (pytorch/pytorch#123177); calls queue up there.
        self._compiled_worker = (
            ThreadPoolExecutor(1, thread_name_prefix="compiled-network") if self._compiled is not None else None
        )
        self._bytes_per_pixel: float | None = None
        self._memory_lock = threading.Lock()
        self._seconds_per_pixel: float | None = None  # of the last call: for time estimates
        if self._ncnn is None and self._openvino is None and self._compiled is None and choice.device == "cpu":
            _cancel_between_layers(self._descriptor.model)

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
        engine: str | None = None,
        compile_mode: str | None = None,
        channels_last: bool | None = None,
        status: Callable[[str], None] | None = None,
    ) -> Upscaler:
        """Load model ``name`` (see :func:`core.load_model`) onto the resolved device; ``engine``
        (``None``: ``$STUDIO_ENGINE``, else ``auto``), ``compile_mode``, ``channels_last`` and
        ``status`` as for the constructor.
        """
        engine = engine or default_engine()
        loaded = load_model(name, weights_dir, allow_download=allow_download, progress=download_progress)
        choice = resolve_device(
            device, precision,
            supports_half=loaded.descriptor.supports_half,
            supports_bfloat16=loaded.descriptor.supports_bfloat16,
        )
        return cls(loaded, choice, engine, compile_mode=compile_mode, channels_last=channels_last, status=status)

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
        engine = self.engine + (f" (compiled, {self._compile_mode})" if self._compile_mode else "")
        return f"{self._info.name} · {self._choice.label()} · {engine} · weights: {self._info.source}"

    @property
    def engine_choice(self) -> EngineChoice | None:
        """The measurement behind ``engine="auto"``'s choice (``None`` where the engine was forced,
        or where PyTorch ran without measuring)."""
        return self._engine_choice

    @property
    def compile_mode(self) -> str | None:
        return self._compile_mode

    def activation_bytes_per_pixel(self) -> float | None:
        """Peak memory per input pixel of one model call: measured once on CUDA, an upper bound
        derived from the network's activations and the engine's buffers on the CPU
        (:func:`core.engines._memory.cpu_bytes_per_pixel`), ``None`` elsewhere."""
        with self._memory_lock:
            if self._bytes_per_pixel is None:
                if self._choice.device == "cpu":
                    profile = activation_profile(self._descriptor.model, self._descriptor.input_channels)
                    self._bytes_per_pixel = cpu_bytes_per_pixel(profile, self.engine, self._choice.dtype.itemsize)
                else:
                    self._bytes_per_pixel = activation_bytes_per_pixel(
                        self._descriptor, self._descriptor.input_channels, self._choice.device, self._choice.dtype)
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
        passes = _passes(channels, (settings or UpscaleSettings()).alpha)
        return self._seconds_per_pixel * height * width * passes

    def output_size(self, height: int, width: int, outscale: float | None = None) -> tuple[int, int]:
        return target_size(height, width, outscale or self.scale)

    @property
    def engine(self) -> str:
        """``"ncnn"``, ``"openvino"`` or ``"torch"``: what runs the network."""
        if self._ncnn is not None:
            return "ncnn"
        return "openvino" if self._openvino is not None else "torch"

    @property
    def _fixed_tiles(self) -> bool:
        """Tiles of exactly the tile size: one input shape for a compiled graph."""
        return self._compiled is not None

    def resolve(self, settings: UpscaleSettings | UpscalePlan) -> UpscalePlan:
        """The :class:`UpscalePlan` of ``settings``: the tile and batch of :meth:`tile_for`, and the
        model's default context and blend where ``settings`` leaves them open. A plan is returned as is."""
        if isinstance(settings, UpscalePlan):
            return settings
        tile, batch = self.tile_for(settings)
        shallow = self.shallow
        pad = settings.tile_pad if settings.tile_pad is not None else default_pad(tile, shallow=shallow)
        overlap = settings.tile_overlap if settings.tile_overlap is not None else default_overlap(shallow=shallow)
        return UpscalePlan(outscale=settings.outscale, tile=tile, batch=batch, tile_overlap=overlap, tile_pad=pad,
                           alpha=settings.alpha, limits=settings.limits, fixed=self._fixed_tiles)

    @property
    def shallow(self) -> bool:
        """Whether the network's receptive field is small (:data:`SHALLOW_ARCHITECTURES`): less tile context."""
        return self._descriptor.architecture.id in SHALLOW_ARCHITECTURES

    def _forward(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._ncnn is not None:
            return self._ncnn(tensor)
        if self._openvino is not None:
            return self._openvino(tensor)
        if self._channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        height, width = tensor.shape[-2:]
        if self._compiled_worker is not None and self._descriptor.size_requirements.check(width, height):
            return self._compiled_worker.submit(self._run_compiled, tensor).result()
        return self._descriptor(tensor)

    def _run_compiled(self, tensor: torch.Tensor) -> torch.Tensor:
        assert self._compiled is not None
        with torch.inference_mode():
            # clamp out of place: a CUDA-graph output is overwritten by the next replay
            return self._compiled(tensor).clamp(0, 1)

    def _run(self, planes: torch.Tensor, plan: UpscalePlan, progress: TileProgress) -> torch.Tensor:
        grey_model = self._descriptor.input_channels == 1
        if grey_model and planes.shape[1] == 3:
            planes = (planes * _LUMA).sum(dim=1, keepdim=True)
        elif not grey_model and planes.shape[1] == 1:
            planes = planes.expand(-1, 3, -1, -1)
        net = Network(self._forward, self.net_scale, self._choice.torch_device, self._choice.dtype)
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
            progress: called with ``(model calls done, total)`` after each tile.
            cancel: polled between tiles; returning ``True`` raises ``CancelledError``.

        Returns:
            :class:`UpscaleResult` whose image has the input's dtype and channel count
            (RGB if the input was RGBA and ``alpha="drop"``).

        Raises:
            UnsupportedImageError, ImageTooLargeError, CancelledError, OutOfMemoryError.
        """
        return self._upscale(image, self.resolve(settings or UpscaleSettings()), TileProgress(progress, cancel))

    def _upscale(self, image: np.ndarray, plan: UpscalePlan, progress: TileProgress) -> UpscaleResult:
        """:meth:`upscale` with the settings resolved."""
        start = time.perf_counter()
        if image.dtype not in (np.uint8, np.uint16):
            raise UnsupportedImageError(f"Expected a uint8 or uint16 image, got {image.dtype}.")
        array = image[:, :, None] if image.ndim == 2 else image
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise UnsupportedImageError(f"Expected (H, W, C) with C in 1, 3, 4; got shape {image.shape}.")
        height, width, channels = array.shape
        out_h, out_w = self.output_size(height, width, plan.outscale)
        plan.limits.check_upscale(width, height, (out_h, out_w))
        net_h, net_w = height * self.net_scale, width * self.net_scale
        plan.limits.check_output(net_w, net_h)

        top = float(np.iinfo(array.dtype).max)
        planes = torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32)).div_(top)[None]
        colour, alpha = (planes[:, :3], planes[:, 3:]) if channels == 4 else (planes, None)
        passes = plan.passes(channels)
        total = self.count_tiles(height, width, plan, channels)
        result = self._run(colour, plan, progress.part(0, total))
        if channels == 1 and result.shape[1] == 3:
            result = (result * _LUMA).sum(dim=1, keepdim=True)
        out = result[0].permute(1, 2, 0).numpy()
        if alpha is not None and plan.alpha != "drop":
            if plan.alpha == "model":
                up = self._run(alpha, plan, progress.part(total // 2, total))
                a = (up * _LUMA).sum(dim=1, keepdim=True) if up.shape[1] == 3 else up
                alpha_np = a[0, 0].numpy()[:, :, None]
            else:
                alpha_np = resize(alpha[0, 0].numpy()[:, :, None], (net_h, net_w), "bicubic")
            out = np.concatenate([out, alpha_np], axis=2)
        if (out_h, out_w) != (net_h, net_w):
            method = "area" if out_h < net_h else "lanczos"
            out = resize(np.ascontiguousarray(out, dtype=np.float32), (out_h, out_w), method)
        # in place: `out` is this call's own array, and each copy would be the size of the whole output
        np.multiply(out, top, out=out)
        np.clip(np.rint(out, out=out), 0, top, out=out)
        final = out.astype(array.dtype)
        seconds = time.perf_counter() - start
        self._seconds_per_pixel = seconds / (height * width * passes)
        return UpscaleResult(
            image=final,
            model=self._info.name,
            device=self._choice.device,
            precision=self._choice.precision,
            seconds=seconds,
            tile=plan.tile if total > passes else 0,
            batch=plan.batch,
        )


def _passes(channels: int, alpha: str) -> int:
    """Model passes per image: two for RGBA with ``alpha="model"`` (colour, then alpha), else one."""
    return 2 if channels == 4 and alpha == "model" else 1


def _cancel_between_layers(model: torch.nn.Module) -> None:
    """Check for a cancel before every convolution of an eager CPU model (a few µs each), so a
    cancel stops a long tile within a fraction of it; once per model (the model may be shared)."""
    if getattr(model, "_studio_cancel_hooks", False):
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(lambda *_: check_cancelled())
    model._studio_cancel_hooks = True


def _ncnn_files(info: ModelInfo) -> tuple[Path, Path] | None:
    spec = info.spec
    return ncnn_model_files(spec.ncnn) if spec is not None and spec.ncnn and ncnn_available() else None


def _cpu_engines(info: ModelInfo) -> list[str]:
    """The engines that can run ``info`` on the CPU in fp32 here, PyTorch first."""
    return ["torch", *(["ncnn"] if _ncnn_files(info) is not None else []),
            *(["openvino"] if openvino_available() else [])]


def _engine_folder(info: ModelInfo) -> Path:
    """Where the engines' caches and measurements of ``info`` live: beside its weights."""
    return info.path.parent if info.path is not None else default_weights_dir()


def auto_engine(info: ModelInfo) -> EngineChoice | None:
    """What ``engine="auto"`` runs ``info`` with on this machine's CPU in fp32, as measured on its
    first load here (:mod:`core.engines._choice`); ``None`` where it has not been measured yet, or
    where PyTorch is the only engine that can run it (then it runs on PyTorch)."""
    return remembered(info.fingerprint, _engine_folder(info))


def cpu_engine_label(info: ModelInfo) -> str:
    """What ``engine="auto"`` runs ``info`` with on this CPU, for tables: ``"ncnn (measured)"`` once the
    choice is final, ``"ncnn (measured 1 of 3)"`` before, ``"torch (only engine)"`` or ``"measured on
    first load"``."""
    if len(_cpu_engines(info)) == 1:
        return "torch (only engine)"
    found = auto_engine(info)
    if found is None:
        return "measured on first load"
    return f"{found.engine} (measured)" if found.final else f"{found.engine} (measured {found.progress()})"


def forget_engine(info: ModelInfo) -> bool:
    """Forget the measured engine of ``info`` on this machine: its next load measures again."""
    return forget(info.fingerprint, _engine_folder(info))


def _measured_engine(loaded: LoadedModel, choice: DeviceChoice, compile_mode: str | None,
                     channels_last: bool | None, status: Callable[[str], None] | None) -> EngineChoice | None:
    """The measured engine for ``engine="auto"`` (``None``: PyTorch without measuring: off the CPU, in
    bf16, with ``torch.compile``, or where no other engine can run the model)."""
    engines = _cpu_engines(loaded.info)
    if choice.device != "cpu" or choice.precision != "fp32" or compile_mode is not None or len(engines) == 1:
        return None

    def build(engine: str) -> Upscaler:
        return Upscaler(loaded, choice, engine, channels_last=channels_last)

    return choose_engine(loaded.info.fingerprint, _engine_folder(loaded.info), engines, build,
                         UpscaleSettings(tile=0), status, loaded.info.name)


def _ncnn_engine(info: ModelInfo, choice: DeviceChoice, engine: str) -> NcnnForward | None:
    if engine != "ncnn":
        return None
    files = _ncnn_files(info)
    if files is None or choice.device != "cpu" or choice.precision != "fp32":
        raise DeviceUnavailableError(f"The ncnn engine is not available for {info.name} on {choice.label()}.")
    return NcnnForward(*files, threads=torch.get_num_threads())


def _openvino_engine(loaded: LoadedModel, descriptor, choice: DeviceChoice, engine: str) -> OpenVinoForward | None:
    """OpenVINO where it was chosen or asked for: on the CPU in fp32, or on an Intel GPU (fp16 or fp32);
    its cache lives beside the weights."""
    if engine != "openvino":
        return None
    if not openvino_available():
        raise DeviceUnavailableError("The OpenVINO engine needs the openvino package: .venv/bin/pip install -r "
                                     "requirements.txt (it is pinned there).")
    on_cpu = choice.device == "cpu" and choice.precision == "fp32"
    if not on_cpu and choice.openvino_device is None:
        raise DeviceUnavailableError(f"The OpenVINO engine runs on the CPU in fp32 (or on an Intel GPU), "
                                     f"not on {choice.label()}.")
    return OpenVinoForward(descriptor.model, descriptor.input_channels, loaded.info.fingerprint,
                           _engine_folder(loaded.info) / "openvino", device=choice.openvino_device or "CPU",
                           precision="f16" if choice.precision == "fp16" else "f32",
                           threads=torch.get_num_threads())
