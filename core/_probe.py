"""Measuring a network with forward hooks on a small probe input: FLOPs and activation widths.

Both count per input (LR) pixel, so they scale to any image or tile size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["conv_flops_per_pixel", "widest_activation"]

SIDE = 16


def _probe(model: torch.nn.Module, modules: list[torch.nn.Module], hook: Callable, channels: int) -> None:
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        parameter = next(model.parameters())
        with torch.inference_mode():
            model(torch.zeros(1, channels, SIDE, SIDE, dtype=parameter.dtype, device=parameter.device))
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


def widest_activation(model: torch.nn.Module, channels: int = 3) -> float:
    """The most elements per LR pixel that any layer outputs."""
    widest = 0.0

    def hook(module: torch.nn.Module, inputs: object, output: object) -> None:
        nonlocal widest
        if isinstance(output, torch.Tensor):
            widest = max(widest, output.numel() / (SIDE * SIDE))

    _probe(model, [m for m in model.modules() if not list(m.children())], hook, channels)
    return widest
