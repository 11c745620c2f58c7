"""Blur kernels of the Real-ESRGAN degradation model (pure numpy).

All kernels are square, odd-sized, ``float64``, and sum to 1. Coordinates: ``x`` runs
along columns, ``y`` along rows, both centred on the middle pixel; a rotation ``theta``
turns the ``x`` axis of the covariance anticlockwise (in ``(x, y)`` coordinates).

* Gaussian: ``exp(-1/2 d)``, with ``d = p^T S^-1 p`` the squared Mahalanobis distance.
* Generalised Gaussian (shape ``beta``): ``exp(-1/2 d^beta)``.
* Plateau (shape ``beta``): ``1 / (1 + d^beta)``.
* Sinc (circular low-pass, cut-off ``omega`` in radians per pixel): the ideal disc
  filter ``omega J1(omega r) / (2 pi r)``, centre value ``omega^2 / (4 pi)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import j1

__all__ = [
    "GAUSSIAN_TYPES",
    "KERNEL_TYPES",
    "KernelParams",
    "identity_kernel",
    "make_kernel",
    "sinc_kernel",
]

GAUSSIAN_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_TYPES = (*GAUSSIAN_TYPES, "sinc")
MAX_KERNEL = 21


@dataclass(frozen=True)
class KernelParams:
    """A fully specified kernel (what a sampler drew, or what a user pinned).

    Attributes:
        type: one of :data:`KERNEL_TYPES`.
        size: odd, 3..21.
        sigma_x / sigma_y: standard deviations in pixels (``sigma_y = sigma_x`` for
            isotropic types); ``theta`` the rotation in radians.
        beta: shape of generalised / plateau kernels (ignored otherwise).
        omega: sinc cut-off in radians per pixel (sinc only).
    """

    type: str
    size: int
    sigma_x: float = 1.0
    sigma_y: float = 1.0
    theta: float = 0.0
    beta: float = 1.0
    omega: float = np.pi / 2

    def __post_init__(self) -> None:
        if self.type not in KERNEL_TYPES:
            raise ValueError(f"Unknown kernel type {self.type!r}; use one of {', '.join(KERNEL_TYPES)}.")
        if self.size % 2 == 0 or not 3 <= self.size <= MAX_KERNEL:
            raise ValueError(f"Kernel size must be odd and in 3..{MAX_KERNEL}, got {self.size}.")
        if self.sigma_x <= 0 or self.sigma_y <= 0 or self.beta <= 0 or self.omega <= 0:
            raise ValueError("sigma, beta and omega must be positive.")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    half = size // 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    x, y = np.meshgrid(axis, axis)  # x varies along columns, y along rows
    return x, y


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Squared Mahalanobis distance of every kernel cell for the rotated covariance."""
    x, y = _grid(size)
    cos, sin = np.cos(theta), np.sin(theta)
    u = cos * x + sin * y  # coordinates in the rotated frame
    v = -sin * x + cos * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def sinc_kernel(size: int, omega: float) -> np.ndarray:
    """The 2-D sinc (circular low-pass) kernel of cut-off ``omega``, normalised to sum 1."""
    x, y = _grid(size)
    radius = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = omega * j1(omega * radius) / (2 * np.pi * radius)
    kernel[size // 2, size // 2] = omega**2 / (4 * np.pi)
    return kernel / kernel.sum()


def make_kernel(params: KernelParams) -> np.ndarray:
    """Build the kernel described by ``params`` (sums to 1)."""
    if params.type == "sinc":
        return sinc_kernel(params.size, params.omega)
    isotropic = params.type.endswith("iso") and not params.type.endswith("aniso")
    sigma_y = params.sigma_x if isotropic else params.sigma_y
    theta = 0.0 if isotropic else params.theta
    distance = _mahalanobis(params.size, params.sigma_x, sigma_y, theta)
    if params.type.startswith("generalized"):
        kernel = np.exp(-0.5 * distance**params.beta)
    elif params.type.startswith("plateau"):
        kernel = 1.0 / (1.0 + distance**params.beta)
    else:
        kernel = np.exp(-0.5 * distance)
    return kernel / kernel.sum()


def identity_kernel(size: int = MAX_KERNEL) -> np.ndarray:
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel
