"""Which engine runs a model (``engine="auto"``): every engine that can run it on the device it will run on is
timed on one probe image through the whole upscaler, those whose output agrees with the reference's (PyTorch's)
are kept, and the fastest wins (the one needing less memory within :data:`TIE`). The choice is remembered per
weights, machine and device in ``engines.json``, under a lock, and measured again until :data:`MEASUREMENTS`
measurements are pooled.
Why it is done so, with the measurements behind it: ``docs/engines.md``, "How auto picks a CPU engine".
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .._cancel import give_way
from .._files import write_file
from ._engines import ENGINES

__all__ = ["MEASUREMENTS", "MIN_PSNR", "TIE", "EngineChoice", "EngineTrial", "choose", "cpu_name", "forget",
           "machine_key", "pick", "recheck", "remembered", "remembered_all"]

log = logging.getLogger(__name__)

MIN_PSNR = 60.0  # dB against PyTorch's output: "the same output" (16-bit output quantisation is ~107 dB)
TIE = 0.05  # within 5 % of the fastest: as fast (this machine's run-to-run noise); memory decides
PROBE_SIDE = 64
MAX_PROBE_SIDE = 256
PROBE_SECONDS = 0.5
PROBE_GROWTH = 1.5
ROUNDS = 5
MIN_ROUNDS = 3
ROUNDS_BUDGET_S = 12.0  # after MIN_ROUNDS rounds, no more once the rounds took this long
MEASUREMENTS = 3  # a choice is final once measured this many times, at different moments
RECHECK_AFTER_S = 3600.0  # between two measurements: far apart next to the slow phases of a shared host
FILE_NAME = "engines.json"
_VERSION = 1


class _Candidate(Protocol):
    def upscale(self, image: np.ndarray, settings=None): ...

    def activation_bytes_per_pixel(self) -> float | None: ...


@dataclass(frozen=True)
class EngineTrial:
    """One engine's figures on the probe: median seconds per call, PSNR against PyTorch (``None`` for
    PyTorch itself), the memory bound per LR pixel, and why it could not run (``error``)."""

    engine: str
    seconds: float | None = None
    psnr: float | None = None
    bytes_per_pixel: float | None = None
    error: str | None = None
    runs: tuple[float, ...] = ()  # each measurement's median; ``seconds`` is their mean

    @property
    def agrees(self) -> bool:
        return self.error is None and (self.psnr is None or self.psnr >= MIN_PSNR)

    def describe(self, *, details: bool = True) -> str:
        """For tables: ``"0.512 s, 116 dB, 3.6 KB/px"`` (``details``: PSNR and memory), the mean marked
        when it pools several measurements, or ``"cannot run"``."""
        if self.error:
            return "cannot run"
        if self.seconds is None:
            return "-"
        text = f"{self.seconds:.3f} s" + (f" (mean of {len(self.runs)})" if len(self.runs) > 1 else "")
        if details and self.psnr is not None:
            text += ", = torch" if self.psnr == float("inf") else f", {self.psnr:.0f} dB"
        if details and self.bytes_per_pixel is not None:
            text += f", {self.bytes_per_pixel / 1024:.1f} KB/px"
        return text


@dataclass(frozen=True)
class EngineChoice:
    """What ``engine="auto"`` runs a model with on this machine, and the measurement behind it."""

    engine: str
    reason: str
    side: int  # the probe's side, LR px
    threads: int
    trials: tuple[EngineTrial, ...]
    measured: str  # when the last measurement was taken, ISO 8601 (local time)
    measurements: int = 1  # how many measurements the figures pool (final at MEASUREMENTS)

    @property
    def final(self) -> bool:
        return self.measurements >= MEASUREMENTS

    def due(self, now: datetime.datetime | None = None) -> bool:
        """Whether the next load should measure again: not final, and the last measurement
        :data:`RECHECK_AFTER_S` ago or more."""
        if self.final:
            return False
        try:
            last = datetime.datetime.fromisoformat(self.measured)
        except ValueError:
            return True
        return ((now or datetime.datetime.now()) - last).total_seconds() >= RECHECK_AFTER_S

    def trial(self, engine: str) -> EngineTrial | None:
        """The figures of ``engine`` (``None``: it was not a candidate)."""
        return next((t for t in self.trials if t.engine == engine), None)

    def cell(self, engine: str, *, details: bool = True) -> str:
        """``engine``'s figures for a table (:meth:`EngineTrial.describe`), ``"-"`` where it was not a candidate."""
        trial = self.trial(engine)
        return "-" if trial is None else trial.describe(details=details)

    def progress(self) -> str:
        """``"2 of 3"`` or ``"final (3)"``, for tables."""
        return f"final ({self.measurements})" if self.final else f"{self.measurements} of {MEASUREMENTS}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> EngineChoice:
        trials = tuple(EngineTrial(**{**trial, "runs": tuple(trial.get("runs", ()))}) for trial in data["trials"])
        return cls(data["engine"], data["reason"], int(data["side"]), int(data["threads"]), trials, data["measured"],
                   int(data.get("measurements", 1)))


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> str:
    """What a measurement holds for: the CPU, its core count and the registered engines' versions."""
    versions = " | ".join(f"{engine.name} {engine.version() or '-'}" for engine in ENGINES)
    return f"{cpu_name()} | {os.cpu_count()} cpus | {versions}"


def _key(fingerprint: str, place: str) -> str:
    """``place``: the device and precision where they are not the CPU in fp32 (whose keys have no place)."""
    return f"{machine_key()} | on {place} | {fingerprint}" if place else f"{machine_key()} | {fingerprint}"


def _read(folder: Path) -> dict:
    try:
        data = json.loads((folder / FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data.get("choices", {}) if isinstance(data, dict) and data.get("version") == _VERSION else {}


def _write(folder: Path, choices: dict) -> None:
    write_file(folder / FILE_NAME, json.dumps({"version": _VERSION, "choices": choices}, indent=1))


_thread_lock = threading.Lock()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One measurement at a time in this folder: across threads, and across processes where
    the platform has ``fcntl`` (Linux, macOS)."""
    with _thread_lock:
        try:
            import fcntl
        except ImportError:  # Windows: threads only
            yield
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / f"{FILE_NAME}.lock", "a")  # noqa: SIM115 (held for the block)
        except OSError:  # a read-only folder: measure unlocked, and the result is not kept
            yield
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def remembered(fingerprint: str, folder: Path, place: str = "") -> EngineChoice | None:
    """The measured choice for these weights on this machine (``place``: on that device, see :func:`_key`), or
    ``None`` (not measured yet)."""
    entry = _read(folder).get(_key(fingerprint, place))
    try:
        return EngineChoice.from_json(entry) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def remembered_all(folder: Path) -> dict[str, EngineChoice]:
    """Every choice measured on this machine's CPU in fp32 in ``folder``, by weights fingerprint."""
    prefix = machine_key() + " | "
    found = {}
    for key, entry in _read(folder).items():
        if key.startswith(prefix) and not key.startswith(prefix + "on "):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found[key[len(prefix):]] = EngineChoice.from_json(entry)
    return found


def forget(fingerprint: str, folder: Path, place: str = "") -> bool:
    """Drop the remembered choice of these weights on this machine (the next load measures again)."""
    with _locked(folder):
        choices = _read(folder)
        if choices.pop(_key(fingerprint, place), None) is None:
            return False
        _write(folder, choices)
        return True


def pick(trials: list[EngineTrial]) -> tuple[str, str]:
    """The engine to use and why: the fastest that agrees with PyTorch, memory deciding within :data:`TIE`."""
    timed = {t.engine: t.seconds for t in trials if t.agrees and t.seconds is not None}
    usable = [t for t in trials if t.engine in timed]
    if not usable:
        return ENGINES.reference.name, "no engine could be measured; the reference runs"
    fastest = min(timed.values())
    close = [t for t in usable if timed[t.engine] <= fastest * (1 + TIE)]
    best = min(close, key=lambda t: (t.bytes_per_pixel if t.bytes_per_pixel is not None else float("inf"),
                                     timed[t.engine]))
    others = [t for t in usable if t is not best]
    if not others:
        reason = "the only engine that gives PyTorch's output here"
    elif len(close) > 1:
        reason = (f"as fast as {', '.join(t.engine for t in close if t is not best)} (within {TIE:.0%}) "
                  "and needs the least memory")
    else:
        reason = ", ".join(f"{timed[t.engine] / timed[best.engine]:.2f}x faster than {t.engine}" for t in others)
    refused = [t for t in trials if not t.agrees]
    for t in refused:
        why = t.error or f"{t.psnr:.0f} dB against PyTorch, below {MIN_PSNR:.0f}"
        reason += f"; {t.engine} not used ({why})"
    return best.engine, reason


def _probe(side: int) -> np.ndarray:
    from .._samples import load_sample

    sample = load_sample("astronaut")
    reps = -(-side // min(sample.shape[:2]))
    image = np.tile(sample, (reps, reps, 1))[:side, :side]
    return image.astype(np.uint16) * 257  # 16-bit: the PSNR then measures the engine, not 8-bit rounding


def _seconds(candidate: _Candidate, image: np.ndarray, settings) -> tuple[float, np.ndarray]:
    give_way()
    start = time.perf_counter()
    out = candidate.upscale(image, settings).image
    return time.perf_counter() - start, out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 65535.0**2
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _warm_up(engines: list[str], build: Callable[[str], _Candidate], built: dict[str, _Candidate], image: np.ndarray,
             settings, say: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Build each engine (reusing ``built``) and run it once on ``image``: its output, or why it cannot run."""
    outputs: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for engine in engines:
        say(f"measuring the {engine} engine")
        try:
            give_way()
            candidate = built.get(engine) or build(engine)
            _, outputs[engine] = _seconds(candidate, image, settings)  # warm-up: kernels for this shape, pools
            built[engine] = candidate
        except Exception as exc:  # an engine that cannot run this network is one result, not a failed load
            log.warning("the %s engine cannot run here: %s", engine, exc)
            failed[engine] = f"{type(exc).__name__}: {exc}"[:300]
            built.pop(engine, None)
    return outputs, failed


def _medians(built: dict[str, _Candidate], image: np.ndarray, settings) -> dict[str, float]:
    """Each engine's median call: the engines take turns, one call each per round (see :func:`measure`)."""
    times: dict[str, list[float]] = {engine: [] for engine in built}
    started = time.perf_counter()
    for round_index in range(ROUNDS):
        if round_index >= MIN_ROUNDS and time.perf_counter() - started > ROUNDS_BUDGET_S:
            break
        for engine, candidate in built.items():
            times[engine].append(_seconds(candidate, image, settings)[0])
    return {engine: statistics.median(values) for engine, values in times.items()}


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def measure(engines: list[str], build: Callable[[str], _Candidate], settings,
            status: Callable[[str], None] | None = None) -> EngineChoice:
    """Time each of ``engines`` as built by ``build`` on the probe, the first one's (PyTorch's) output
    the reference.

    The engines take turns, one call each per round, for :data:`ROUNDS` rounds (at least
    :data:`MIN_ROUNDS` where rounds take long), and each keeps the median of its calls: a burst of
    load from elsewhere on the machine then slows one round of every engine instead of all the calls
    of one, and an engine whose calls vary (PyTorch on the Compact network: 0.38-0.50 s at 256 px,
    OpenVINO 0.40-0.42 s) is judged by its typical call, not its luckiest. This is the first of
    :data:`MEASUREMENTS` measurements (:func:`recheck` takes the others).
    """
    say = status or log.info
    reference = engines[0]
    built: dict[str, _Candidate] = {reference: build(reference)}
    side = PROBE_SIDE
    while True:  # the probe's size: PyTorch's calls take at least PROBE_SECONDS, or the largest probe
        image = _probe(side)
        _seconds(built[reference], image, settings)  # warm-up at this shape
        seconds, _ = _seconds(built[reference], image, settings)
        if seconds >= PROBE_SECONDS or side >= MAX_PROBE_SIDE:
            break
        side = min(int(side * PROBE_GROWTH) // 8 * 8, MAX_PROBE_SIDE)
    outputs, failed = _warm_up(engines, build, built, image, settings, say)
    if reference in failed:  # the reference itself cannot run: nothing to compare with
        raise RuntimeError(f"{reference} cannot run this model: {failed[reference]}")
    medians = _medians(built, image, settings)
    trials = [EngineTrial(engine, error=failed[engine]) if engine in failed else
              EngineTrial(engine, medians[engine],
                          None if engine == reference else _psnr(outputs[engine], outputs[reference]),
                          built[engine].activation_bytes_per_pixel(), runs=(medians[engine],))
              for engine in engines]
    engine, reason = pick(trials)
    return EngineChoice(engine, reason, side, torch.get_num_threads(), tuple(trials), _now())


def recheck(previous: EngineChoice, build: Callable[[str], _Candidate], settings,
            status: Callable[[str], None] | None = None) -> EngineChoice:
    """Measure the engines of ``previous`` that agreed with PyTorch again, on the same probe, and pool the
    figures: each engine's seconds become the mean of its measurements' medians, and :func:`pick` decides
    on those. An engine that cannot run any more is recorded as such (and is not chosen)."""
    say = status or log.info
    image = _probe(previous.side)
    engines = [t.engine for t in previous.trials if t.agrees and t.seconds is not None]
    built: dict[str, _Candidate] = {}
    _, failed = _warm_up(engines, build, built, image, settings, say)
    medians = _medians(built, image, settings)
    trials = []
    for trial in previous.trials:
        if trial.engine in failed:
            trials.append(replace(trial, seconds=None, error=failed[trial.engine]))
        elif trial.engine in medians:
            runs = (*(trial.runs or (trial.seconds,)), medians[trial.engine])
            trials.append(replace(trial, seconds=statistics.fmean(runs), runs=runs))
        else:
            trials.append(trial)
    engine, reason = pick(trials)
    return EngineChoice(engine, reason, previous.side, torch.get_num_threads(), tuple(trials), _now(),
                        previous.measurements + 1)


def choose(fingerprint: str, folder: Path, engines: list[str], build: Callable[[str], _Candidate], settings,
           status: Callable[[str], None] | None = None, name: str | None = None, place: str = "") -> EngineChoice:
    """The remembered choice for these weights on this machine (and ``place``, the device where it is not the CPU
    in fp32); a new measurement (kept) where there is none, or where the remembered one names an engine that is not
    offered any more; a re-check (:func:`recheck`) where the remembered one is due (:meth:`EngineChoice.due`)."""

    def current(found: EngineChoice | None) -> bool:
        return found is not None and found.engine in engines and not found.due()

    found = remembered(fingerprint, folder, place)
    if found is not None and current(found):
        return found
    label, where = name or fingerprint, f"on {place}" if place else "on the CPU"
    say = status or log.info
    with _locked(folder):
        found = remembered(fingerprint, folder, place)  # another process may have measured while we waited
        if found is not None and current(found):
            return found
        start = time.perf_counter()
        if found is None or found.engine not in engines:
            say(f"measuring the engines for {label} {where} (measurement 1 of {MEASUREMENTS} on this machine; "
                "the others come on later loads)")
            choice = measure(engines, build, settings, status)
        else:
            say(f"measuring the engines for {label} {where} again (measurement {found.measurements + 1} of "
                f"{MEASUREMENTS}; so far {found.engine})")
            try:
                choice = recheck(found, build, settings, status)
            except Exception as exc:  # a re-check is a refinement: the kept choice still stands
                log.warning("could not measure the engines of %s again (%s); keeping %s", label, exc, found.engine)
                return found
        log.info("engine for %s %s: %s (%s); measurement %d took %.1f s", label, where, choice.engine, choice.reason,
                 choice.measurements, time.perf_counter() - start)
        try:
            choices = _read(folder)
            choices[_key(fingerprint, place)] = choice.to_json()
            _write(folder, choices)
        except OSError as exc:
            log.warning("cannot keep the engine measurement in %s (%s); the next start measures again", folder, exc)
        return choice

