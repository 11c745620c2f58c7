"""The ncnn runtime as a CPU inference engine behind the same call as a spandrel model.

On this kind of CPU ncnn's Winograd convolutions run Real-ESRGAN faster than PyTorch's
direct convolutions, with the same output (fp32 options: ~125-145 dB PSNR against the
converted PyTorch model). :class:`NcnnForward` takes and returns ``(N, 3, H, W)`` float32
CPU tensors in ``[0, 1]``, like a spandrel descriptor, so the tiling loop can use either.
The graphs of the animevideov3 x2 / x3 files end with a downscale; the engine reads the
blob before it (the x4 network), and the upscaler resizes to the requested scale.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch

from .._cancel import check_cancelled
from .._device import DeviceChoice
from ..errors import ConversionError
from ..models import ModelInfo, ncnn_model_files, parse_param
from ._memory import MARGIN, edge_bytes
from ._probe import ActivationProfile
from ._registry import BuildRequest, Runner

__all__ = ["NcnnEngine", "NcnnForward", "ncnn_available"]

CHECKPOINTS = 16
_NCNN_ALLOCATION_FAILED = -100  # what ncnn's layers return when an allocator gives them no memory
# Its pools keep a bordered copy (1) and three Winograd F(4,3) transforms (3 x 36/16) per conv input shape.
BUFFERS_PER_CONV_INPUT = 1 + 3 * 36 / 16


def ncnn_available() -> bool:
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return False
    return True


class NcnnForward:
    """A loaded ncnn network; thread-safe (one extractor per call, the net is shared)."""

    def __init__(self, param: Path, binary: Path, *, threads: int | None = None, vulkan: bool = False) -> None:
        """``vulkan``: run on the first Vulkan GPU with fp16 storage (the realesrgan-ncnn-vulkan
        set-up; for benchmarks); raises ``RuntimeError`` where ncnn sees no Vulkan GPU."""
        import ncnn

        if vulkan and (not hasattr(ncnn, "get_gpu_count") or ncnn.get_gpu_count() == 0):
            raise RuntimeError("ncnn sees no Vulkan GPU")

        layers = parse_param(param.read_text())
        self.input_blob = next((layer.tops[0] for layer in layers if layer.type == "Input"), "data")
        last = layers[-1]
        downscaled = last.type == "Interp" and last.float_param(1, 1.0) < 1.0
        self.output_blob = last.bottoms[0] if downscaled else last.tops[0]
        # Blobs extracted one after another on the way to the output, with a cancel check between
        # them: a cancel then stops a forward within about 1/CHECKPOINTS of it (ncnn keeps each
        # computed blob in the extractor, so nothing is computed twice).
        convs = [layer.tops[0] for layer in layers if layer.type == "Convolution" and layer.tops[0] != self.output_blob]
        step = max(1, len(convs) // CHECKPOINTS)
        self._checkpoints = convs[step - 1 :: step][:CHECKPOINTS]
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = vulkan
        opt.use_fp16_packed = opt.use_fp16_storage = vulkan
        opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = False
        opt.use_winograd_convolution = True
        # F(4,3) only: the variant ncnn picks for these networks on x86 anyway, pinned so the
        # memory bound in core/engines/_memory.py (2.25x per transform) holds on every CPU (F(6,3) and
        # F(2,3) keep larger buffers: 74.5 KB per LR pixel of x4plus against 59 KB).
        opt.use_winograd23_convolution = opt.use_winograd63_convolution = False
        opt.use_winograd43_convolution = True
        opt.num_threads = threads or torch.get_num_threads()
        if net.load_param(str(param)) != 0 or net.load_model(str(binary)) != 0:
            raise ConversionError(f"ncnn could not load {param.name}.")
        self._net = net
        self._mat = ncnn.Mat
        # Our own pools (thread-safe; shared by all calls, so buffers stay warm between tiles as with
        # ncnn's default), so that after an allocation failure the cached buffers can be released
        # before the tiler retries with a smaller tile: ncnn's own pools cannot be cleared from Python.
        self._blobs, self._workspace = ncnn.PoolAllocator(), ncnn.PoolAllocator()

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` float32 CPU in ``[0, 1]`` -> ``(N, 3, sH, sW)``, clamped to ``[0, 1]``.

        ncnn runs one image at a time; a batch is run image by image.
        """
        if tensor.shape[0] != 1:
            return torch.cat([self(tensor[i : i + 1]) for i in range(tensor.shape[0])])
        data = np.ascontiguousarray(tensor[0].detach().cpu().numpy(), dtype=np.float32)
        try:
            status, result = self._extract(data)
        except MemoryError:
            status = _NCNN_ALLOCATION_FAILED
        if status == _NCNN_ALLOCATION_FAILED:  # the tiler halves the tile on out-of-memory
            self._retire_pools()
            raise torch.OutOfMemoryError(f"ncnn could not allocate memory for a {data.shape[1]}x{data.shape[2]} tile")
        if status != 0:
            raise RuntimeError(f"ncnn inference failed with status {status}")
        return result.clamp_(0, 1)[None]

    def _extract(self, data: np.ndarray) -> tuple[int, torch.Tensor]:
        extractor = self._net.create_extractor()
        extractor.set_blob_allocator(self._blobs)
        extractor.set_workspace_allocator(self._workspace)
        # ncnn.Mat wraps `data` without copying: `data` must stay alive until extract returns.
        extractor.input(self.input_blob, self._mat(data))
        for blob in self._checkpoints:
            check_cancelled()
            status = extractor.extract(blob, 1)[0]  # type 1: as computed (no unpacking copy)
            if status != 0:
                return status, torch.empty(0)
        status, out = extractor.extract(self.output_blob)
        result = torch.from_numpy(np.array(out, dtype=np.float32, copy=True)) if status == 0 else torch.empty(0)
        del extractor, out
        return status, result

    def release(self) -> None:
        """Free the buffers the pools keep for later calls (buffers in use stay)."""
        self._blobs.clear()
        self._workspace.clear()

    def _retire_pools(self) -> None:
        """After an allocation failure: free the pools' buffers and switch to new pools. ncnn's pool
        records the failed allocation as in use forever and prints "FATAL ERROR! pool allocator
        destroyed too early" when destroyed, so the emptied pools (a few hundred bytes each) are
        kept alive for the life of the process instead."""
        import ncnn

        self.release()
        for pool in (self._blobs, self._workspace):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(pool))
        self._blobs, self._workspace = ncnn.PoolAllocator(), ncnn.PoolAllocator()


def _files(info: ModelInfo) -> tuple[Path, Path] | None:
    """The ncnn files of ``info`` (the packaged ones of a catalogue model), if ncnn is installed."""
    spec = info.spec
    return ncnn_model_files(spec.ncnn) if spec is not None and spec.ncnn and ncnn_available() else None


class NcnnEngine:
    """ncnn on the CPU in fp32, for the models the ncnn package ships."""

    name = "ncnn"

    def version(self) -> str | None:
        try:
            import ncnn
        except ImportError:
            return None
        return str(ncnn.__version__)

    def unsupported(self, info: ModelInfo, choice: DeviceChoice) -> str | None:
        if _files(info) is None or choice.device != "cpu" or choice.precision != "fp32":
            return f"The ncnn engine is not available for {info.name} on {choice.label()}."
        return None

    def bytes_per_pixel(self, profile: ActivationProfile, choice: DeviceChoice) -> float | None:
        # on the CPU in fp32 only (unsupported elsewhere); its pools still hold the forward's buffers while
        # the result is converted
        return MARGIN * (4 * (profile.live_peak + BUFFERS_PER_CONV_INPUT * profile.conv_inputs) + edge_bytes(profile))

    def build(self, request: BuildRequest) -> Runner:
        files = _files(request.info)
        assert files is not None, "checked by unsupported()"
        return Runner(NcnnForward(*files, threads=torch.get_num_threads()))
