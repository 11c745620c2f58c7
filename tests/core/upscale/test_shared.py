"""The process-wide model cache: one copy per (model, device, precision), loads that do not block
each other, time limits and cancels while waiting, and a bounded size."""

from __future__ import annotations

import shutil
import threading
import time
import types
from pathlib import Path

import pytest

import core
from core.upscale import _shared


class _SlowLoads:
    """Stands in for ``Upscaler.load``: counts loads; a model named ``slow*`` loads until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.release = threading.Event()

    def load(self, name: str, *, device: str, precision: str, weights_dir: Path | None, engine=None) -> object:
        self.calls.append((name, device, precision))
        if name.startswith("slow"):
            assert self.release.wait(30)
        return types.SimpleNamespace(measurement_due=False)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> _SlowLoads:
    fake = _SlowLoads()
    monkeypatch.setattr(_shared, "Upscaler", fake)
    core.clear_shared()
    yield fake
    fake.release.set()
    core.clear_shared()


def test_auto_and_fp32_on_the_cpu_are_one_copy(loads: _SlowLoads) -> None:
    first = core.shared_upscaler("a", "cpu", "auto")
    assert core.shared_upscaler("a", "cpu", "fp32") is first
    assert core.shared_upscaler("a", "auto", "auto") is first  # auto is the CPU on this machine
    assert core.shared_upscaler("a", "cpu", "bf16") is not first  # a real second copy, in bf16
    assert loads.calls == [("a", "cpu", "fp32"), ("a", "cpu", "bf16")]


@pytest.mark.slow
def test_a_slow_first_load_holds_up_only_its_own_callers(loads: _SlowLoads) -> None:
    core.shared_upscaler("fast", "cpu")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(core.shared_upscaler("slow", "cpu")))
    waiter.start()
    time.sleep(0.2)
    start = time.perf_counter()
    core.shared_upscaler("fast", "cpu")
    core.shared_upscaler("other", "cpu")  # another first load goes on beside it
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="still loading"):
        core.shared_upscaler("slow", "cpu", timeout=0.5)
    assert 0.4 < time.perf_counter() - start < 2.0
    with pytest.raises(core.CancelledError):
        core.shared_upscaler("slow", "cpu", cancel=lambda: True)
    loads.release.set()
    waiter.join(10)
    assert results and core.shared_upscaler("slow", "cpu") is results[0]
    assert [c[0] for c in loads.calls].count("slow") == 1  # three callers, one load


def test_the_cache_keeps_the_most_recently_used_models(loads: _SlowLoads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_MAX_MODELS", "2")
    for name in ("a", "b"):
        core.shared_upscaler(name, "cpu")
    core.shared_upscaler("a", "cpu")  # a is used again: b is now the least recently used
    core.shared_upscaler("c", "cpu")
    assert [key[0] for key in _shared.shared_keys()] == ["a", "c"]
    monkeypatch.setattr(_shared, "host_memory", lambda: (100 << 20, 8 << 30))  # 100 MB left
    core.shared_upscaler("d", "cpu")
    assert [key[0] for key in _shared.shared_keys()] == ["d"]  # short of memory: only the newest stays
    monkeypatch.setenv("STUDIO_MAX_MODELS", "zero")
    with pytest.raises(core.errors.SettingsError, match="STUDIO_MAX_MODELS"):
        core.shared_upscaler("e", "cpu")


@pytest.mark.slow
def test_a_first_load_serves_at_once_on_the_reference_and_swaps_to_the_measured_engine(
        compact: core.Upscaler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting for the CPU engines to be measured (OpenVINO compiling, tens of seconds) before the first
    result: the reference serves at once, a background thread measures, and the measured engine takes over."""
    folder = tmp_path / "weights"  # the model's weights, with no measurement of its engines
    folder.mkdir()
    shutil.copy(compact.info.path, folder / compact.info.path.name)
    info = core.model_info(compact.info.name, folder)
    assert info.available and core.engines.auto_engine(info) is None and len(core.engines.cpu_engines(info)) > 1
    core.clear_shared()
    try:
        monkeypatch.setattr(_shared, "MEASURE_WHEN_IDLE_S", 3600.0)
        first = core.shared_upscaler(info.name, "cpu", weights_dir=folder)
        assert first.engine == "torch" and first.measurement_due and first.engine_choice is None
        # the measurement waits for a quiet moment: never beside a user's request
        assert not core.upscale.wait_for_measurements(2.0) and core.engines.auto_engine(info) is None
        monkeypatch.setattr(_shared, "MEASURE_WHEN_IDLE_S", 0.5)
        assert core.upscale.wait_for_measurements(600)
        measured = core.engines.auto_engine(info)
        assert measured is not None and measured.measurements == 1
        second = core.shared_upscaler(info.name, "cpu", weights_dir=folder)
        assert second is not first and second.engine == measured.engine and not second.measurement_due
        assert second.engine_choice.engine == measured.engine
        image = core.load_sample("chelsea")[:24, :24]
        assert first.upscale(image).image.shape == second.upscale(image).image.shape == (96, 96, 3)
        # the next process finds the measurement and starts on the measured engine
        again = core.Upscaler.load(info.name, device="cpu", weights_dir=folder,
                                   engine=core.engines.EngineOptions(measure_later=True))
        assert again.engine == measured.engine and not again.measurement_due
    finally:
        core.clear_shared()
