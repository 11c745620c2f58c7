"""PyTorch as an engine: the spandrel network itself, eager or through ``torch.compile``.

It runs on every device PyTorch drives (CPU, CUDA, MPS) in every precision, and it is the
reference the other engines are measured against.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import torch

from .._cancel import check_cancelled
from .._device import DeviceChoice
from ._memory import MARGIN, edge_bytes
from ._probe import ActivationProfile
from ._registry import BuildRequest, Runner

if TYPE_CHECKING:
    from ..models import ModelInfo

__all__ = ["COMPILE_MODES", "TorchEngine"]

# torch.compile modes (opt-in): "reduce-overhead" adds CUDA graphs on CUDA.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


class TorchEngine:
    name = "torch"

    def version(self) -> str | None:
        return torch.__version__

    def unsupported(self, info: ModelInfo, choice: DeviceChoice) -> str | None:
        if choice.openvino_device is not None:
            return f"{choice.device} runs the network on OpenVINO only, not on PyTorch."
        return None

    def bytes_per_pixel(self, profile: ActivationProfile, choice: DeviceChoice) -> float | None:
        if choice.device != "cpu":
            return None  # CUDA: cuDNN's workspaces depend on the algorithms it picks; measured
        # oneDNN may reorder the widest convolution input into its blocked layout; the activations are
        # freed before the result is converted, so the edge buffers count only if they are larger
        itemsize = choice.dtype.itemsize
        return MARGIN * max(itemsize * (profile.live_peak + profile.widest_conv_input), edge_bytes(profile))

    def build(self, request: BuildRequest) -> Runner:
        mode = request.options.compile_mode
        if mode is not None and mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)} or None, got {mode!r}.")
        descriptor, device = request.descriptor, request.choice.device
        channels_last = request.options.channels_last
        if channels_last is None:  # NHWC: faster convolutions on the CPU, and tensor-core friendly on CUDA
            channels_last = device == "cpu" or device.startswith("cuda")
        if channels_last:
            descriptor.model.to(memory_format=torch.channels_last)
        if mode is None:
            if device == "cpu":
                _cancel_between_layers(descriptor.model)
            return Runner(_eager(descriptor, channels_last))
        return Runner(_compiled(descriptor, mode, channels_last), fixed_tiles=True, note=f"compiled, {mode}")


def _eager(descriptor, channels_last: bool):
    def forward(tensor: torch.Tensor) -> torch.Tensor:
        if channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return descriptor(tensor)

    return forward


def _compiled(descriptor, mode: str, channels_last: bool):
    compiled = torch.compile(descriptor.model, mode=mode)
    # Compiled graphs run on one thread of their own: CUDA graphs keep per-thread state and fail
    # when called from several threads (pytorch/pytorch#123177); calls queue up there.
    worker = ThreadPoolExecutor(1, thread_name_prefix="compiled-network")

    def run(tensor: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            # clamp out of place: a CUDA-graph output is overwritten by the next replay
            return compiled(tensor).clamp(0, 1)

    def forward(tensor: torch.Tensor) -> torch.Tensor:
        if channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        height, width = tensor.shape[-2:]
        if descriptor.size_requirements.check(width, height):
            return worker.submit(run, tensor).result()
        return descriptor(tensor)  # a shape the graph cannot take: eager, with spandrel's padding

    return forward


def _cancel_between_layers(model: torch.nn.Module) -> None:
    """Check for a cancel before every convolution of an eager CPU model (a few µs each), so a
    cancel stops a long tile within a fraction of it; once per model (the model may be shared)."""
    if getattr(model, "_studio_cancel_hooks", False):
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(lambda *_: check_cancelled())
    setattr(model, "_studio_cancel_hooks", True)  # noqa: B010  (an attribute torch's Module types do not know)
