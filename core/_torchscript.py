"""The tensors of a TorchScript archive, read without TorchScript.

``torch.jit.load`` runs the archive's code, so a crafted file runs whatever it likes. Some published
weights are TorchScript archives all the same (OpenAI's CLIP ``RN50.pt``). Such an archive is a zip
file: ``NAME/data.pkl`` pickles the module tree (objects of ``__torch__.*`` classes whose state holds
their parameters, buffers and submodules), and ``NAME/data/KEY`` holds each tensor's bytes. This module
unpickles ``data.pkl`` with an unpickler that builds nothing but plain stand-ins for modules, tensors from
those bytes, and a few containers: any other global (``os.system``, ``builtins.eval``...) is refused, and
the archive's ``code/`` is never read.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["is_torchscript", "torchscript_tensors"]

_STORAGES = {f"{name}Storage": dtype for name, dtype in (
    ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8), ("Byte", torch.uint8),
    ("Bool", torch.bool))}


class _Module:
    """A stand-in for a scripted module: keeps its state, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


def _plain_list(items: Any) -> list:
    return list(items)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _plain_list,
    ("torch.jit._pickle", "build_doublelist"): _plain_list,
    ("torch.jit._pickle", "build_boollist"): _plain_list,
    ("torch.jit._pickle", "build_tensorlist"): _plain_list,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes):
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (_Module,), {})
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a weights file has no use for")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:80]}")
        _, dtype, key, _, numel = pid
        raw = self.archive.read(f"{self.prefix}data/{key}")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) < numel * itemsize:
            raise pickle.UnpicklingError(f"tensor {key} holds {len(raw)} bytes, not {numel * itemsize}")
        return torch.frombuffer(bytearray(raw[: numel * itemsize]), dtype=dtype)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a zip archive with a ``code/`` folder beside its ``data.pkl`` (TorchScript)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/data.pkl") for n in names) and any("/code/" in n for n in names)


def _collect(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = node.state if isinstance(node, _Module) else node
    if not isinstance(state, dict):
        return
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, _Module):
            _collect(value, f"{prefix}{key}.", out)


def torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree, by dotted name (``visual.conv1.weight``), as
    ``state_dict`` names them (attribute tensors that are not buffers come too).

    Raises:
        ValueError: not a TorchScript archive, or one whose pickle names anything but modules and tensors.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data_pkl = next((n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
            if data_pkl is None:
                raise ValueError(f"{path} is not a TorchScript archive (no data.pkl).")
            prefix = data_pkl[: -len("data.pkl")]
            root = _Unpickler(archive, prefix, archive.read(data_pkl)).load()
    except (OSError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable TorchScript archive ({exc}).") from exc
    except (pickle.UnpicklingError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise ValueError(f"{path} was refused: {exc}; nothing in it was run.") from exc
    tensors: dict[str, torch.Tensor] = {}
    _collect(root, "", tensors)
    return tensors
