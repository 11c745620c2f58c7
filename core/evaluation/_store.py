"""Evaluation results: settings, rows and runs, the SQLite store that makes runs resumable, and the
CSV / JSON files a run writes.

Every (image content, method, settings) result is stored as soon as it is computed, so a re-run
skips finished work and an interrupted run resumes without losing anything.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._files import atomic_open, write_file
from ..errors import DamagedFileError
from ..metrics import METRICS, Channel, Grey
from ._coverage import coverage, nonfinite
from ._payload import payload_problem

__all__ = ["EvalHooks", "EvalResult", "EvalRow", "EvalSettings", "ResultDB", "read_results", "write_results"]


@dataclass(frozen=True)
class EvalSettings:
    """How outputs are scored.

    Attributes:
        crop_border: pixels cropped on each side for PSNR / SSIM; ``None`` = the scale.
        channel: ``"y"`` (BT.601 Y, the literature's default) or ``"rgb"``.
        grey: grey images read as RGB before scoring (``"rgb"``, BasicSR's and the published
            tables' convention) or scored ``"as-is"``; see :mod:`core.metrics`.
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
    # the model's fingerprint (its weights' SHA-256), an outside output's file's SHA-256; empty for baselines and HR
    weights: str = ""


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
    plan: dict[str, object] = field(default_factory=dict)  # a cluster run: how its workers ran the models

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

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """What each mean of :meth:`means` covers and leaves out (see :mod:`core.evaluation._coverage`)."""
        return coverage(self.rows, self.methods, {m: METRICS[m].full_reference for m in self.metrics})


def _stored(value: float) -> float | str:
    """A metric value as SQLite keeps it exactly: SQLite turns a NaN REAL into NULL, so NaN is kept as the
    text ``'nan'`` (``float()`` reads it back); infinities are REALs."""
    return "nan" if math.isnan(value) else float(value)


def _column(metric: str) -> str:
    """The name a metric's values are stored under: with its version where a fix has changed its values
    (``niqe@v2``), so values stored before the fix are never read as current ones."""
    version = METRICS[metric].version if metric in METRICS else 1
    return metric if version == 1 else f"{metric}@v{version}"


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
        metrics: dict[str, float | None] = {}
        for column, value in values:
            name = column.split("@")[0]
            if _column(name) == column:  # a value of the metric's current version
                metrics[name] = float(value)
        return metrics, meta

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
                [(image_hash, method, settings, _column(name), _stored(value))
                 for name, value in row.metrics.items() if value is not None],
            )
            if item is not None:
                self._db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                                 (item[0], method, item[1], image_hash, settings))

    def close(self) -> None:
        with self._lock:
            self._db.close()




@dataclass(frozen=True)
class EvalHooks:
    """What a running evaluation reports, and how it is stopped (both executors take the same hooks).

    Attributes:
        progress: called with ``(steps done, steps total, "image · method")``.
        cancel: polled between steps; the run then returns its partial result with ``cancelled=True``.
        on_row: called with each row as it is ready, reused rows first, and the pid of the process
            that computed it (``None`` for a row reused from the store).
        status: told, in words, what the run does or waits for besides rows (a cluster run: its
            plan, and what it waits for while no worker has started).
    """

    progress: Callable[[int, int, str], None] | None = None
    cancel: Callable[[], bool] | None = None
    on_row: Callable[[EvalRow, int | None], None] | None = None
    status: Callable[[str], None] | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel()


def _finite(value: object) -> object:
    """JSON has no inf / nan: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plan(result: EvalResult) -> dict[str, object]:
    """A cluster run's plan, saying which rows it covers: rows reused from the store were computed earlier, maybe
    with another engine or device (each row names its own device and precision)."""
    if not result.plan:
        return {}
    return result.plan | {"computed_rows": result.computed, "reused_rows": result.reused,
                          "covers": "the computed rows only; reused rows keep the device and precision they were "
                                    "computed with (in each row)" if result.reused else "every row"}


def _row_json(row: EvalRow) -> dict:
    """A row as ``results.json`` keeps it: JSON has no inf or NaN, so such a value is ``null`` and
    ``nonfinite`` says which it was (``{"psnr": "+inf"}``), which ``null`` alone (no value) cannot."""
    data = asdict(row)
    odd = {m: kind for m, v in row.metrics.items() if (kind := nonfinite(v)) is not None}
    return data | ({"nonfinite": odd} if odd else {})


def write_results(result: EvalResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (per image) and ``results.json`` (settings, rows, means)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    columns = ["image", "method", *result.metrics, "seconds", "device", "precision", "source", "reused", "error",
               "weights"]
    with atomic_open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in result.rows:
            writer.writerow([row.image, row.method, *(row.metrics.get(m, "") for m in result.metrics),
                             f"{row.seconds:.4f}", row.device, row.precision, row.source, row.reused, row.error,
                             row.weights])
    payload = {
        "dataset": result.dataset, "scale": result.scale, "lr_source": result.lr_source,
        "methods": result.methods, "metrics": {m: METRICS[m].to_json() for m in result.metrics},
        "settings": asdict(result.settings) | {
            "crop_border": result.scale if result.settings.crop_border is None else result.settings.crop_border
        },
        "cancelled": result.cancelled, "plan": _plan(result), "means": result.means(), "counts": result.counts(),
        "rows": [_row_json(row) for row in result.rows],
    }
    write_file(json_path, json.dumps(_finite(payload), indent=2))
    return csv_path, json_path


def read_results(run_dir: Path) -> dict:
    """The ``results.json`` of a run folder (see :func:`write_results`), checked for the keys and types readers use.

    Raises:
        DamagedFileError: the file is missing, truncated, not JSON, or its keys are missing or of the wrong type.
    """
    path = Path(run_dir) / "results.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DamagedFileError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}); the run is "
                               "damaged. Its results.csv and the result store may still hold its rows.") from exc
    problem = payload_problem(payload)
    if problem is not None:
        raise DamagedFileError(f"{path} is not a results file the studio can read: {problem}. Run the evaluation "
                               "again to write it anew (finished rows are reused from the result store).")
    return payload
