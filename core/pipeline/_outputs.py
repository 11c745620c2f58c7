"""Sources and sinks of a batch: the inputs a job names (files, folders, URIs), and where each output goes
(a folder here, or a folder at a URI), so that no output replaces an input or a file the studio did not
write, and no earlier output is taken for an input when a batch runs again into the folder that holds its
inputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from .._io import IMAGE_SUFFIXES
from .._ours import Ownership, ownership
from .._uri import is_uri, list_uri
from ..errors import SettingsError, StudioError

__all__ = ["OUT_SUFFIX", "OutputPlan", "check_suffix", "drop_earlier_outputs", "list_inputs", "output_folder",
           "plan_outputs", "refuse_foreign", "refuse_replacing_inputs", "unique_names"]

OUT_SUFFIX = "_out"  # the default stem suffix where the output folder holds inputs (the official script's)

Source = Path | str  # a local path, or a URI (``s3://bucket/a.png``)


def list_inputs(raws: Sequence[str], *, uris: bool = True) -> list[Source]:
    """The image files ``raws`` name: files as named, the images in the folders named (sorted, not recursive),
    and, where ``uris`` (an executor whose workers read URIs), the images at URIs.

    Raises:
        SettingsError: a URI where ``uris`` is false.
        StudioError: a URI that cannot be listed.
    """
    found: list[Source] = []
    for raw in raws:
        if is_uri(raw):
            if not uris:
                raise SettingsError(f"{raw}: URIs are read by cluster workers; add --ray.")
            found += list_uri(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def output_folder(raw: str | Path) -> Path:
    """``raw`` as a writable folder (created if missing).

    Raises:
        SettingsError: a file is there, or the folder cannot be created or written.
    """
    folder = Path(raw)
    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"{folder} is a file; the output must be a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot create the output folder {folder}: {exc.strerror or exc}.") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(f"the output folder {folder} is not writable.")
    return folder


def _path_of(source: Source) -> PurePosixPath | Path:
    return PurePosixPath(urlsplit(source).path) if isinstance(source, str) else source


def unique_names(files: Sequence[Source], suffix: str) -> list[str]:
    """Output file names, one per input, never two alike (case-insensitively).

    ``a.png`` gives ``a{suffix}.png``; inputs that share a stem but not an extension
    (``a.gif``, ``a.webp``) keep it in the name (``a-gif``, ``a-webp``); names still equal
    (``x/a.png``, ``y/a.png``) get ``-2``, ``-3`` in input order.
    """
    paths = [_path_of(f) for f in files]
    groups: dict[str, set[str]] = {}
    for path in paths:
        groups.setdefault(path.stem.lower(), set()).add(path.suffix.lower())
    taken: set[str] = set()
    names = []
    for path in paths:
        base = path.stem
        if len(groups[path.stem.lower()]) > 1:
            base = f"{path.stem}-{path.suffix.lstrip('.').lower()}"
        name, count = base, 1
        while name.lower() in taken:
            count += 1
            name = f"{base}-{count}"
        taken.add(name.lower())
        names.append(f"{name}{suffix}.png")
    return names


def _identity(path: Path) -> tuple[int, int] | None:
    """The file ``path`` names (device, inode), so that two names of one file compare equal; None if none."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def drop_earlier_outputs(files: Sequence[Source], folder: Path | str, is_output: Callable[[str], bool],
                         named: Sequence[str] = ()) -> list[Source]:
    """``files`` without the images in the output ``folder`` whose stem marks them as our earlier outputs,
    unless named one by one in ``named`` (the command's arguments): a re-run into the input folder never
    takes its outputs for inputs."""
    if isinstance(folder, str):  # a folder at a URI
        return [f for f in files if not (isinstance(f, str) and f.rsplit("/", 1)[0] == folder
                                         and is_output(_path_of(f).stem) and f not in named)]
    folder = folder.resolve()
    kept = {Path(raw).resolve() for raw in named if not is_uri(raw) and not Path(raw).is_dir()}
    return [f for f in files if not (isinstance(f, Path) and f.resolve().parent == folder and is_output(f.stem)
                                     and f.resolve() not in kept and _marked(f))]


def _marked(path: Path) -> bool:
    """Whether ``path`` carries the studio's mark (or is empty: no image at all), so that a user's own
    ``photo_out.png`` is an input, not an earlier output."""
    return ownership(path) in (Ownership.OURS, Ownership.OURS_CUT, Ownership.EMPTY)


def check_suffix(suffix: str) -> str:
    """``suffix`` if it is a plain name fragment; a separator, ``..``, a control character or a leading dot
    could put an output outside its folder, or hide it.

    Raises:
        SettingsError: what is wrong with it.
    """
    bad = [c for c in suffix if c in '/\\\0:' or ord(c) < 32 or ord(c) == 127]
    if bad or ".." in suffix or suffix.startswith(".") or suffix != suffix.strip():
        what = (f"holds {bad[0]!r}" if bad else "holds '..'" if ".." in suffix
                else "starts with '.'" if suffix.startswith(".") else "has spaces at an end")
        raise SettingsError(f"--suffix {suffix!r} {what}: a suffix is a name fragment (letters, digits, '_', '-'), "
                            "added to each input's name inside -o.")
    return suffix


def refuse_foreign(targets: Sequence[Path | str]) -> None:
    """Raise :class:`SettingsError` (nothing runs) if a file the studio did not write is where an output goes:
    we only replace our own files (see :mod:`core._ours`); an empty file holds nothing to lose."""
    foreign = [t for t in targets if isinstance(t, Path) and ownership(t) is Ownership.FOREIGN]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise SettingsError(f"{foreign[0]} is already there{more} and was not written by the studio (it carries "
                            "no realesrgan-studio mark), so it is not replaced; nothing was written. Move it away, or "
                            "choose another -o or --suffix.")


def refuse_replacing_inputs(files: Sequence[Source], targets: Sequence[Path | str]) -> None:
    """Raise :class:`SettingsError` (nothing runs) if an output would be an input file: the same path or URI,
    or a hard link to it."""
    uris = {f for f in files if isinstance(f, str)}
    clashes: list[tuple[Source, Path | str]] = [(t, t) for t in targets if isinstance(t, str) and t in uris]
    by_path = {f.resolve(): f for f in files if isinstance(f, Path)}
    by_file = {identity: f for f in by_path.values() if (identity := _identity(f)) is not None}
    for target in targets:
        if isinstance(target, Path):
            same = by_path.get(target.resolve())
            linked = by_file.get(identity) if (identity := _identity(target)) is not None else None
            if (found := same or linked) is not None:
                clashes.append((found, target))
    if clashes:
        source, target = clashes[0]
        why = (" (it was not written by the studio, so it is an input, not an earlier output)"
               if isinstance(source, Path) and ownership(source) is Ownership.FOREIGN else "")
        raise SettingsError(f"{target} would replace the input {source}{why}"
                            f"{f' (and {len(clashes) - 1} more)' if len(clashes) > 1 else ''}; nothing was written. "
                            "Choose another output folder (or --suffix).")


@dataclass(frozen=True)
class OutputPlan:
    """The inputs of a batch and where each output goes: ``dest`` (a folder here, or a folder at a URI such
    as ``s3://bucket/out``) / ``names[i]``."""

    inputs: tuple[Source, ...]
    names: tuple[str, ...]
    dest: Path | str

    def target(self, index: int) -> Path | str:
        name = self.names[index]
        return f"{self.dest}/{name}" if isinstance(self.dest, str) else self.dest / name

    def existing(self) -> set[str]:
        """The output names already at ``dest``: here, whole files the studio wrote (an empty or cut file is
        made again); at a URI, every object of that name (the folder is listed once)."""
        if isinstance(self.dest, Path):
            return {name for name in self.names if ownership(self.dest / name) is Ownership.OURS}
        try:
            there = {uri.rsplit("/", 1)[1] for uri in list_uri(self.dest + "/")}
        except StudioError:  # no such folder yet (an object store has none before the first object)
            there = set()
        return there & set(self.names)


def plan_outputs(files: Sequence[Source], dest: Path | str, suffix: str | None = None,
                 named: Sequence[str] = ()) -> OutputPlan:
    """The inputs to run and their output names (``STEM{suffix}.png``), so that no output replaces an input.

    Where ``dest`` holds inputs, ``suffix`` defaults to ``_out`` and may not be empty, and images there whose
    stem ends with it are earlier outputs, not inputs (unless ``named`` one by one). ``dest`` is a folder
    here, or a URI (``s3://bucket/out``; a trailing ``/`` is dropped).

    Raises:
        SettingsError: an output would replace an input (the same path, or a hard link to it) or a file the
            studio did not write, an empty suffix where ``dest`` holds inputs, or a suffix that is not a plain
            name fragment.
    """
    if suffix:
        check_suffix(suffix)
    holds_inputs: list[Source]
    if isinstance(dest, str):
        dest = dest.rstrip("/")
        holds_inputs = [f for f in files if isinstance(f, str) and f.rsplit("/", 1)[0] == dest]
    else:
        folder = dest.resolve()
        holds_inputs = [f for f in files if isinstance(f, Path) and f.resolve().parent == folder]
    suffix = suffix if suffix is not None else (OUT_SUFFIX if holds_inputs else "")
    if holds_inputs and not suffix:
        raise SettingsError(f"the output folder {dest} holds inputs ({_path_of(holds_inputs[0]).name}"
                            f"{', …' if len(holds_inputs) > 1 else ''}); with an empty --suffix an output would "
                            f"replace or be taken for an input. Choose another -o, or leave --suffix out "
                            f"({OUT_SUFFIX}).")
    if suffix:
        files = drop_earlier_outputs(files, dest, lambda stem: stem.endswith(suffix), named)
    names = unique_names(files, suffix)
    plan = OutputPlan(tuple(files), tuple(names), dest)
    targets = [plan.target(i) for i in range(len(names))]
    refuse_replacing_inputs(files, targets)
    refuse_foreign(targets)
    return plan
