"""Evaluate methods (classical baselines and models) on a dataset, resumably.

Every (image content, method, settings) result is stored in an embedded SQLite file as soon
as it is computed, so a re-run skips finished work and an interrupted run resumes without
losing anything. Results are written as CSV (one row per image and method) and JSON (the
same plus settings and per-method means).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._errors import DamagedFileError, StudioError, UnknownNameError
from .._files import atomic_open, write_file
from .._resize import resize
from ..metrics._measures import METRICS, Channel, Grey, compute_metric
from ..upscale._upscaler import Upscaler, UpscaleSettings
from ._datasets import Dataset, DatasetItem

__all__ = ["BASELINES", "EvalResult", "EvalRow", "EvalSettings", "ResultDB", "evaluate", "run_method",
           "write_results",
           # the steps both executors run (this module's loop and core.cluster's Ray workers)
           "Pair", "Scoring", "Upscalers", "compute_row", "error_row", "stored_row"]

# method name -> resize method of core.resize
BASELINES: dict[str, str] = {"bicubic": "matlab", "bicubic-opencv": "bicubic", "lanczos": "lanczos"}
HR_METHOD = "hr"  # the ground truth itself: no-reference metrics only (e.g. NIQE of HR)


@dataclass(frozen=True)
class EvalSettings:
    """How outputs are scored.

    Attributes:
        crop_border: pixels cropped on each side for PSNR / SSIM; ``None`` = the scale.
        channel: ``"y"`` (BT.601 Y, the literature's default) or ``"rgb"``.
        grey: grey images read as RGB before scoring (``"rgb"``, BasicSR's and the published
            tables' convention) or scored ``"as-is"``; see :mod:`core.metrics._measures`.
        niqe_crop_border: pixels cropped for NIQE (0, as in the published references).
        tile / device / precision: how models run.
    """

    crop_border: int | None = None
    channel: Channel = "y"
    grey: Grey = "rgb"
    niqe_crop_border: int = 0
    tile: int | None = None
    device: str = "auto"
    precision: str = "auto"


@dataclass
class EvalRow:
    image: str
    method: str
    metrics: dict[str, float | None]
    seconds: float
    device: str
    precision: str
    source: str
    reused: bool = False
    error: str = ""


@dataclass
class EvalResult:
    dataset: str
    scale: int
    lr_source: str
    methods: list[str]
    metrics: list[str]
    settings: EvalSettings
    rows: list[EvalRow] = field(default_factory=list)
    cancelled: bool = False

    @property
    def computed(self) -> int:
        return sum(1 for row in self.rows if not row.reused and not row.error)

    @property
    def reused(self) -> int:
        return sum(1 for row in self.rows if row.reused)

    def means(self) -> dict[str, dict[str, float | None]]:
        """Per method: the mean of each metric over images where it is finite, and seconds."""
        out: dict[str, dict[str, float | None]] = {}
        for method in self.methods:
            rows = [r for r in self.rows if r.method == method and not r.error]
            summary: dict[str, float | None] = {}
            for metric in [*self.metrics, "seconds"]:
                values = [r.seconds if metric == "seconds" else r.metrics.get(metric) for r in rows]
                finite = [v for v in values if v is not None and math.isfinite(v)]
                summary[metric] = float(np.mean(finite)) if finite else None
            summary["images"] = float(len(rows))
            out[method] = summary
        return out


def _stored(value: float) -> float | str:
    """A metric value as SQLite keeps it exactly: SQLite turns a NaN REAL into NULL, so NaN is kept as the
    text ``'nan'`` (``float()`` reads it back); infinities are REALs."""
    return "nan" if math.isnan(value) else float(value)


class ResultDB:
    """SQLite store of finished results, keyed by image hash + method + settings key.

    Every float round-trips exactly, NaN and the infinities included."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            self._create()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise DamagedFileError(
                    f"The result store {self.path} is corrupt ({exc}). Move it aside to start a new one (finished "
                    "results in it are then computed again), or pass --db with another path.") from exc
            raise

    def _create(self) -> None:
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS runs (image_hash TEXT, method TEXT, settings TEXT, image TEXT, "
                "seconds REAL, device TEXT, precision TEXT, source TEXT, created REAL, "
                "PRIMARY KEY (image_hash, method, settings))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS metrics (image_hash TEXT, method TEXT, settings TEXT, metric TEXT, "
                "value REAL, PRIMARY KEY (image_hash, method, settings, metric))"
            )
            # which stored result a dataset item's (method, work) has, found without reading the image:
            # a cluster run's driver skips finished work this way
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS items (item_key TEXT, method TEXT, work TEXT, image_hash TEXT, "
                "settings TEXT, PRIMARY KEY (item_key, method, work))"
            )

    def get(self, image_hash: str, method: str, settings: str) -> tuple[dict[str, float | None], dict] | None:
        with self._lock:
            run = self._db.execute(
                "SELECT seconds, device, precision, source FROM runs WHERE image_hash=? AND method=? AND settings=?",
                (image_hash, method, settings),
            ).fetchone()
            if run is None:
                return None
            values = self._db.execute(
                "SELECT metric, value FROM metrics WHERE image_hash=? AND method=? AND settings=?",
                (image_hash, method, settings),
            ).fetchall()
        if any(value is None for _, value in values):
            return None  # written before NaN was stored: NULL meant NaN or inf, so compute it again
        meta = dict(zip(("seconds", "device", "precision", "source"), run))
        return {name: float(value) for name, value in values}, meta

    def link(self, item_key: str, method: str, work: str, image_hash: str, settings: str) -> None:
        """Record that ``item_key``'s ``(method, work)`` has its result under ``(image_hash, settings)``."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                             (item_key, method, work, image_hash, settings))

    def find(self, item_key: str, method: str, work: str) -> tuple[str, str] | None:
        """``(image_hash, settings)`` of a linked result, if any (see :meth:`link`)."""
        with self._lock:
            found = self._db.execute("SELECT image_hash, settings FROM items WHERE item_key=? AND method=? AND work=?",
                                     (item_key, method, work)).fetchone()
        return (found[0], found[1]) if found else None

    def count(self) -> int:
        """How many (image, method, settings) results are stored."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def put(self, image_hash: str, method: str, settings: str, row: EvalRow, *,
            item: tuple[str, str] | None = None) -> None:
        """Store ``row``; with ``item = (item_key, work)`` also :meth:`link` it, in the same transaction, so a
        kill between the two never leaves a result that a later run cannot find."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_hash, method, settings, row.image, row.seconds, row.device, row.precision, row.source,
                 time.time()),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                [(image_hash, method, settings, name, _stored(value))
                 for name, value in row.metrics.items() if value is not None],
            )
            if item is not None:
                self._db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                                 (item[0], method, item[1], image_hash, settings))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _image_hash(lr: np.ndarray, hr: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (lr, hr):
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def run_method(method: str, lr: np.ndarray, size: tuple[int, int], upscaler: Upscaler | None = None, *,
               tile: int | None = None, cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """``lr`` brought to ``size = (height, width)`` by ``method``: a baseline of :data:`BASELINES`
    (``upscaler`` unused), or the model of ``upscaler``, at the scale ``size`` asks for (resized
    with bicubic where a rounding of that scale leaves the model's output a pixel off).

    Raises:
        ValueError: a model method without its upscaler.
    """
    if method in BASELINES:
        return resize(lr, size, BASELINES[method])
    if upscaler is None:
        raise ValueError(f"{method} is not a baseline ({', '.join(BASELINES)}): give its upscaler.")
    settings = UpscaleSettings(outscale=size[0] / lr.shape[0], tile=tile)
    output = upscaler.upscale(lr, settings, cancel=cancel).image
    return output if output.shape[:2] == tuple(size) else resize(output, size, "bicubic")


Progress = Callable[[int, int, str], None]
UpscalerFactory = Callable[[str], Upscaler]


def evaluate(
    dataset: Dataset,
    methods: Sequence[str],
    metrics: Sequence[str] = ("psnr", "ssim", "niqe"),
    settings: EvalSettings | None = None,
    *,
    db: ResultDB | None = None,
    upscaler_factory: UpscalerFactory | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    on_row: Callable[[EvalRow], None] | None = None,
) -> EvalResult:
    """Score ``methods`` on every image of ``dataset``.

    Args:
        methods: ``bicubic`` (MATLAB), ``bicubic-opencv``, ``lanczos``, ``hr`` (the ground
            truth, for no-reference metrics) or model names.
        metrics: names from :data:`core.METRICS`.
        db: where finished results are stored and looked up (none: nothing is reused).
        upscaler_factory: builds the upscaler of a model name (default: ``Upscaler.load``).
        progress: called with ``(steps done, steps total, "image · method")``.
        cancel: polled between steps; returns the partial result with ``cancelled=True``.
        on_row: called with each finished row (to show results as they come).

    A failing image is recorded as a row with ``error`` set; the others go on.
    """
    settings = settings or EvalSettings()
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError(f"Unknown metrics {unknown}; known: {', '.join(METRICS)}.")
    factory = upscaler_factory or (
        lambda name: Upscaler.load(name, device=settings.device, precision=settings.precision)
    )
    crop = dataset.scale if settings.crop_border is None else settings.crop_border
    context = Scoring(tuple(metrics), settings, crop, dataset.scale, db)
    result = EvalResult(dataset.name, dataset.scale, dataset.lr_source, list(methods), list(metrics), settings)
    upscalers = Upscalers(factory)
    total = len(dataset) * len(methods)
    step = 0
    for item in dataset.items:
        try:
            pair = Pair.load(dataset, item)
        except StudioError as exc:
            for method in methods:
                result.rows.append(error_row(item.name, method, exc))
            step += len(methods)
            continue
        for method in methods:
            if cancel is not None and cancel():
                result.cancelled = True
                return result
            try:
                row = _score(context, pair, method, upscalers.get(method))
            except StudioError as exc:
                row = error_row(item.name, method, exc)
            result.rows.append(row)
            if on_row is not None:
                on_row(row)
            step += 1
            if progress is not None:
                progress(step, total, f"{item.name} · {method}")
    return result


def error_row(image: str, method: str, exc: StudioError) -> EvalRow:
    return EvalRow(image, method, {}, 0.0, "", "", "", error=str(exc))


class Upscalers:
    """The upscaler of each model method, built on first use; ``None`` for baselines and ``hr``."""

    def __init__(self, factory: UpscalerFactory) -> None:
        self._factory = factory
        self._loaded: dict[str, Upscaler] = {}

    def get(self, method: str) -> Upscaler | None:
        if method in BASELINES or method == HR_METHOD:
            return None
        if method not in self._loaded:
            self._loaded[method] = self._factory(method)
        return self._loaded[method]


@dataclass(frozen=True)
class Scoring:
    """The frozen context of one evaluation: what is scored, how, and where results are kept."""

    metrics: tuple[str, ...]
    settings: EvalSettings
    crop: int
    scale: int
    db: ResultDB | None

    def key(self, method: str, upscaler: Upscaler | None, grey_image: bool) -> str:
        """The settings part of a stored result's key."""
        settings = self.settings
        key: dict[str, object] = {"scale": self.scale, "crop": self.crop, "channel": settings.channel,
                                  "niqe_crop": settings.niqe_crop_border, "method": method}
        if grey_image:  # the grey convention changes only grey images' scores (colour results stay reusable)
            key["grey"] = settings.grey
        if upscaler is not None:
            key |= {"precision": upscaler.choice.precision, "weights": upscaler.info.fingerprint}
        return json.dumps(key, sort_keys=True)

    def work(self, method: str, device: str | None, weights: str | None) -> str:
        """What a result of ``method`` depends on besides the image, known before anything runs: the
        settings, the device kind a model runs on (``cpu``, ``cuda``) and its weights' fingerprint."""
        key = asdict(self.settings) | {"scale": self.scale, "crop": self.crop, "method": method}
        if method not in BASELINES and method != HR_METHOD:
            key |= {"device_kind": device, "weights": weights}
        key.pop("device")  # the requested device is replaced by the kind it resolved to
        return json.dumps(key, sort_keys=True)

    def wanted(self, method: str) -> list[str]:
        """The metrics of ``method``'s row: no full-reference metric of the ground truth itself."""
        return [m for m in self.metrics if not (method == HR_METHOD and METRICS[m].full_reference)]


@dataclass(frozen=True)
class Pair:
    """One image pair of a dataset and the hash of its content (a stored result's key)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    digest: str
    item_key: str

    @classmethod
    def load(cls, dataset: Dataset, item: DatasetItem) -> Pair:
        lr, hr = dataset.load(item)
        return cls(item.name, lr, hr, _image_hash(lr, hr), dataset.item_key(item))

    @property
    def grey(self) -> bool:
        return self.hr.ndim == 2 or self.hr.shape[2] == 1


def _score(context: Scoring, pair: Pair, method: str, upscaler: Upscaler | None) -> EvalRow:
    """``method``'s row of ``pair``: from the store where it holds every wanted metric, else computed and stored."""
    key = context.key(method, upscaler, pair.grey)
    wanted = context.wanted(method)
    db = context.db
    stored = db.get(pair.digest, method, key) if db is not None else None
    if db is None:
        return compute_row(context, pair, method, upscaler, wanted)
    device = upscaler.choice.device.split(":")[0] if upscaler is not None else None
    weights = upscaler.info.fingerprint if upscaler is not None else None
    work = context.work(method, device, weights)
    if stored is not None and all(m in stored[0] for m in wanted):
        db.link(pair.item_key, method, work, pair.digest, key)
        return stored_row(pair.name, method, wanted, stored)
    row = compute_row(context, pair, method, upscaler, wanted)
    db.put(pair.digest, method, key, row, item=(pair.item_key, work))
    return row


def stored_row(image: str, method: str, wanted: list[str], stored: tuple[dict, dict]) -> EvalRow:
    values, meta = stored
    return EvalRow(image, method, {m: values[m] for m in wanted}, meta["seconds"], meta["device"],
                   meta["precision"], meta["source"], reused=True)


def compute_row(context: Scoring, pair: Pair, method: str, upscaler: Upscaler | None, wanted: list[str]) -> EvalRow:
    settings = context.settings
    start = time.perf_counter()
    if method == HR_METHOD:
        output, device, precision, source = pair.hr, "", "", "ground truth"
    else:
        output = run_method(method, pair.lr, pair.hr.shape[:2], upscaler, tile=settings.tile)
        if upscaler is None:
            device, precision, source = "cpu", "fp32", BASELINES[method]
        else:
            device, precision, source = upscaler.choice.device, upscaler.choice.precision, upscaler.info.source
    seconds = time.perf_counter() - start
    values: dict[str, float | None] = {}
    for metric in wanted:
        border = settings.niqe_crop_border if metric == "niqe" else context.crop
        values[metric] = compute_metric(metric, output, pair.hr, crop_border=border, channel=settings.channel,
                                        grey=settings.grey)
    return EvalRow(pair.name, method, values, seconds, device, precision, source)


def _finite(value: object) -> object:
    """JSON has no inf / nan: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_results(result: EvalResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (per image) and ``results.json`` (settings, rows, means)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    columns = ["image", "method", *result.metrics, "seconds", "device", "precision", "source", "reused", "error"]
    with atomic_open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in result.rows:
            writer.writerow([row.image, row.method, *(row.metrics.get(m, "") for m in result.metrics),
                             f"{row.seconds:.4f}", row.device, row.precision, row.source, row.reused, row.error])
    payload = {
        "dataset": result.dataset, "scale": result.scale, "lr_source": result.lr_source,
        "methods": result.methods, "metrics": {m: asdict(METRICS[m]) for m in result.metrics},
        "settings": asdict(result.settings) | {
            "crop_border": result.scale if result.settings.crop_border is None else result.settings.crop_border
        },
        "cancelled": result.cancelled, "means": result.means(),
        "rows": [asdict(row) for row in result.rows],
    }
    write_file(json_path, json.dumps(_finite(payload), indent=2))
    return csv_path, json_path


_RESULT_KEYS = ("dataset", "scale", "lr_source", "methods", "metrics", "settings", "cancelled", "means", "rows")


def read_results(run_dir: Path) -> dict:
    """The ``results.json`` of a run folder (see :func:`write_results`), checked for the keys readers use.

    Raises:
        DamagedFileError: the file is missing, truncated, not JSON, or lacks those keys.
    """
    path = Path(run_dir) / "results.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DamagedFileError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}); the run is "
                               "damaged. Its results.csv and the result store may still hold its rows.") from exc
    missing = [key for key in _RESULT_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise DamagedFileError(f"{path} lacks {', '.join(missing)}; the run is damaged.")
    return payload
