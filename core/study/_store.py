"""A study on disk: its blind images, raters, trials and votes in one SQLite file, every vote one transaction.

A study folder holds ``study.sqlite`` and ``images/``, where each output is a PNG named by a random id (no
method name in a file name or URL; a check trial's second copy of an output has an id of its own). Raters are
random ids with no account. Each rater gets trials until their share is done: the pair the votes so far are
least sure of (:func:`core.study.adaptive_trial`), and one trial in every ``check_every`` a check: an output
against a copy of itself (the answer is "can't tell"), or, where the study has references, the HR against a
heavily degraded copy of it (the answer is the HR). A rater who fails more than half of two or more checks is
marked careless, and their votes can be left out. A killed server loses nothing: an answered vote is committed,
and a rater who comes back gets their open trial again.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from .._files import new_folder
from .._io import encode_png
from .._resize import resize
from ..errors import DatasetError, SettingsError
from ._design import adaptive_trial
from ._fit import LEFT, RIGHT, TIE, Vote

__all__ = ["CHOICES", "STUDY_FILE", "Study", "TrialView", "create_study", "is_careless"]

CHOICES = (LEFT, RIGHT, TIE)
STUDY_FILE = "study.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (id TEXT PRIMARY KEY, image TEXT NOT NULL, method TEXT NOT NULL,
                                    role TEXT NOT NULL DEFAULT 'output');
CREATE TABLE IF NOT EXISTS raters (id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (id TEXT PRIMARY KEY, rater TEXT NOT NULL, image TEXT NOT NULL,
                                   left TEXT NOT NULL, right TEXT NOT NULL, kind TEXT NOT NULL,
                                   expected TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (trial TEXT PRIMARY KEY, rater TEXT NOT NULL, choice TEXT NOT NULL,
                                  at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (image TEXT NOT NULL, method TEXT NOT NULL, metric TEXT NOT NULL,
                                   value REAL, PRIMARY KEY (image, method, metric));
"""


@dataclass(frozen=True)
class TrialView:
    """What a rater's page shows: two image ids (the sides) and how far along the rater is; no method name."""

    id: str
    left: str
    right: str
    done: int
    total: int


def _degraded(image: np.ndarray) -> np.ndarray:
    """A copy of ``image`` no one should prefer: an eighth of its size, brought back."""
    small = resize(image, (max(1, image.shape[0] // 8), max(1, image.shape[1] // 8)), "area")
    return resize(small, image.shape[:2], "bicubic")


def create_study(folder: Path, name: str, outputs: Mapping[str, Mapping[str, np.ndarray]], *,
                 references: Mapping[str, np.ndarray] | None = None,
                 scores: Mapping[tuple[str, str], Mapping[str, float | None]] | None = None,
                 trials_per_rater: int | None = None, check_every: int = 8) -> Study:
    """A new study in ``folder`` (made here; an existing folder is refused, nothing of it is touched).

    Args:
        outputs: image name -> method -> output (2 to 6 methods, the same for every image, of one size per image).
        references: image name -> HR reference (for the HR-against-degraded check trials).
        scores: (image, method) -> metric -> value, for the metrics' agreement with the raters.
        trials_per_rater: a rater's share (default: every pair of every image once and the checks, at most 60).

    Raises:
        SettingsError: fewer than 2 or more than 6 methods, methods that differ between images, sizes that differ.
    """
    if not outputs:
        raise SettingsError("A study needs at least one image.")
    methods = sorted(next(iter(outputs.values())))
    if not 2 <= len(methods) <= 6:
        raise SettingsError(f"A study compares 2 to 6 methods; got {len(methods)}.")
    for image, by_method in outputs.items():
        if sorted(by_method) != methods:
            raise SettingsError(f"{image} has outputs of {', '.join(sorted(by_method))}, not of {', '.join(methods)}.")
        if len({a.shape for a in by_method.values()}) != 1:
            raise SettingsError(f"{image}'s outputs differ in size: they cannot be compared side by side.")
    if folder.exists():
        raise SettingsError(f"{folder} exists; a study is made in a new folder.")
    made = new_folder(folder.parent, folder.name)
    (made / "images").mkdir()
    pairs = len(list(combinations(methods, 2))) * len(outputs)
    checks = -(-pairs // max(check_every - 1, 1)) if check_every else 0  # a check in every check_every trials
    share = trials_per_rater or min(60, pairs + checks)
    study = Study(made)
    with study._write() as db:
        meta = {"name": name, "methods": json.dumps(methods), "images": json.dumps(sorted(outputs)),
                "created": str(time.time()), "owner_key": secrets.token_urlsafe(16),
                "rater_key": secrets.token_urlsafe(16), "trials_per_rater": str(share),
                "check_every": str(check_every), "id": made.name}
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        for image, by_method in sorted(outputs.items()):
            for method in methods:
                study._add_image(db, image, method, by_method[method], "output")
            first = by_method[methods[0]]
            study._add_image(db, image, methods[0], first, "copy")  # the same output under another id
            if references is not None and image in references:
                study._add_image(db, image, "hr", references[image], "hr")
                study._add_image(db, image, "degraded", _degraded(references[image]), "degraded")
        for (image, method), values in (scores or {}).items():
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                           [(image, method, metric, value) for metric, value in values.items()])
    return study


class Study:
    """An open study folder (see the module). Safe to share between threads; every write is one transaction."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        path = self.folder / STUDY_FILE
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()

    @classmethod
    def open(cls, folder: Path) -> Study:
        """Raises: DatasetError: ``folder`` holds no study."""
        if not (Path(folder) / STUDY_FILE).is_file():
            raise DatasetError(f"No study at {folder} (no {STUDY_FILE}).")
        return cls(folder)

    def close(self) -> None:
        self._db.close()

    # -- writing ---------------------------------------------------------------------------------------------
    class _Transaction:
        def __init__(self, study: Study) -> None:
            self.study = study

        def __enter__(self) -> sqlite3.Connection:
            self.study._lock.acquire()
            self.study._db.execute("BEGIN IMMEDIATE")
            return self.study._db

        def __exit__(self, kind, value, traceback) -> None:
            try:
                self.study._db.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.study._lock.release()

    def _write(self) -> Study._Transaction:
        return Study._Transaction(self)

    def _add_image(self, db: sqlite3.Connection, image: str, method: str, pixels: np.ndarray, role: str) -> str:
        blind = secrets.token_hex(8)
        (self.folder / "images" / f"{blind}.png").write_bytes(encode_png(pixels))
        db.execute("INSERT INTO outputs VALUES (?, ?, ?, ?)", (blind, image, method, role))
        return blind

    # -- reading ---------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise DatasetError(f"{self.folder}: the study has no {key}.")
        return row[0]

    @property
    def methods(self) -> list[str]:
        return json.loads(self.meta("methods"))

    @property
    def images(self) -> list[str]:
        return json.loads(self.meta("images"))

    def image_file(self, blind: str) -> Path | None:
        """The PNG of the image id ``blind``; ``None`` for an id that is not the study's."""
        with self._lock:
            row = self._db.execute("SELECT id FROM outputs WHERE id = ?", (blind,)).fetchone()
        return self.folder / "images" / f"{row[0]}.png" if row else None

    def rater_sees(self, rater: str, blind: str) -> bool:
        """Whether ``blind`` is an image of one of ``rater``'s trials (a rater's link reads nothing else)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM trials WHERE rater = ? AND (left = ? OR right = ?) LIMIT 1",
                                   (rater, blind, blind)).fetchone()
        return row is not None

    def outputs(self) -> dict[str, tuple[str, str, str]]:
        """Every image id of the study: ``(image, method, role)``, the role ``output`` (a method's output),
        ``copy`` (an output's second copy, for a check), ``hr`` or ``degraded``. For the owner, never a rater."""
        with self._lock:
            rows = self._db.execute("SELECT id, image, method, role FROM outputs").fetchall()
        return {blind: (image, method, role) for blind, image, method, role in rows}

    def votes(self, *, careless: bool = False) -> list[Vote]:
        """The votes on pairs of methods (check trials left out), by method name; a careless rater's too when
        ``careless``."""
        names = {blind: method for blind, (_, method, role) in self.outputs().items() if role == "output"}
        checks = {} if careless else self.checks()
        flagged = {r for r, (failed, total) in checks.items() if is_careless(failed, total)}
        with self._lock:
            rows = self._db.execute("SELECT t.image, t.left, t.right, v.choice, v.rater FROM votes v JOIN trials t "
                                    "ON t.id = v.trial WHERE t.kind = 'pair' ORDER BY v.at").fetchall()
        return [Vote(image, names[left], names[right], choice, rater) for image, left, right, choice, rater in rows
                if rater not in flagged]

    def checks(self) -> dict[str, tuple[int, int]]:
        """Each rater's failed and answered check trials."""
        with self._lock:
            rows = self._db.execute("SELECT v.rater, t.expected, t.left, t.right, v.choice FROM votes v JOIN trials t "
                                    "ON t.id = v.trial WHERE t.kind != 'pair'").fetchall()
        found: dict[str, list[int]] = {}
        for rater, expected, left, right, choice in rows:
            answer = TIE if choice == TIE else (left if choice == LEFT else right)
            entry = found.setdefault(rater, [0, 0])
            entry[0] += answer != expected
            entry[1] += 1
        return {rater: (failed, total) for rater, (failed, total) in found.items()}

    def scores(self) -> dict[tuple[str, str], dict[str, float | None]]:
        with self._lock:
            rows = self._db.execute("SELECT image, method, metric, value FROM scores").fetchall()
        found: dict[tuple[str, str], dict[str, float | None]] = {}
        for image, method, metric, value in rows:
            found.setdefault((image, method), {})[metric] = value
        return found

    def raters(self) -> dict[str, int]:
        """Each rater and the votes they cast."""
        with self._lock:
            rows = self._db.execute("SELECT r.id, COUNT(v.trial) FROM raters r LEFT JOIN votes v ON v.rater = r.id "
                                    "GROUP BY r.id").fetchall()
        return dict(rows)

    # -- a rater's session -----------------------------------------------------------------------------------
    def new_rater(self) -> str:
        rater = secrets.token_urlsafe(12)
        with self._write() as db:
            db.execute("INSERT INTO raters VALUES (?, ?)", (rater, time.time()))
        return rater

    def known_rater(self, rater: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM raters WHERE id = ?", (rater,)).fetchone() is not None

    def next_trial(self, rater: str) -> TrialView | None:
        """``rater``'s open trial (the one shown before a reload), else a new one; ``None`` when their share is done.

        Raises:
            DatasetError: an unknown rater.
        """
        if not self.known_rater(rater):
            raise DatasetError("Unknown rater: open the study's link again.")
        share = int(self.meta("trials_per_rater"))
        every = int(self.meta("check_every"))
        with self._write() as db:
            done = db.execute("SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,)).fetchone()[0]
            open_ = db.execute("SELECT id, left, right FROM trials WHERE rater = ? AND id NOT IN "
                               "(SELECT trial FROM votes) ORDER BY created LIMIT 1", (rater,)).fetchone()
            if open_ is not None:
                return TrialView(open_[0], open_[1], open_[2], done, share)
            if done >= share:
                return None
            trial = self._draw(db, done, every)
            db.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (trial[0], rater, trial[1], trial[2], trial[3], trial[4], trial[5], time.time()))
        return TrialView(trial[0], trial[2], trial[3], done, share)

    def _draw(self, db: sqlite3.Connection, done: int, every: int) -> tuple[str, str, str, str, str, str | None]:
        rows = db.execute("SELECT image, method, id, role FROM outputs").fetchall()
        ids = {(image, method, role): blind for image, method, blind, role in rows}
        methods, images = json.loads(self.meta_in(db, "methods")), json.loads(self.meta_in(db, "images"))
        trial_id = secrets.token_urlsafe(9)
        if every and done % every == every // 2:  # a check trial, early in each run of ``every``
            image = images[int(self._rng.integers(len(images)))]
            expected: str | None
            if (image, "hr", "hr") in ids and self._rng.random() < 0.5:
                pair = [ids[(image, "hr", "hr")], ids[(image, "degraded", "degraded")]]
                expected = pair[0]
            else:
                pair, expected = [ids[(image, methods[0], "output")], ids[(image, methods[0], "copy")]], TIE
            if self._rng.random() < 0.5:
                pair.reverse()
            return trial_id, image, pair[0], pair[1], "check", expected
        names = {blind: method for (image, method, role), blind in ids.items() if role == "output"}
        votes = [Vote(image, names[left], names[right], choice) for image, left, right, choice in db.execute(
            "SELECT t.image, t.left, t.right, v.choice FROM votes v JOIN trials t ON t.id = v.trial "
            "WHERE t.kind = 'pair'").fetchall()]
        image, left, right = adaptive_trial(methods, images, votes, self._rng)
        return trial_id, image, ids[(image, left, "output")], ids[(image, right, "output")], "pair", None

    @staticmethod
    def meta_in(db: sqlite3.Connection, key: str) -> str:
        return db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def vote(self, rater: str, trial: str, choice: str) -> bool:
        """Record ``rater``'s answer to ``trial``, in one transaction; ``False`` where it was recorded before (a
        resent answer). Raises: SettingsError: a choice not left, right or tie, or a trial not the rater's."""
        if choice not in CHOICES:
            raise SettingsError(f"A vote is one of {', '.join(CHOICES)}, not {choice!r}.")
        with self._write() as db:
            owner = db.execute("SELECT rater FROM trials WHERE id = ?", (trial,)).fetchone()
            if owner is None or owner[0] != rater:
                raise SettingsError("This trial is not yours: reload the page for your next one.")
            cursor = db.execute("INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?)", (trial, rater, choice, time.time()))
        return cursor.rowcount == 1

    def import_votes(self, records: Sequence[Mapping]) -> int:
        """Votes collected elsewhere (the offline page's file: trials with their answers), each once: a trial
        already here is skipped, so importing a file twice adds nothing. Returns the votes added."""
        added = 0
        known = set(self.outputs())
        with self._write() as db:
            for record in records:
                if record.get("choice") not in CHOICES or {record.get("left"), record.get("right")} - known:
                    raise SettingsError(f"Not a vote of this study: {dict(record)!r}"[:300])
                rater = str(record["rater"])
                db.execute("INSERT OR IGNORE INTO raters VALUES (?, ?)", (rater, time.time()))
                kind = "pair" if record.get("kind", "pair") == "pair" else "check"
                db.execute("INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (record["trial"], rater, record["image"], record["left"], record["right"], kind,
                            record.get("expected"), float(record.get("at", time.time()))))
                cursor = db.execute("INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?)",
                                    (record["trial"], rater, record["choice"], float(record.get("at", time.time()))))
                added += cursor.rowcount
        return added


def is_careless(failed: int, total: int) -> bool:
    return total >= 2 and failed * 2 > total
