"""Background jobs (progress, partial results, cancel, errors) and sensitivity sweeps."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import core


def _wait(job: core._jobs.Job, timeout: float = 10.0) -> core.JobSnapshot:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = job.snapshot()
        if snap.finished:
            return snap
        time.sleep(0.01)
    raise AssertionError("job did not finish")


def test_job_reports_progress_partial_results_and_result() -> None:
    manager = core.JobManager()
    gate = threading.Event()

    def work(ctx: core.JobContext) -> str:
        for i in range(4):
            ctx.progress(i + 1, 4, f"step {i}")
            ctx.publish(i)
            if i == 1:
                gate.wait(5)
        return "finished"

    job = manager.start("demo", work)
    deadline = time.monotonic() + 5
    while job.snapshot().done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    mid = job.snapshot()
    assert mid.status == "running" and mid.done == 2 and mid.partial == (0, 1) and mid.eta is not None
    gate.set()
    snap = _wait(job)
    assert snap.status == "done" and snap.result == "finished" and snap.partial == (0, 1, 2, 3)
    assert snap.fraction == 1.0 and manager.get(job.id) is job and manager.get("nope") is None


def test_cancel_and_errors_become_readable_states() -> None:
    manager = core.JobManager()
    started = threading.Event()

    def slow(ctx: core.JobContext) -> None:
        started.set()
        while True:
            ctx.check()
            time.sleep(0.01)

    job = manager.start("slow", slow)
    started.wait(5)
    job.cancel()
    snap = _wait(job)
    assert snap.status == "cancelled" and "Cancelled" in snap.error

    def too_big(ctx: core.JobContext) -> None:
        raise core.errors.ImageTooLargeError("The image is 99 MP; the limit is 16 MP.")

    assert _wait(manager.start("big", too_big)).error == "The image is 99 MP; the limit is 16 MP."

    def bug(ctx: core.JobContext) -> None:
        raise KeyError("secret/path/on/server")

    failed = manager.start("bug", bug)
    snap = _wait(failed)
    assert snap.status == "failed" and "Internal error (KeyError)" in snap.error
    assert "secret" not in snap.error and "secret/path" in failed.detail


def test_sweep_scores_fall_as_degradation_grows() -> None:
    hr = core.load_sample("coffee")[:128, :128]
    methods = {"bicubic": lambda lr, size: core.resize(lr, size, "matlab")}
    seen: list[core.evaluation.SweepPoint] = []
    points = core.evaluation.run_sweep(hr, "blur_sigma", [0.3, 1.5, 3.0], methods, "psnr", 4, on_point=seen.append)
    scores = [p.score for p in points]
    assert points == seen and scores[0] > scores[1] > scores[2]
    jpeg = core.evaluation.run_sweep(hr, "jpeg_quality", [10, 90], methods, "psnr", 4)
    assert jpeg[0].score < jpeg[1].score
    noise = core.evaluation.run_sweep(hr, "noise_sigma", [0, 30], methods, "psnr", 4)
    assert noise[0].score > noise[1].score
    params = core.evaluation.sweep_params("noise_sigma", 12.0, 4)
    assert params.first.noise is not None and params.first.noise.level == 12.0 and params.first.kernel is None
    with pytest.raises(KeyError):
        core.evaluation.sweep_params("contrast", 1.0, 4)
    cancelled = core.evaluation.run_sweep(hr, "blur_sigma", [0.5, 1.0], methods, "psnr", 4, cancel=lambda: True)
    assert cancelled == []


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_is_measured_speed_times_the_work_left_not_the_load_before_it(monkeypatch) -> None:
    """At 1 of 4 tiles after a 60-s load and 12 s of work, 36 s are left, not 216 (the load counted as work);
    with two models of unlike speed, the expected seconds of each weigh the work left."""
    clock = _Clock()
    monkeypatch.setattr(core._jobs.time, "monotonic", clock)
    job = core._jobs.Job("id", "Upscaling", started=clock.now)
    ctx = core.JobContext(job)
    ctx.progress(0, 0, "loading…")
    clock.now += 60.0  # the model loads
    ctx.progress(0, 4, "tile 0/4")
    assert job.snapshot().eta is None
    clock.now += 12.0
    ctx.progress(1, 4, "tile 1/4")
    assert job.snapshot().eta == pytest.approx(36.0) and job.snapshot().elapsed == pytest.approx(72.0)
    clock.now += 6.0
    ctx.progress(2.5, 4, "half of tile 3")  # inside a tile: the count moves in fractions
    assert job.snapshot().eta == pytest.approx(18 / 2.5 * 1.5)
    # two models, 2 tiles each: the first expected to take 5 s, the second 20 s
    two = core._jobs.Job("id2", "Upscaling", started=clock.now)
    ctx = core.JobContext(two)
    ctx.expect(25.0)
    ctx.progress(0, 4, "a, tile 0/2", work=0.0)
    assert two.snapshot().estimated and two.snapshot().eta == pytest.approx(25.0)
    clock.now += 10.0  # the first model took twice its expectation
    ctx.progress(2, 4, "b, tile 0/2", work=5.0)
    snap = two.snapshot()
    assert not snap.estimated and snap.eta == pytest.approx(40.0) and snap.fraction == pytest.approx(0.2)
    clock.now += 20.0
    ctx.progress(3, 4, "b, tile 1/2", work=15.0)
    assert two.snapshot().eta == pytest.approx(10 * 30 / 15)  # steady: the estimate does not climb


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ncnn", "torch", "openvino"])
def test_a_long_tile_shows_an_estimate_at_once_and_cancels_within_seconds(weights_dir, engine: str) -> None:
    """One 320-px x4plus tile takes 10-20 s on two cores: the job has a total and an ETA before it
    ends, and a cancel stops it mid-tile (between network blocks), not after the tile."""
    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cpu", engine=engine)
    image = np.tile(core.load_sample("chelsea"), (2, 2, 1))[:320, :320]

    def work(ctx: core.JobContext) -> core.UpscaleResult:
        ctx.progress(0, 1, "tile 0/1")
        ctx.expect(upscaler.estimate_seconds(320, 320))
        return upscaler.upscale(image, core.UpscaleSettings(tile=0), cancel=ctx.cancelled)

    job = core.JobManager().start("Upscaling", work)
    deadline = time.monotonic() + 30
    while not job.snapshot().estimated and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = job.snapshot()
    assert snap.estimated and snap.total == 1 and snap.done == 0, snap
    assert snap.eta > 2 and 0 <= snap.fraction < 1  # a 64-px probe scaled to 320 px: seconds, not zero
    time.sleep(1.0)
    assert job.snapshot().status == "running"
    job.cancel()
    asked = time.monotonic()
    while job.snapshot().status == "running" and time.monotonic() - asked < 30:
        time.sleep(0.05)
    took = time.monotonic() - asked
    assert job.snapshot().status == "cancelled" and took < 5, f"{engine}: the cancel took {took:.1f} s"
