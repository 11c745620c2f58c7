"""Device and precision: chosen here and nowhere else.

Rules: CUDA if present, else Apple MPS, else CPU. Precision ``auto`` means fp16 on
CUDA (and on an Intel GPU) when the model supports it, fp32 everywhere else; bf16 only on
request; never fp16 on the CPU (slow and inaccurate there).

Intel graphics are offered as ``intel-gpu`` (``intel-gpu:N``) where OpenVINO reports a
``GPU`` device: the network then runs in OpenVINO on that GPU, and PyTorch only handles
host tensors (float32, on the CPU). ``auto`` does not pick it: it has not been measured
against the CPU on any machine of ours (none has Intel graphics), so it is chosen by hand.

:func:`prepare_device` sets the backend flags (cuDNN autotuning on CUDA: tiles of one image
share one shape, so the tuned plan is reused), and :func:`device_memory` /
:func:`activation_bytes_per_pixel` tell the tiler how large a tile fits.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from .errors import DeviceUnavailableError

__all__ = ["INTEL_GPU", "PRECISIONS", "DeviceChoice", "DeviceName", "Precision", "activation_bytes_per_pixel",
           "available_devices", "device_memory", "host_memory", "intel_gpus", "openvino_available", "openvino_devices",
           "prepare_device", "resolve_device", "system_info"]

DeviceName = Literal["auto", "cpu", "cuda", "mps", "intel-gpu"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)  # the one list every front end offers

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceChoice:
    """A resolved device and precision.

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, or ``"intel-gpu"`` / ``"intel-gpu:1"``
            (OpenVINO's ``GPU`` devices).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (never ``"auto"``).
        reason: one line explaining the choice, for the UI.
    """

    device: str
    precision: str
    reason: str

    @property
    def openvino_device(self) -> str | None:
        """OpenVINO's name of the device (``"GPU"``, ``"GPU.1"``) where only OpenVINO can drive it, else ``None``."""
        if not self.device.startswith(INTEL_GPU):
            return None
        index = self.device.partition(":")[2]
        return f"GPU.{index}" if index else "GPU"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the tensors PyTorch handles: the precision's, except float32 where OpenVINO
        runs the network (it applies the precision itself)."""
        return torch.float32 if self.openvino_device else _DTYPES[self.precision]

    @property
    def torch_device(self) -> torch.device:
        """Where PyTorch's tensors live: the device itself, or the CPU where OpenVINO drives it."""
        return torch.device("cpu" if self.openvino_device else self.device)

    def label(self) -> str:
        return f"{self.device} · {self.precision}"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


INTEL_GPU = "intel-gpu"


def intel_gpus(openvino_devices: list[str]) -> list[str]:
    """Our names of OpenVINO's GPU devices: ``["CPU", "GPU.0", "GPU.1"]`` -> ``["intel-gpu", "intel-gpu:1"]``."""
    gpus = sorted(d for d in openvino_devices if d == "GPU" or d.startswith("GPU."))
    return [INTEL_GPU if d in ("GPU", "GPU.0") else f"{INTEL_GPU}:{d.split('.', 1)[1]}" for d in gpus]


def openvino_available() -> bool:
    """Whether the OpenVINO runtime is installed (it drives Intel GPUs, and is an engine on the CPU)."""
    return importlib.util.find_spec("openvino") is not None


def openvino_devices() -> list[str]:
    """OpenVINO's devices here (``CPU``, ``GPU`` for Intel graphics, …); empty without OpenVINO."""
    if not openvino_available():
        return []
    import openvino

    return list(openvino.Core().available_devices)


def _intel_gpus() -> list[str]:
    return intel_gpus(openvino_devices())


def available_devices() -> list[str]:
    """Devices usable on this machine, best first (always ends with ``"cpu"``)."""
    devices = [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return [*devices, *_intel_gpus(), "cpu"]


def resolve_device(
    device: str = "auto",
    precision: str = "auto",
    *,
    supports_half: bool = True,
    supports_bfloat16: bool = True,
) -> DeviceChoice:
    """Resolve a requested device and precision into a concrete :class:`DeviceChoice`.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``), ``mps`` or ``intel-gpu`` (``intel-gpu:N``).
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.
        supports_half / supports_bfloat16: what the model allows (spandrel tells).

    Raises:
        DeviceUnavailableError: the device is absent, or the precision is impossible
            there (fp16 on CPU, a half precision the model does not support).
    """
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
        where = f"auto: {device} is the fastest device here"
    else:
        where = f"{device} as requested"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "CUDA was requested but no CUDA GPU is visible to PyTorch; choose 'auto' or 'cpu'."
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"There is no GPU number {index} on this machine.")
    elif device == "mps":
        if not _mps_available():
            raise DeviceUnavailableError("Apple MPS was requested but is not available here.")
    elif device.startswith(INTEL_GPU):
        found = _intel_gpus()
        if device not in found:
            raise DeviceUnavailableError(
                f"{device} was requested but OpenVINO reports " + (f"only {', '.join(found)}" if found else
                                                                   "no Intel GPU") + " here; choose 'auto' or 'cpu'.")
        if precision == "bf16":
            raise DeviceUnavailableError("bf16 is not offered on an Intel GPU; use fp16 or fp32.")
    elif device != "cpu":
        raise DeviceUnavailableError(f"Unknown device {device!r}; use auto, cpu, cuda, mps or intel-gpu.")

    if precision == "auto":
        if (device.startswith("cuda") or device.startswith(INTEL_GPU)) and supports_half:
            return DeviceChoice(device, "fp16", f"{where}; fp16 (model supports half precision)")
        return DeviceChoice(device, "fp32", f"{where}; fp32")
    if precision not in _DTYPES:
        raise DeviceUnavailableError(f"Unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if precision == "fp16":
        if device == "cpu":
            raise DeviceUnavailableError("fp16 is not used on the CPU (slow and inaccurate); use fp32.")
        if not supports_half:
            raise DeviceUnavailableError("This model does not support fp16; use fp32 or auto.")
    if precision == "bf16":
        if not supports_bfloat16:
            raise DeviceUnavailableError("This model does not support bf16; use fp32 or auto.")
        if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            raise DeviceUnavailableError("This GPU does not support bf16; use fp16 or fp32.")
    return DeviceChoice(device, precision, f"{where}; {precision} as requested")


def prepare_device(choice: DeviceChoice) -> None:
    """Set the backend flags for inference on ``choice`` (process-wide, idempotent)."""
    if choice.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True


def host_memory() -> tuple[int, int] | None:
    """``(available, total)`` bytes of RAM for this process: the smaller of the system's and the
    container's (cgroup v2 ``memory.max``); ``None`` where neither can be read."""
    try:
        fields = dict(re.findall(r"^(MemTotal|MemAvailable):\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M))
        available, total = int(fields["MemAvailable"]) * 1024, int(fields["MemTotal"]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            available, total = os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available, total = min(available, int(limit) - used), min(total, int(limit))
    except (OSError, ValueError):
        pass
    return max(available, 0), total


def device_memory(device: str) -> tuple[int, int] | None:
    """``(free, total)`` bytes for tiles on ``device``: on CUDA the GPU's (memory PyTorch caches
    but does not use counts as free), on the CPU the RAM's (:func:`host_memory`); ``None``
    where unknown (MPS)."""
    if device == "cpu":
        return host_memory()
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    free, total = torch.cuda.mem_get_info(index)
    cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return free + max(cached, 0), total


def activation_bytes_per_pixel(
    forward, channels: int, device: str, dtype: torch.dtype, sides: tuple[int, int] = (64, 128)
) -> float | None:
    """Device memory one more input pixel costs during ``forward``, measured on CUDA.

    Runs ``forward`` on two square inputs and takes the slope of peak allocated memory
    against pixel count (weights and other fixed costs cancel). ``None`` off CUDA.
    """
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    peaks = []
    for side in sides:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            out = forward(torch.zeros(1, channels, side, side, device=device, dtype=dtype))
        torch.cuda.synchronize(device)
        del out
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    small, large = sides[0] ** 2, sides[1] ** 2
    # the slope, but never below a quarter of the mean cost at the larger size (a noisy slope)
    return max((peaks[1] - peaks[0]) / (large - small), peaks[1] / large / 4, 1.0)


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _openvino_device_name(device: str) -> str:
    import openvino

    try:
        return str(openvino.Core().get_property(device, "FULL_DEVICE_NAME"))
    except RuntimeError as exc:
        return f"unreadable ({exc})"


def system_info() -> dict[str, object]:
    """Versions, devices and memory, for the Models & System page and bug reports."""
    import platform

    info: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda (torch build)": torch.version.cuda or "none",
        "cuda available": torch.cuda.is_available(),
        "mps available": _mps_available(),
        "cpu threads (torch)": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "process memory (MB)": round(_rss_mb() or 0.0, 1),
    }
    info["openvino devices"] = ", ".join(openvino_devices()) or "none (openvino not installed)"
    for name in _intel_gpus():  # offered as a device (chosen by hand)
        info[name] = _openvino_device_name(DeviceChoice(name, "fp32", "").openvino_device or "GPU")
    ram = host_memory()
    if ram is not None:
        info["ram available / total (GB)"] = f"{ram[0] / 2**30:.1f} / {ram[1] / 2**30:.1f}"
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        info[f"gpu {index}"] = torch.cuda.get_device_name(index)
        info[f"gpu {index} memory (free / total GB)"] = f"{free / 2**30:.1f} / {total / 2**30:.1f}"
        info[f"gpu {index} allocated by torch (GB)"] = round(torch.cuda.memory_allocated(index) / 2**30, 2)
    return info
