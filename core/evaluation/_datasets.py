"""Evaluation datasets: bundled samples, HR folders, paired HR/LR folders, RealSR-style paired names,
LR-only real-world sets, and DIV2K.

A :class:`Dataset` is a list of :class:`DatasetItem` (a name, an HR image reference and,
when the dataset ships one, an LR reference; an LR-only set, such as RealSRSet or RealLQ250, has
no HR at all and is scored with no-reference metrics only). References point into a folder or into a
zip file, so DIV2K works from its official zips without extracting them, or to an object (``s3://…``):
a dataset at a URI is listed and paired once, where it is opened, and each image is read where it is
scored (a cluster's worker). When no LR is
given, it is made on the fly with MATLAB-style bicubic (``imresize(HR, 1/scale)``, rounded
to the HR's bit depth) after cropping the HR to a multiple of the scale, as DIV2K did.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import cast

import numpy as np

from .._io import IMAGE_SUFFIXES, ImageLimits, decode_image
from .._resize import crop_to_scale, imresize
from .._samples import SAMPLES_DIR
from .._uri import is_uri, list_tree, read_uri_bytes
from ..degradation import DegradationConfig, config_to_dict, make_pair
from ..errors import DatasetError, StudioError
from ._fetch import ZIP_FAULTS

__all__ = ["Dataset", "DatasetItem", "ImageRef", "open_dataset"]


@dataclass(frozen=True)
class ImageRef:
    """An image in a folder (``member`` is ``None``), inside a zip file, or at a URI (``path`` is the URI, and
    ``version`` its size and modification time when it was listed)."""

    path: Path | str
    member: str | None = None
    version: str = ""

    def read_bytes(self, max_bytes: int = ImageLimits.max_file_bytes) -> bytes:
        """The file's bytes, refused over ``max_bytes`` before they are read.

        A zip member's declared size is checked first and the member is then streamed with
        that cap, so a small archive cannot inflate into gigabytes of memory.

        Raises:
            DatasetError: the file is too large, unreadable, or a corrupt zip member.
        """
        if isinstance(self.path, str):
            try:
                return read_uri_bytes(self.path, max_bytes)
            except StudioError as exc:
                raise DatasetError(str(exc)) from exc
        try:
            if self.member is None:
                size = self.path.stat().st_size
                if size > max_bytes:
                    raise DatasetError(f"{self}: {size} bytes; the limit is {max_bytes}.")
                return self.path.read_bytes()
            with zipfile.ZipFile(self.path) as archive:
                info = archive.getinfo(self.member)
                if info.file_size > max_bytes:
                    raise DatasetError(f"{self}: declares {info.file_size} bytes; the limit is {max_bytes}.")
                with archive.open(info) as member:
                    data = member.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise DatasetError(f"{self}: inflates beyond {max_bytes} bytes.")
                return data
        except KeyError as exc:
            raise DatasetError(f"{self}: no such member in the zip file.") from exc
        except ZIP_FAULTS as exc:  # bad CRC, truncated or not a zip, unreadable file
            raise DatasetError(f"{self}: cannot be read ({exc}).") from exc

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def identity(self) -> str:
        """Where the image is and which version of the file (size, modification time), without reading it:
        a finished result of this image can be found again before the image is read."""
        if isinstance(self.path, str):
            return f"{self.path}||{self.version}"
        try:
            stat = self.path.stat()
            version = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            version = "missing"
        return f"{self.path.resolve()}|{self.member or ''}|{version}"


@dataclass(frozen=True)
class DatasetItem:
    """An image of a dataset: its HR (``None`` in an LR-only set) and its LR (``None``: made from the HR)."""

    name: str
    hr: ImageRef | None
    lr: ImageRef | None = None


@dataclass(frozen=True)
class Dataset:
    """A named list of items at one scale; ``lr_source`` says where LR images come from."""

    name: str
    scale: int
    items: tuple[DatasetItem, ...]
    lr_source: str
    degradation: DegradationConfig | None = None
    seed: int = 0

    def __len__(self) -> int:
        return len(self.items)

    @property
    def lr_only(self) -> bool:
        """No ground truth: outputs can only be scored with no-reference metrics."""
        return any(item.hr is None for item in self.items)

    def item_key(self, item: DatasetItem) -> str:
        """Identifies the ``(lr, hr)`` pair :meth:`load` gives for ``item`` without loading it (files' versions,
        scale, how LR is made)."""
        degradation = config_to_dict(self.degradation) if self.degradation is not None else None
        return json.dumps({"hr": item.hr.identity() if item.hr else None, "lr": item.lr.identity() if item.lr else None,
                           "scale": self.scale, "lr_source": self.lr_source, "degradation": degradation,
                           "seed": self.seed}, sort_keys=True)

    def load(self, item: DatasetItem, limits: ImageLimits | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode ``(lr, hr)`` for ``item``; HR is cropped to a multiple of the scale (``None`` in an LR-only set).

        Raises:
            DatasetError: the LR file's size is not HR / scale, or the HR image is smaller than the scale.
        """
        limits = limits or ImageLimits()
        if item.hr is None:
            assert item.lr is not None  # an item has one image at least
            return decode_image(item.lr.read_bytes(limits.max_file_bytes), limits), None
        hr = decode_image(item.hr.read_bytes(limits.max_file_bytes), limits)
        if min(hr.shape[:2]) < self.scale:
            raise DatasetError(f"{item.name}: the HR image is {hr.shape[1]}x{hr.shape[0]}, smaller than the scale "
                               f"(x{self.scale}) on a side: it has no LR image.")
        hr = crop_to_scale(hr, self.scale)
        height, width = hr.shape[:2]
        if item.lr is None:
            if self.degradation is not None:  # one reproducible draw per image
                seed = self.seed + zlib.crc32(item.name.encode())
                return make_pair(hr, self.degradation, seed)
            return imresize(hr, 1 / self.scale), hr
        lr = decode_image(item.lr.read_bytes(limits.max_file_bytes), limits)
        if lr.shape[:2] != (height // self.scale, width // self.scale):
            raise DatasetError(
                f"{item.name}: LR is {lr.shape[1]}x{lr.shape[0]}, expected "
                f"{width // self.scale}x{height // self.scale} for x{self.scale}."
            )
        return lr, hr


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _zip_images(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return sorted(n for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES)
    except ZIP_FAULTS as exc:
        raise DatasetError(f"{path.name} is not a readable zip file ({exc}).") from exc


def _lr_stem(stem: str, scale: int) -> str:
    """The name an LR file pairs by: ``0801x4`` (DIV2K), ``Canon_001_LR4`` (RealSR), ``DSC_1454_x4`` (DRealSR)
    -> ``0801``, ``Canon_001``, ``DSC_1454``; other stems unchanged."""
    return re.sub(rf"(_LR{scale}|_?x{scale})$", "", stem, flags=re.IGNORECASE)


def _hr_stem(stem: str) -> str:
    """The name an HR file pairs by: ``Canon_001_HR`` (RealSR), ``DSC_1454_x1`` (DRealSR) -> ``Canon_001``,
    ``DSC_1454``; other stems unchanged."""
    return re.sub(r"(_HR|_x1)$", "", stem, flags=re.IGNORECASE)


_REALSR_NAME = re.compile(r"^(?P<name>.+)_(?:HR|LR(?P<scale>\d+))$", re.IGNORECASE)


def _realsr(entries: list[tuple[str, ImageRef]], scale: int, where: str) -> tuple[DatasetItem, ...] | None:
    """The pairs of a RealSR-style folder (``NAME_HR.png`` next to ``NAME_LR2.png`` .. ``NAME_LR4.png``), or
    ``None`` where the folder is not named that way."""
    named = [(_REALSR_NAME.match(Path(relative).stem), relative, ref) for relative, ref in entries]
    matches = [(m, relative, ref) for m, relative, ref in named if m is not None]
    if not matches or len(matches) < len(named) or not any(m["scale"] for m, _, _ in matches):
        return None
    hr = _by_stem([(relative, ref) for m, relative, ref in matches if not m["scale"]], where, hr=True)
    lr = _by_stem([(relative, ref) for m, relative, ref in matches if m["scale"] == str(scale)], where, scale)
    if not lr:
        found = sorted({int(m["scale"]) for m, _, _ in matches if m["scale"]})
        raise DatasetError(f"{where} holds RealSR-style pairs (NAME_HR / NAME_LRn) for x{', x'.join(map(str, found))},"
                           f" not for x{scale}: choose one of those scales.")
    return _pair(hr, lr, where)


def _named(entries: list[tuple[str, ImageRef]]) -> dict[str, ImageRef]:
    """Items keyed by file stem, or by relative path where stems repeat (``a/img.png``, ``b/img.png``).

    Two images never share a name, so none is dropped from a dataset or its results.
    """
    stems = Counter(Path(relative).stem for relative, _ in entries)
    return {(Path(relative).stem if stems[Path(relative).stem] == 1 else relative): ref for relative, ref in entries}


def _by_stem(entries: list[tuple[str, ImageRef]], where: str, scale: int | None = None, *,
             hr: bool = False) -> dict[str, ImageRef]:
    """Items keyed by stem to pair HR with LR: LR (``scale`` given) without its ``x4`` / ``_LR4`` suffix, HR
    (``hr``) without its ``_HR`` / ``_x1`` suffix; repeated stems are refused."""
    keyed: dict[str, ImageRef] = {}
    for relative, ref in entries:
        stem = Path(relative).stem
        stem = _lr_stem(stem, scale) if scale is not None else _hr_stem(stem) if hr else stem
        if stem in keyed:
            raise DatasetError(f"Two images in {where} pair as {stem!r} ({keyed[stem]} and {ref}): "
                               "HR and LR are paired by name, so each name must be unique.")
        keyed[stem] = ref
    return keyed


def _zip_entries(path: Path) -> list[tuple[str, ImageRef]]:
    return [(member, ImageRef(path, member)) for member in _zip_images(path)]


def _pair(hr_refs: dict[str, ImageRef], lr_refs: dict[str, ImageRef], where: str) -> tuple[DatasetItem, ...]:
    """Each HR with the LR of its name, or of its name without an ``_HR`` / ``_x1`` suffix (DRealSR's
    ``DSC_1454_x1`` pairs with ``DSC_1454_x4``); the item takes the name that paired."""
    items, missing = [], []
    for stem in sorted(hr_refs):
        name = next((key for key in (stem, _hr_stem(stem)) if key in lr_refs), None)
        if name is None:
            missing.append(stem)
        else:
            items.append(DatasetItem(name, hr_refs[stem], lr_refs[name]))
    if missing:
        raise DatasetError(f"{len(missing)} HR images have no LR partner in {where} (e.g. {missing[0]}).")
    return tuple(sorted(items, key=lambda item: item.name))


class _Root:
    """A dataset's folder: here (as this process sees it, absolute: a Ray worker elsewhere reads the same
    file), or at a URI (``s3://bucket/DIV2K``), whose whole tree is listed once, here."""

    def __init__(self, source: str | Path) -> None:
        self.uri = str(source).rstrip("/") if is_uri(source) else None
        self.path = Path(source).expanduser().absolute() if self.uri is None else None
        self.tree: list[tuple[str, int, int]] = []
        if self.uri is not None:
            try:
                self.tree = list_tree(self.uri)
            except StudioError as exc:
                raise DatasetError(str(exc)) from exc
        self.name = self.uri.rsplit("/", 1)[-1] if self.uri is not None else cast(Path, self.path).name

    def __str__(self) -> str:
        return self.uri if self.uri is not None else str(self.path)

    def images(self, sub: str = "") -> list[tuple[str, ImageRef]] | None:
        """The images directly in ``sub`` (a folder below the root; ``""``: the root), sorted; ``None`` where
        there is no such folder."""
        if self.path is not None:
            folder = self.path / sub if sub else self.path
            return [(p.name, ImageRef(p)) for p in _images_in(folder)] if folder.is_dir() else None
        prefix = f"{sub}/" if sub else ""
        inside = [(relative[len(prefix):], size, mtime) for relative, size, mtime in self.tree
                  if relative.startswith(prefix)]
        if sub and not inside:
            return None
        return sorted((name, ImageRef(f"{self.uri}/{prefix}{name}", version=f"{size}:{mtime}"))
                      for name, size, mtime in inside
                      if "/" not in name and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES)

    def zip_images(self, name: str) -> list[tuple[str, ImageRef]] | None:
        """The images in the zip file ``name`` at the root; ``None`` where there is none."""
        if self.path is not None:
            return _zip_entries(self.path / name) if (self.path / name).is_file() else None
        if any(relative == name for relative, _, _ in self.tree):
            raise DatasetError(f"{self.uri}/{name}: a zip in an object store is not read image by image; extract it "
                               "there first (its folder beside it), or copy it to a folder here.")
        return None


def _div2k(root: _Root, scale: int, split: str) -> Dataset | None:
    hr_name, lr_name = f"DIV2K_{split}_HR", f"DIV2K_{split}_LR_bicubic_X{scale}.zip"
    hr, where = root.images(hr_name), hr_name
    if hr is None:
        hr, where = root.zip_images(f"{hr_name}.zip"), f"{hr_name}.zip"
    if hr is None:
        return None
    hr_refs = _by_stem(hr, where)
    lr_dir = f"DIV2K_{split}_LR_bicubic/X{scale}"
    lr, where, source = root.images(lr_dir), lr_dir, f"DIV2K bicubic X{scale} (folder)"
    if lr is None:
        lr, where, source = root.zip_images(lr_name), lr_name, f"DIV2K bicubic X{scale} (zip)"
    if lr is None:
        raise DatasetError(
            f"DIV2K {split} HR found in {root} but no LR for x{scale}: add {lr_name} or its extracted folder, or "
            f"download it with `realesrgan-studio div2k --dest {root}`."
        )
    return Dataset(f"DIV2K {split}", scale, _pair(hr_refs, _by_stem(lr, where, scale), str(root)), source)


def open_dataset(
    source: str | Path,
    scale: int = 4,
    *,
    lr_dir: str | Path | None = None,
    degradation: DegradationConfig | None = None,
    seed: int = 0,
    lr_only: bool = False,
) -> Dataset:
    """Open a dataset.

    Args:
        source: ``"samples"`` (the bundled images), a DIV2K root (folders or official zips,
            validation split preferred), a RealSR-style folder (``NAME_HR.png`` next to
            ``NAME_LR4.png``, read as pairs at ``scale``), or a folder of HR images.
        scale: 2, 3 or 4 (any integer >= 1 for folders).
        lr_dir: a folder of LR images paired with ``source`` by file stem (``0801x4`` pairs
            with ``0801``, ``DSC_1454_x4`` with ``DSC_1454_x1``, ``X_LR4`` with ``X_HR``);
            without it LR images are made by MATLAB bicubic, or by
        degradation: a degradation configuration (its scale must equal ``scale``), one
            seeded draw per image (``seed`` + a hash of the image name).
        lr_only: ``source`` holds real-world LR images with no ground truth (RealSRSet,
            RealLQ250): methods upscale them by ``scale`` and only no-reference metrics apply.

    Raises:
        DatasetError: no images, unpaired images, or a path that does not exist.
    """
    if scale < 1:
        raise DatasetError("scale must be >= 1.")
    if lr_only and (degradation is not None or lr_dir is not None):
        raise DatasetError("An LR-only set has no HR to degrade or to pair with an LR folder.")
    if degradation is not None and degradation.scale != scale:
        raise DatasetError(f"The degradation is x{degradation.scale} but the dataset scale is x{scale}.")
    on_the_fly = (f"degradation '{degradation.name}' (seed {seed})" if degradation is not None
                  else "MATLAB bicubic (on the fly)")
    if str(source) == "samples":
        refs = tuple(DatasetItem(name, ref) for name, ref in _named(_Root(SAMPLES_DIR).images() or []).items())
        return Dataset("samples", scale, refs, on_the_fly, degradation, seed)
    root = _Root(source)
    if root.path is not None and not root.path.exists():
        raise DatasetError(f"No such dataset folder: {root}.")
    if root.uri is not None or (root.path is not None and root.path.is_dir()):
        for split in ("valid", "train"):
            found = _div2k(root, scale, split)
            if found is not None:
                return found
    if root.path is not None and root.path.is_file():
        entries = _zip_entries(root.path) if root.path.suffix.lower() == ".zip" else []
    else:
        entries = root.images() or []
    if not entries:
        raise DatasetError(f"No images found in {root}.")
    if lr_only:
        items = tuple(DatasetItem(name, None, ref) for name, ref in sorted(_named(entries).items()))
        return Dataset(root.name, scale, items, "real-world LR (no ground truth)")
    if lr_dir is not None:
        lr_entries = _Root(lr_dir).images()
        if lr_entries is None:
            raise DatasetError(f"No such LR folder: {lr_dir}.")
        lr_refs = _by_stem(lr_entries, str(lr_dir), scale)
        return Dataset(root.name, scale, _pair(_by_stem(entries, str(root)), lr_refs, str(lr_dir)),
                       f"paired LR folder {lr_dir}")
    if degradation is None:
        pairs = _realsr(entries, scale, str(root))
        if pairs is not None:
            return Dataset(root.name, scale, pairs, f"RealSR-style pairs (NAME_LR{scale})")
    items = tuple(DatasetItem(name, ref) for name, ref in sorted(_named(entries).items()))
    return Dataset(root.name, scale, items, on_the_fly, degradation, seed)
