"""Background jobs: long work in a thread, with progress, ETA, cancel and partial results.

The ETA is measured speed times the work left, counted from the job's first progress report with a
total (so a model's load before it does not count as slow work). Where the work's steps cost unlike
amounts (two models, one slower), the job reports the *expected seconds* of the work it finished
(``progress(..., work=)``, against :meth:`JobContext.expect`'s total): the ETA is then the expected
seconds left, scaled by how the finished work's expectation compared with the time it took.

Front ends start a job and poll it; the job object is shared (thread-safe), so a page can
be left and reopened while the work goes on. The work function receives a
:class:`JobContext` to report progress, publish partial results and check for
cancellation. Typed core errors become a readable ``error``; anything else is reported as
an internal error without a traceback (the traceback is kept in ``detail`` for logs).
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import CancelledError, StudioError

__all__ = ["Job", "JobContext", "JobManager", "JobSnapshot"]


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state for rendering."""

    id: str
    label: str
    status: str  # running | done | failed | cancelled
    done: float  # steps finished; fractions inside a step where the work reports them
    total: int
    message: str
    elapsed: float
    eta: float | None
    error: str
    partial: tuple[Any, ...]
    result: Any
    estimated: bool = False  # the ETA comes from an expected duration (no step has finished yet)
    work: float | None = None  # of the expected duration: the share of finished work (None: steps are alike)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def fraction(self) -> float:
        """Steps done over steps; before the first step ends, elapsed over expected time (at most 99 %)."""
        if self.work is not None:
            return min(self.work, 1.0)
        if self.estimated and self.eta is not None and not self.done:
            return min(self.elapsed / (self.elapsed + self.eta), 0.99) if self.elapsed + self.eta > 0 else 0.0
        return self.done / self.total if self.total else 0.0


@dataclass
class Job:
    id: str
    label: str
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    done: float = 0
    total: int = 0
    work: float | None = None  # expected seconds of the finished work (JobContext.progress's ``work``)
    since: tuple[float, float, float] | None = None  # (time, done, work) of the first report with a total
    message: str = ""
    error: str = ""
    detail: str = ""
    result: Any = None
    finished_at: float | None = None
    expected: float | None = None
    partial: list[Any] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        self._cancel.set()

    def _eta(self, now: float) -> tuple[float | None, bool]:
        """Seconds left, and whether that is only the expected duration (nothing measured yet)."""
        if self.since is not None:
            start, done0, work0 = self.since
            busy = now - start
            if self.work is not None and self.expected and self.work > work0:
                return max(self.expected - self.work, 0.0) * busy / (self.work - work0), False
            if self.work is None and self.total and self.done > done0:
                return busy / (self.done - done0) * (self.total - self.done), False
        if self.expected is not None:
            busy = now - (self.since[0] if self.since is not None else self.started)
            return max(self.expected - busy, 0.0), True
        return None, False

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            end = self.finished_at or time.monotonic()
            eta, estimated = self._eta(end)
            running = self.status == "running"
            work = self.work / self.expected if self.work is not None and self.expected else None
            return JobSnapshot(self.id, self.label, self.status, self.done, self.total, self.message,
                               end - self.started, eta if running else 0.0, self.error, tuple(self.partial),
                               self.result, estimated and running, work)


class JobContext:
    """Handed to the work function: report progress, publish partial results, check cancel."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def progress(self, done: float, total: int, message: str = "", *, work: float | None = None) -> None:
        """``done`` of ``total`` steps are finished (fractions inside a step where known); ``work``: the
        expected seconds (of :meth:`expect`'s total) that the finished work was expected to take, where steps
        cost unlike amounts."""
        job = self._job
        with job._lock:
            job.done, job.total, job.message, job.work = done, total, message, work
            if job.since is None and total:  # the work starts: loads before it are not its speed
                job.since = (time.monotonic(), done, work or 0.0)

    def say(self, message: str) -> None:
        """What the job does now, in words (the steps stay as they are)."""
        with self._job._lock:
            self._job.message = message

    def expect(self, seconds: float | None) -> None:
        """The expected duration, for an ETA before the first step ends (``None``: unknown)."""
        with self._job._lock:
            self._job.expected = seconds

    def publish(self, item: Any) -> None:
        with self._job._lock:
            self._job.partial.append(item)

    def cancelled(self) -> bool:
        return self._job._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if the job was cancelled."""
        if self.cancelled():
            raise CancelledError("Cancelled; results finished before the cancel are kept.")


class JobManager:
    """Starts and keeps jobs (the most recent ``keep`` of them)."""

    def __init__(self, keep: int = 32) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, label: str, work: Callable[[JobContext], Any]) -> Job:
        job = Job(uuid.uuid4().hex[:12], label)

        def run() -> None:
            context = JobContext(job)
            try:
                result = work(context)
                status, error = ("cancelled", "Cancelled.") if context.cancelled() else ("done", "")
            except CancelledError as exc:
                result, status, error = None, "cancelled", str(exc)
            except StudioError as exc:
                result, status, error = None, "failed", str(exc)
            except Exception as exc:  # a bug: say so without a traceback, keep it for the logs
                result, status, error = None, "failed", f"Internal error ({type(exc).__name__}); see the server log."
                job.detail = traceback.format_exc()
            with job._lock:
                job.result, job.status, job.error, job.finished_at = result, status, error, time.monotonic()

        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].status == "running":
                    break
                self._jobs.pop(oldest)
        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        if job_id is None:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.status == "running"]
