"""Methods whose outputs were made elsewhere: a folder of images (Upscayl's, chaiNNer's, a commercial tool's, a
paper's released results) or one image, named by the user (``upscayl=path/to/folder``).

Such a method joins everything a model's outputs join (the compare grid and its maps, the metrics, ``evaluate``
and its store, paper tables). Its files are matched to the inputs by name: a file whose stem is the input's name
(or its LR file's stem), or that name followed by a separator and anything (``0801_out.png``,
``0801-upscayl-4x.png``, ``0801.x4.png``). Where no file matches by name and the counts agree, they are matched by
order (natural order of the file names against the inputs' order), and the match says so. An output must be the
size the inputs are scored at (the HR's, or the scale times the LR's); a stored score of it is keyed by the
output file's digest, so a file made again is scored again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import IMAGE_SUFFIXES, ImageLimits, read_image
from ..errors import DatasetError, SettingsError, StudioError
from ..models._digest import file_digest

__all__ = ["OutsideMethod", "OutsideOutputs", "dataset_stems", "fit_to_region", "match_outputs", "outside_name",
           "split_methods"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_SEPARATORS = "_-. "
_RESERVED = ("bicubic", "bicubic-opencv", "lanczos", "hr")  # BASELINES and HR_METHOD (not imported: no cycle)
# an outside output may be as large as any upscale the studio itself makes
_LIMITS = ImageLimits(max_input_pixels=ImageLimits().max_output_pixels)


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass(frozen=True)
class OutsideMethod:
    """A method named ``name`` whose outputs are the images in the folder ``path`` (or the one image ``path``)."""

    name: str
    path: Path

    @classmethod
    def parse(cls, spec: str) -> OutsideMethod | None:
        """``"name=path"`` as a method of outputs made elsewhere; ``None`` for any other method name.

        Raises:
            SettingsError: an unusable name (reserved, or not letters, digits and ``._+-``), or no such path.
        """
        if "=" not in spec:
            return None
        name, _, where = (part.strip() for part in spec.partition("="))
        if not _NAME.fullmatch(name) or name in _RESERVED:
            raise SettingsError(f"{spec!r}: name a folder of outputs with letters, digits and ._+- "
                                f"(up to 64, not one of {', '.join(_RESERVED)}), as in upscayl=path/to/folder.")
        path = Path(where).expanduser()
        if not where or not path.exists():
            raise SettingsError(f"{name}: no folder or image at {where or '(empty path)'}.")
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SettingsError(f"{name}: {where} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return cls(name, path.absolute())  # as the driver sees it: a worker started elsewhere reads the same file

    def files(self) -> list[Path]:
        """The images of the folder (hidden files left out), in natural order of their names; or the one image."""
        if self.path.is_file():
            return [self.path]
        found = [p for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")
                 and p.suffix.lower() in IMAGE_SUFFIXES]
        return sorted(found, key=lambda p: _natural(p.name))


def split_methods(specs: Sequence[str]) -> tuple[list[str], dict[str, OutsideMethod]]:
    """The method names of ``specs`` (each ``name=path`` given by its name), and the outside methods by name.

    Raises:
        SettingsError: an unusable outside method (see :meth:`OutsideMethod.parse`), or a name given twice.
    """
    names: list[str] = []
    outside: dict[str, OutsideMethod] = {}
    for spec in specs:
        method = OutsideMethod.parse(spec)
        name = method.name if method is not None else spec
        if method is not None and (name in outside or name in names):
            raise SettingsError(f"{name} names two methods; give each folder of outputs a name of its own.")
        if method is not None:
            outside[name] = method
        names.append(name)
    return list(dict.fromkeys(names)), outside


def _candidates(file: Path, stems: Mapping[str, Sequence[str]]) -> list[tuple[int, int, str]]:
    """The items ``file`` may be the output of: (exact match first, the longest name first, item)."""
    stem = file.stem
    found = []
    for item, names in stems.items():
        for name in names:
            if stem == name:
                found.append((0, -len(name), item))
            elif name and stem.startswith(name) and stem[len(name)] in _SEPARATORS:
                found.append((1, -len(name), item))
    return sorted(found)


@dataclass(frozen=True)
class OutsideOutputs:
    """An outside method's output file for each input (by the input's name), and how they were matched."""

    method: str
    root: Path
    files: Mapping[str, Path]
    by_order: bool = False
    unmatched: tuple[str, ...] = ()  # inputs with no file
    ambiguous: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # input -> the files that all match it

    def note(self) -> str:
        """One line on how the files were matched, for the CLI and the pages; empty where all matched by name."""
        parts = []
        if self.by_order:
            parts.append(f"{len(self.files)} files matched to the inputs by order (their names match none)")
        if self.unmatched:
            shown = ", ".join(self.unmatched[:5]) + (" …" if len(self.unmatched) > 5 else "")
            parts.append(f"no output for {len(self.unmatched)} input(s): {shown}")
        for item, names in list(self.ambiguous.items())[:3]:
            parts.append(f"{item} matches {', '.join(names)}: rename or remove all but one")
        return f"{self.method} ({self.root}): " + "; ".join(parts) if parts else ""

    def digest(self, item: str) -> str:
        """The SHA-256 of ``item``'s output file (the part of a stored score's key that says which output it is);
        empty where it has none."""
        path = self.files.get(item)
        try:
            return file_digest(path) if path is not None else ""
        except OSError:
            return ""

    def size(self, item: str) -> tuple[int, int] | None:
        """``(height, width)`` of ``item``'s output; ``None`` where it has none or it cannot be read (reading it
        says why)."""
        path = self.files.get(item)
        try:
            return read_image(path, _LIMITS).shape[:2] if path is not None else None
        except StudioError:
            return None

    def read(self, item: str, size: tuple[int, int], channels: int | None) -> np.ndarray:
        """``item``'s output, checked to be ``size = (height, width)`` and given ``channels`` (an opaque alpha
        dropped, a grey image written as RGB made grey again; ``None``: as it is).

        Raises:
            StudioError: no file for ``item``, an unreadable file, or one of another size or colour.
        """
        path = self.files.get(item)
        if path is None:
            why = ("several files match it: " + ", ".join(self.ambiguous[item])) if item in self.ambiguous else \
                f"no file named after it in {self.root}"
            raise DatasetError(f"{self.method} has no output for {item}: {why}.")
        try:
            image = read_image(path, _LIMITS)
        except StudioError as exc:
            raise DatasetError(f"{self.method}'s {path.name}: {exc}") from exc
        height, width = image.shape[:2]
        if (height, width) != tuple(size):
            ratio = f"{height / size[0]:.3g}x of the size expected" if size[0] else ""
            raise DatasetError(f"{self.method}'s {path.name} is {width}x{height}; it is compared at "
                               f"{size[1]}x{size[0]} ({ratio}): was it made at another scale, or cropped?")
        return image if channels is None else _conform(image, channels, f"{self.method}'s {path.name}")


def _conform(image: np.ndarray, channels: int, what: str) -> np.ndarray:
    have = image.shape[2]
    if have == channels:
        return image
    top = np.iinfo(image.dtype).max
    if have in (2, 4) and not np.all(image[..., -1] == top):
        raise DatasetError(f"{what} has transparency; its input has none.")
    colour = image[..., :3] if have >= 3 else image[..., :1]
    if channels == 3 and colour.shape[2] == 3:
        return np.ascontiguousarray(colour)
    if channels == 1 and colour.shape[2] == 3:
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise DatasetError(f"{what} is in colour; its input is grey.")
        return np.ascontiguousarray(colour[..., :1])
    if channels == 1:
        return np.ascontiguousarray(colour)
    described = {1: "grey", 3: "RGB"}.get(have, f"{have}-channel")
    wanted = {1: "grey", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}-channel")
    raise DatasetError(f"{what} is {described}; its input is {wanted}.")


def match_outputs(method: OutsideMethod, items: Mapping[str, Sequence[str]]) -> OutsideOutputs:
    """Match ``method``'s files to ``items`` (input name -> the names its output may carry: the input's name, its
    LR file's stem), by name, else by order where the counts agree.

    Raises:
        DatasetError: the folder holds no image, or none matches by name and the counts differ.
    """
    files = method.files()
    if not files:
        raise DatasetError(f"{method.name}: {method.path} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    if len(items) == 1 and len(files) == 1:  # one input, one output (a file, or a folder of one): nothing to match
        return OutsideOutputs(method.name, method.path, {next(iter(items)): files[0]})
    claims: dict[str, list[tuple[int, Path]]] = {}
    for file in files:
        found = _candidates(file, items)
        if found:
            exact, _, item = found[0]
            claims.setdefault(item, []).append((exact, file))
    if not claims:
        if len(files) != len(items):
            raise DatasetError(f"{method.name}: none of the {len(files)} images in {method.path} is named after one "
                               f"of the {len(items)} inputs (such as {next(iter(items))}.png or "
                               f"{next(iter(items))}_out.png), and their counts differ, so they cannot be matched by "
                               "order either.")
        return OutsideOutputs(method.name, method.path, dict(zip(items, files)), by_order=True)
    matched: dict[str, Path] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    for item, claimed in claims.items():
        best = min(rank for rank, _ in claimed)
        chosen = [file for rank, file in claimed if rank == best]
        if len(chosen) == 1:
            matched[item] = chosen[0]
        else:
            ambiguous[item] = tuple(file.name for file in chosen)
    unmatched = tuple(item for item in items if item not in matched and item not in ambiguous)
    return OutsideOutputs(method.name, method.path, matched, unmatched=unmatched, ambiguous=ambiguous)


def _ref_stem(ref: object) -> str:
    where = getattr(ref, "member", None) or getattr(ref, "path", "")
    return Path(str(where)).stem if where else ""


def dataset_stems(items: Sequence) -> dict[str, list[str]]:
    """For each dataset item (:class:`~core.evaluation.DatasetItem`), the names its output may be named after: the
    item's name, and the stems of its LR and HR files."""
    return {item.name: list(dict.fromkeys(n for n in (item.name, _ref_stem(item.lr), _ref_stem(item.hr)) if n))
            for item in items}


def outside_name(file_name: str, input_stem: str = "", taken: Sequence[str] = ()) -> str:
    """A method name for an uploaded output: its file's stem without the input's name in front
    (``chelsea_upscayl_4x.png`` of ``chelsea`` -> ``upscayl_4x``), in the characters a method name allows, and
    not one of ``taken`` or the reserved names (a ``-2``, ``-3``... added)."""
    stem = Path(file_name).stem
    if input_stem and stem.startswith(input_stem) and len(stem) > len(input_stem) + 1 \
            and stem[len(input_stem)] in _SEPARATORS:
        stem = stem[len(input_stem) + 1:]
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", stem).lstrip("._+-")[:60] or "made-elsewhere"
    candidate, count = name, 1
    while candidate in taken or candidate in _RESERVED:
        count += 1
        candidate = f"{name}-{count}"
    return candidate


def fit_to_region(image: np.ndarray, what: str, whole: tuple[int, int], box: tuple[int, int, int, int],
                  size: tuple[int, int], channels: int) -> np.ndarray:
    """The part of ``image``, an output of a whole input of ``whole = (height, width)``, that is the output of the
    input's region ``box = (left, top, height, width)``, checked to be ``size = (height, width)``, with the input's
    ``channels`` (see :meth:`OutsideOutputs.read`).

    Raises:
        SettingsError: ``image`` is not the whole input at one scale, or not at the scale the comparison is at.
        DatasetError: ``image`` has other colours than the input (colour for grey, transparency for none).
    """
    out_h, out_w = image.shape[:2]
    scale = out_h / whole[0]
    if abs(out_w - whole[1] * scale) > max(1.0, scale):
        raise SettingsError(f"{what} is {out_w}x{out_h}, not the input ({whole[1]}x{whole[0]}) at one scale: is it "
                            "an output of this image?")
    left, top, height, width = box
    wanted = size[0] / height
    if abs(out_h - whole[0] * wanted) > 1 + 0.5 * whole[0] / height:  # the sizes' rounding allowed for
        raise SettingsError(f"{what} is {out_w}x{out_h}: x{scale:.3g} of the input, where the comparison is at "
                            f"x{wanted:.3g}; set the output scale to {scale:.3g}.")
    y, x = round(top * scale), round(left * scale)
    part = image[y: y + size[0], x: x + size[1]]
    if part.shape[:2] != tuple(size):
        raise SettingsError(f"{what} is {out_w}x{out_h}: too small for the region at x{wanted:.3g}.")
    return _conform(part, channels, what)
