"""OpenVINO as a CPU inference engine behind the same call as a spandrel model.

Any spandrel network that OpenVINO's PyTorch frontend converts runs here, whether or not an
ncnn file exists for it. The converted model (OpenVINO IR, float32 weights) is cached in the
weights folder under ``openvino/``. Its name carries the weights' fingerprint and the OpenVINO
version, so new weights or a new OpenVINO convert again. OpenVINO's own compiled blobs are
cached beside it (``CACHE_DIR``), so a second start skips both the conversion and the compile.

Shapes: the IR has dynamic height and width, so one compiled model serves every tile shape
(the uniform tiles of one image share a shape anyway); measured on x4plus at 128 px, a fixed
shape is no faster (2.68 s both). Precision: ``f32`` is forced. On CPUs
with AMX or AVX512-BF16 OpenVINO would otherwise infer in bf16, about 50 dB against PyTorch
instead of 120+.

:class:`OpenVinoForward` takes and returns ``(N, C, H, W)`` float32 CPU tensors in ``[0, 1]``,
like a spandrel descriptor. It is thread-safe: one infer request per call, on a shared
compiled model. The request runs asynchronously and is polled every :data:`CANCEL_POLL_MS`, so
a cancel stops it inside a tile (OpenVINO stops between network nodes).

The same class drives Intel graphics (OpenVINO's ``GPU`` device, offered as ``intel-gpu`` by
:func:`core.resolve_device`) with an ``f16`` hint; no machine of ours has one, so that path is
checked only up to OpenVINO's device lookup (a clear error where there is no such GPU).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .._cancel import check_cancelled
from .._device import DeviceChoice, openvino_available
from ..errors import CancelledError, ConversionError, DeviceUnavailableError
from ..models import ModelInfo
from ._memory import edge_bytes
from ._probe import ActivationProfile
from ._registry import BuildRequest, Runner

__all__ = ["OpenVinoEngine", "OpenVinoForward"]

EXAMPLE_SIDE = 64  # the tracing input; the IR's height and width stay dynamic
CANCEL_POLL_MS = 100
# OpenVINO picks its kernels and memory layouts per CPU (AVX2, AVX-512, AMX): more room than MARGIN.
MEMORY_MARGIN = 1.25


_convert_lock = threading.Lock()  # two sessions loading one model convert it once


def _ir_path(cache_dir: Path, fingerprint: str) -> Path:
    import openvino

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", fingerprint)
    version = re.sub(r"[^A-Za-z0-9._-]+", "_", openvino.__version__.split("-")[0])
    return cache_dir / f"{safe}.ov{version}.xml"


class OpenVinoForward:
    """A network compiled by OpenVINO; ``load_seconds`` and ``converted`` say what the start cost."""

    def __init__(self, model: torch.nn.Module, channels: int, fingerprint: str, cache_dir: Path, *,
                 threads: int | None = None, device: str = "CPU", precision: str = "f32") -> None:
        """``device``: OpenVINO's device name (``CPU``, ``GPU``, ``GPU.1``); ``precision``: its inference
        precision hint, ``f32`` or ``f16`` (Intel GPUs; the IR keeps float32 weights either way)."""
        import openvino

        start = time.perf_counter()
        cache_dir.mkdir(parents=True, exist_ok=True)
        ir = _ir_path(cache_dir, fingerprint)
        core = openvino.Core()
        if device not in core.available_devices:
            raise DeviceUnavailableError(f"OpenVINO has no {device} device here (it sees "
                                         f"{', '.join(core.available_devices) or 'none'}).")
        with _convert_lock:
            self.converted = not (ir.is_file() and ir.with_suffix(".bin").is_file())
            if self.converted:
                self._convert(model, channels, ir)
        core.set_property({"CACHE_DIR": str(cache_dir / "compiled")})
        config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self._compiled = core.compile_model(str(ir), device, config)
        except RuntimeError as exc:
            raise ConversionError(f"OpenVINO could not compile {ir.name}: {exc}") from exc
        self.device = device
        self.load_seconds = time.perf_counter() - start

    @staticmethod
    def _convert(model: torch.nn.Module, channels: int, ir: Path) -> None:
        import openvino

        example = torch.rand(1, channels, EXAMPLE_SIDE, EXAMPLE_SIDE)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")  # the frontend traces
                converted = openvino.convert_model(model, example_input=example,
                                                   input=[openvino.PartialShape([-1, channels, -1, -1])])
        except Exception as exc:  # the frontend raises its own types for unsupported operations
            raise ConversionError(f"OpenVINO cannot convert this network: {exc}") from exc
        tmp = ir.with_name(f".{ir.stem}.{os.getpid()}.part.xml")
        openvino.save_model(converted, str(tmp), compress_to_fp16=False)  # float32 weights: the same output
        tmp.with_suffix(".bin").replace(ir.with_suffix(".bin"))
        tmp.replace(ir)  # the .xml last: a half-written pair is never taken for a cache entry

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        request = self._compiled.create_infer_request()
        data = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
        request.start_async({0: data})  # asynchronous, so that a cancel can stop it inside the tile
        while not request.wait_for(CANCEL_POLL_MS):
            try:
                check_cancelled(step=False)  # polled by time: not a fixed number per call
            except CancelledError:
                request.cancel()
                with contextlib.suppress(Exception):  # the cancelled request's wait raises; it has stopped
                    request.wait()
                raise
        out = request.get_output_tensor(0).data
        return torch.from_numpy(np.array(out, copy=True)).clamp_(0, 1)


class OpenVinoEngine:
    """OpenVINO on the CPU in fp32, or on an Intel GPU (fp16 or fp32), for any network its PyTorch
    frontend converts; the converted model is cached beside the weights."""

    name = "openvino"

    def version(self) -> str | None:
        if not openvino_available():
            return None
        import openvino

        return str(openvino.__version__)

    def unsupported(self, info: ModelInfo, choice: DeviceChoice) -> str | None:
        if not openvino_available():
            return ("The OpenVINO engine needs the openvino package: .venv/bin/pip install -r requirements.txt "
                    "(it is pinned there).")
        if not (choice.device == "cpu" and choice.precision == "fp32") and choice.openvino_device is None:
            return f"The OpenVINO engine runs on the CPU in fp32 (or on an Intel GPU), not on {choice.label()}."
        return None

    def bytes_per_pixel(self, profile: ActivationProfile, choice: DeviceChoice) -> float | None:
        if choice.device != "cpu":
            return None  # an Intel GPU's memory: not known to the studio (tiles by the device default)
        # as PyTorch, but its request keeps the output while the result is copied out and converted
        return MEMORY_MARGIN * (4 * (profile.live_peak + profile.widest_conv_input) + edge_bytes(profile))

    def build(self, request: BuildRequest) -> Runner:
        choice = request.choice
        forward = OpenVinoForward(request.descriptor.model, request.descriptor.input_channels, request.info.fingerprint,
                                  request.cache_dir / "openvino", device=choice.openvino_device or "CPU",
                                  precision="f16" if choice.precision == "fp16" else "f32",
                                  threads=torch.get_num_threads())
        return Runner(forward)
