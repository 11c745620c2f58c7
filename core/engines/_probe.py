"""Measuring a network with hooks on a small probe input: FLOPs and activation memory.

Both count per input (LR) pixel, so they scale to any image or tile size: the networks
are fully convolutional, so every activation's size is proportional to the input's pixels.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["ActivationProfile", "activation_profile", "conv_flops_per_pixel"]

SIDE = 16


def _probe(model: torch.nn.Module, modules: list[torch.nn.Module], hook: Callable, channels: int,
           mode: TorchDispatchMode | None = None) -> None:
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        parameter = next(model.parameters())
        probe = torch.zeros(1, channels, SIDE, SIDE, dtype=parameter.dtype, device=parameter.device)
        with torch.inference_mode(), mode or contextlib.nullcontext():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()


def conv_flops_per_pixel(model: torch.nn.Module, scale: int, channels: int = 3) -> float:
    """Convolution FLOPs (2 per multiply-add) per LR pixel."""
    total = 0.0

    def hook(module: torch.nn.Conv2d, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += 2.0 * output.numel() * (module.in_channels // module.groups) * kernel

    _probe(model, [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)], hook, channels)
    return total / (SIDE * SIDE)


@dataclass(frozen=True)
class ActivationProfile:
    """What drives a network's activation memory, in elements per LR pixel.

    Attributes:
        live_peak: the most activation elements alive at once during one forward (every
            tensor a layer made that is still referenced: residual inputs, concatenations,
            the layer's input and output), traced on the tensors' storages.
        conv_inputs: the sum, over the distinct input shapes (channels, resolution) of the
            network's convolutions, of one such input: what an engine that keeps per-shape
            buffers (padded copies, Winograd transforms) holds once the forward has run.
        widest_conv_input: the largest input of any one convolution.
        output: the network's output.
    """

    live_peak: float
    conv_inputs: float
    widest_conv_input: float
    output: float


class _LiveStorages(TorchDispatchMode):
    """Counts the bytes of tensor storages alive after each operation (views share one)."""

    def __init__(self) -> None:
        super().__init__()
        self._refs: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if key not in self._refs:
                    self._refs[key] = 0
                    self.live += nbytes
                self._refs[key] += 1
                weakref.finalize(tensor, self._release, key, nbytes)
        self.peak = max(self.peak, self.live)  # the op's inputs are still referenced here
        return out


def activation_profile(model: torch.nn.Module, channels: int = 3) -> ActivationProfile:
    """Trace one probe forward of ``model`` (on its device and dtype) and profile its activations."""
    shapes: set[tuple[int, ...]] = set()
    output = 0.0

    def hook(module: torch.nn.Module, inputs: tuple, out: object) -> None:
        first = inputs[0]
        if isinstance(first, torch.Tensor):
            shapes.add(tuple(first.shape[1:]))

    def output_hook(module: torch.nn.Module, inputs: object, out: object) -> None:
        nonlocal output
        if isinstance(out, torch.Tensor):
            output = out.numel() / out.shape[0]

    handle = model.register_forward_hook(output_hook)
    live = _LiveStorages()
    try:
        _probe(model, [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)], hook, channels, live)
    finally:
        handle.remove()
    pixels = SIDE * SIDE
    itemsize = next(model.parameters()).element_size()
    sizes = [c * h * w / pixels for c, h, w in shapes]
    return ActivationProfile(
        live_peak=live.peak / itemsize / pixels,
        conv_inputs=sum(sizes),
        widest_conv_input=max(sizes, default=0.0),
        output=output / pixels,
    )
