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

from ._datasets import Dataset
from ._errors import StudioError, UnknownNameError
from ._metrics import METRICS, Channel, Grey, compute_metric
from ._resize import resize
from ._upscaler import Upscaler, UpscaleSettings

__all__ = ["BASELINES", "EvalResult", "EvalRow", "EvalSettings", "ResultDB", "evaluate", "run_method",
           "write_results"]

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
            tables' convention) or scored ``"as-is"``; see :mod:`core._metrics`.
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


class ResultDB:
    """SQLite store of finished results, keyed by image hash + method + settings key."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
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
        meta = dict(zip(("seconds", "device", "precision", "source"), run))
        return {name: (float("inf") if value is None else value) for name, value in values}, meta

    def put(self, image_hash: str, method: str, settings: str, row: EvalRow) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_hash, method, settings, row.image, row.seconds, row.device, row.precision, row.source,
                 time.time()),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                [(image_hash, method, settings, name, None if value is not None and math.isinf(value) else value)
                 for name, value in row.metrics.items() if value is not None],
            )

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
    result = EvalResult(dataset.name, dataset.scale, dataset.lr_source, list(methods), list(metrics), settings)
    upscalers: dict[str, Upscaler] = {}
    total = len(dataset) * len(methods)
    step = 0
    for item in dataset.items:
        try:
            lr, hr = dataset.load(item)
        except StudioError as exc:
            for method in methods:
                result.rows.append(EvalRow(item.name, method, {}, 0.0, "", "", "", error=str(exc)))
            step += len(methods)
            continue
        image_hash = _image_hash(lr, hr)
        for method in methods:
            if cancel is not None and cancel():
                result.cancelled = True
                return result
            try:
                row = _score(item.name, method, lr, hr, metrics, settings, crop, dataset.scale, image_hash,
                             db, upscalers, factory)
            except StudioError as exc:
                row = EvalRow(item.name, method, {}, 0.0, "", "", "", error=str(exc))
            result.rows.append(row)
            if on_row is not None:
                on_row(row)
            step += 1
            if progress is not None:
                progress(step, total, f"{item.name} · {method}")
    return result


def _settings_key(method: str, scale: int, crop: int, settings: EvalSettings, upscaler: Upscaler | None,
                  grey_image: bool) -> str:
    key: dict[str, object] = {"scale": scale, "crop": crop, "channel": settings.channel,
                              "niqe_crop": settings.niqe_crop_border, "method": method}
    if grey_image:  # the grey convention changes only grey images' scores (colour results stay reusable)
        key["grey"] = settings.grey
    if upscaler is not None:
        key |= {"precision": upscaler.choice.precision, "weights": upscaler.info.fingerprint}
    return json.dumps(key, sort_keys=True)


def _score(
    name: str, method: str, lr: np.ndarray, hr: np.ndarray, metrics: Sequence[str], settings: EvalSettings,
    crop: int, scale: int, image_hash: str, db: ResultDB | None, upscalers: dict[str, Upscaler],
    factory: UpscalerFactory,
) -> EvalRow:
    upscaler = None
    if method not in BASELINES and method != HR_METHOD:
        if method not in upscalers:
            upscalers[method] = factory(method)
        upscaler = upscalers[method]
    key = _settings_key(method, scale, crop, settings, upscaler, grey_image=hr.ndim == 2 or hr.shape[2] == 1)
    wanted = [m for m in metrics if not (method == HR_METHOD and METRICS[m].full_reference)]
    stored = db.get(image_hash, method, key) if db is not None else None
    if stored is not None and all(m in stored[0] for m in wanted):
        values, meta = stored
        return EvalRow(name, method, {m: values[m] for m in wanted}, meta["seconds"], meta["device"],
                       meta["precision"], meta["source"], reused=True)
    start = time.perf_counter()
    if method == HR_METHOD:
        output, device, precision, source = hr, "", "", "ground truth"
    else:
        output = run_method(method, lr, hr.shape[:2], upscaler, tile=settings.tile)
        if upscaler is None:
            device, precision, source = "cpu", "fp32", BASELINES[method]
        else:
            device, precision, source = upscaler.choice.device, upscaler.choice.precision, upscaler.info.source
    seconds = time.perf_counter() - start
    values: dict[str, float | None] = {}
    for metric in wanted:
        border = settings.niqe_crop_border if metric == "niqe" else crop
        values[metric] = compute_metric(metric, output, hr, crop_border=border, channel=settings.channel,
                                        grey=settings.grey)
    row = EvalRow(name, method, values, seconds, device, precision, source)
    if db is not None:
        db.put(image_hash, method, key, row)
    return row


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
    with csv_path.open("w", newline="") as handle:
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
    json_path.write_text(json.dumps(_finite(payload), indent=2))
    return csv_path, json_path
