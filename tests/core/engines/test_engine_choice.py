"""engine="auto" on the CPU: each model's engine measured once per machine, kept, and honoured."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import core
from core import errors
from core.engines import _choice as _engine_choice
from core.engines import auto_engine, cpu_engine_label, forget_engine
from core.engines._choice import FILE_NAME, MEASUREMENTS, MIN_PSNR, TIE, EngineChoice, EngineTrial, pick, recheck
from tests.conftest import psnr

ROOT = Path(__file__).resolve().parents[3]


def test_the_fastest_engine_with_pytorchs_output_wins() -> None:
    trials = [EngineTrial("torch", 1.0, None, 800.0), EngineTrial("ncnn", 0.6, 120.0, 3600.0),
              EngineTrial("openvino", 0.9, 118.0, 1900.0)]
    engine, reason = pick(trials)
    assert engine == "ncnn" and "1.67x faster than torch" in reason and "1.50x faster than openvino" in reason


def test_within_the_tie_the_engine_needing_less_memory_wins() -> None:
    close = 1 + TIE / 2
    engine, reason = pick([EngineTrial("torch", 1.0 * close, None, 800.0), EngineTrial("openvino", 1.0, 110.0, 1900.0)])
    assert engine == "torch" and "needs the least memory" in reason
    engine, _ = pick([EngineTrial("torch", 1.0 * (1 + 2 * TIE), None, 800.0),
                      EngineTrial("openvino", 1.0, 110.0, 1900.0)])
    assert engine == "openvino"  # beyond the tie, speed decides


def test_an_engine_with_other_output_or_an_error_is_never_chosen() -> None:
    engine, reason = pick([EngineTrial("torch", 1.0, None, 800.0), EngineTrial("ncnn", 0.5, MIN_PSNR - 5, 3600.0),
                           EngineTrial("openvino", error="ConversionError: unsupported op")])
    assert engine == "torch"
    assert "ncnn not used (55 dB against PyTorch" in reason and "openvino not used (ConversionError" in reason


class _Sleeper:
    """An engine whose call takes a set time (sleep: the same on any machine) and returns its input."""

    def __init__(self, seconds: float, bytes_per_pixel: float) -> None:
        self.seconds, self.bytes_per_pixel, self.calls = seconds, bytes_per_pixel, 0

    def upscale(self, image: np.ndarray, settings=None) -> SimpleNamespace:
        self.calls += 1
        time.sleep(self.seconds)
        return SimpleNamespace(image=image)

    def activation_bytes_per_pixel(self) -> float:
        return self.bytes_per_pixel


@pytest.mark.slow
def test_a_recheck_pools_the_measurements_and_can_overturn_a_choice_made_in_a_slow_phase() -> None:
    """The case seen on a shared VM: a first measurement in a phase that slowed ncnn kept OpenVINO; a
    later one in a quiet phase finds ncnn far ahead, and the pooled means pick ncnn."""
    first = EngineChoice("openvino", "as measured in a slow phase", 64, 2, (
        EngineTrial("torch", 0.084, None, 800.0, runs=(0.084,)),
        EngineTrial("ncnn", 0.077, 116.0, 3600.0, runs=(0.077,)),
        EngineTrial("openvino", 0.072, 116.0, 1900.0, runs=(0.072,)),
        EngineTrial("refused", 0.010, MIN_PSNR - 5, 100.0, runs=(0.010,))), "2026-01-01T00:00:00")
    engines = {"torch": _Sleeper(0.077, 800.0), "ncnn": _Sleeper(0.030, 3600.0), "openvino": _Sleeper(0.068, 1900.0)}
    built: list[str] = []

    def build(engine: str) -> _Sleeper:
        built.append(engine)
        return engines[engine]

    second = recheck(first, build, None)
    assert sorted(built) == ["ncnn", "openvino", "torch"]  # the refused engine is not measured again
    assert second.measurements == 2 and not second.final and second.side == 64
    trials = {t.engine: t for t in second.trials}
    assert trials["ncnn"].runs[0] == 0.077 and 0.030 <= trials["ncnn"].runs[1] < 0.060
    assert trials["ncnn"].seconds == pytest.approx(sum(trials["ncnn"].runs) / 2)
    assert trials["refused"] == first.trials[3] and trials["ncnn"].psnr == 116.0
    assert second.engine == "ncnn" and "faster than openvino" in second.reason
    assert trials["ncnn"].describe().startswith(f"{trials['ncnn'].seconds:.3f} s (mean of 2), 116 dB, 3.5 KB/px")
    assert recheck(second, build, None).measurements == MEASUREMENTS  # the last one: final
    assert EngineChoice.from_json(json.loads(json.dumps(second.to_json()))) == second


def test_a_choice_is_due_for_a_recheck_an_hour_later_until_it_is_final() -> None:
    choice = EngineChoice("ncnn", "", 64, 2, (EngineTrial("torch", 1.0),), "2026-03-01T12:00:00")
    at = datetime.datetime(2026, 3, 1, 12, 0, 0)
    assert not choice.due(at + datetime.timedelta(minutes=59)) and choice.due(at + datetime.timedelta(minutes=61))
    final = EngineChoice("ncnn", "", 64, 2, (EngineTrial("torch", 1.0),), "2026-03-01T12:00:00", MEASUREMENTS)
    assert final.final and not final.due(at + datetime.timedelta(days=30)) and final.progress() == "final (3)"
    old = {k: v for k, v in choice.to_json().items() if k != "measurements"}  # a record from before re-checks
    assert EngineChoice.from_json(old).measurements == 1


def _user_copy(weights_dir: Path, folder: Path, name: str, perturb: float = 0.0) -> None:
    """The animevideov3 weights saved as a user file (optionally with its last convolution changed)."""
    state = core.load_model("realesr-animevideov3", weights_dir).descriptor.model.state_dict()
    state = {k: v.clone().contiguous() for k, v in state.items()}
    if perturb:
        last = [k for k in state if k.endswith(".weight") and state[k].ndim == 4][-1]
        state[last] *= 1 + perturb
    folder.mkdir(exist_ok=True)
    save_file(state, str(folder / f"{name}.safetensors"))


def _crop() -> np.ndarray:
    return core.load_sample("chelsea")[60:100, 200:240].astype(np.uint16) * 257


@pytest.mark.slow
def test_auto_measures_per_machine_pools_later_measurements_and_runs_what_it_measured(
        weights_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "weights"
    _user_copy(weights_dir, folder, "my-anime")  # no ncnn file: PyTorch against OpenVINO
    info = core.model_info("my-anime", folder)
    assert auto_engine(info) is None and cpu_engine_label(info) == "measured on first load"
    stages: list[str] = []
    first = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder, status=stages.append)
    choice = first.engine_choice
    assert choice is not None and {t.engine for t in choice.trials} == {"torch", "openvino"}
    assert first.engine == choice.engine and any("measuring" in s for s in stages)
    fastest = min(t.seconds for t in choice.trials)
    chosen = next(t for t in choice.trials if t.engine == choice.engine)
    assert chosen.seconds <= fastest * (1 + TIE) and all(t.agrees for t in choice.trials)
    assert choice.side >= 64 and choice.threads == torch.get_num_threads()
    kept = json.loads((folder / FILE_NAME).read_text())["choices"]
    assert len(kept) == 1 and next(iter(kept)).endswith(info.fingerprint)
    written = (folder / FILE_NAME).stat().st_mtime_ns

    second = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder)  # remembered: no new measurement
    assert second.engine_choice == choice and (folder / FILE_NAME).stat().st_mtime_ns == written
    assert choice.measurements == 1 and cpu_engine_label(info) == f"{choice.engine} (measured 1 of 3)"
    reference = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder, engine="torch")
    assert psnr(second.upscale(_crop()).image / 65535, reference.upscale(_crop()).image / 65535) >= MIN_PSNR

    monkeypatch.setattr(_engine_choice, "RECHECK_AFTER_S", 0.0)  # as if an hour had passed between loads
    for count in range(2, MEASUREMENTS + 1):
        stages.clear()
        later = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder, status=stages.append)
        pooled = later.engine_choice
        assert pooled is not None and pooled.measurements == count and later.engine == pooled.engine
        assert any(f"measurement {count} of {MEASUREMENTS}" in s for s in stages)
        for trial in pooled.trials:
            assert len(trial.runs) == count and trial.seconds == pytest.approx(sum(trial.runs) / count)
            assert trial.runs[:count - 1] == next(t for t in choice.trials if t.engine == trial.engine).runs
        choice = pooled
    assert auto_engine(info) == choice and cpu_engine_label(info) == f"{choice.engine} (measured)"
    written = (folder / FILE_NAME).stat().st_mtime_ns
    assert core.Upscaler.load("my-anime", device="cpu", weights_dir=folder).engine_choice == choice  # final
    assert (folder / FILE_NAME).stat().st_mtime_ns == written

    assert forget_engine(info) and auto_engine(info) is None
    again = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder).engine_choice
    assert again is not None and again.trials != choice.trials  # measured anew


@pytest.mark.slow
def test_ncnn_is_not_chosen_for_weights_that_are_not_the_ncnn_files(weights_dir: Path, tmp_path: Path) -> None:
    """An official file name with other weights: the ncnn files exist but compute another network."""
    folder = tmp_path / "weights"
    _user_copy(weights_dir, folder, "realesr-animevideov3", perturb=0.05)
    upscaler = core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=folder)
    choice = upscaler.engine_choice
    assert choice is not None and upscaler.info.source.startswith("official file")
    ncnn = next(t for t in choice.trials if t.engine == "ncnn")
    assert ncnn.psnr is not None and ncnn.psnr < MIN_PSNR and "ncnn not used" in choice.reason
    assert upscaler.engine != "ncnn"
    reference = core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=folder, engine="torch")
    assert psnr(upscaler.upscale(_crop()).image / 65535, reference.upscale(_crop()).image / 65535) >= MIN_PSNR


_LOAD = """
import json, sys, pathlib, core
up = core.Upscaler.load("my-anime", device="cpu", weights_dir=pathlib.Path(sys.argv[1]))
print(json.dumps(up.engine_choice.to_json()))
"""


@pytest.mark.slow
def test_processes_starting_together_measure_once(weights_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    _user_copy(weights_dir, folder, "my-anime")
    procs = [subprocess.Popen([sys.executable, "-c", _LOAD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert first == second  # one measured, the other waited on the lock and read it
    assert len(json.loads((folder / FILE_NAME).read_text())["choices"]) == 1


def test_off_the_cpu_or_with_a_forced_engine_nothing_is_measured(weights_dir: Path) -> None:
    forced = core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir, engine="torch")
    bf16 = core.Upscaler.load("realesr-animevideov3", device="cpu", precision="bf16", weights_dir=weights_dir)
    assert forced.engine_choice is None and bf16.engine_choice is None and bf16.engine == "torch"


@pytest.mark.slow
@pytest.mark.parametrize("again", [False, True])
def test_the_engines_command_prints_each_engine_and_the_choice(weights_dir: Path, tmp_path: Path, capsys,
                                                               again: bool) -> None:
    from cli.main import main

    folder = tmp_path / "weights"
    _user_copy(weights_dir, folder, "my-anime")
    assert main(["--weights-dir", str(folder), "engines", "my-anime"]) == 0
    first = capsys.readouterr().out
    args = ["--weights-dir", str(folder), "engines", "my-anime"] + (["--again"] if again else [])
    assert main(args) == 0
    out = capsys.readouterr()
    row = next(line for line in out.out.splitlines() if line.startswith("my-anime "))
    choice = auto_engine(core.model_info("my-anime", folder))
    assert choice is not None and row.split()[1] == choice.engine and "px probe" in row
    assert ("measuring" in out.err) == again and (row in first) != again  # kept, or measured anew
    assert main(["--weights-dir", str(folder), "engines", "no-such-model"]) == 2


def test_studio_engine_forces_an_engine_everywhere_and_a_bad_one_is_a_clear_error(weights_dir: Path,
                                                                                   monkeypatch) -> None:
    monkeypatch.setenv("STUDIO_ENGINE", "openvino")
    assert core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir).engine == "openvino"
    assert core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir,
                              engine="torch").engine == "torch"  # an explicit engine still wins
    monkeypatch.setenv("STUDIO_ENGINE", "tensorrt")
    with pytest.raises(errors.SettingsError, match="STUDIO_ENGINE='tensorrt' is not an engine; use one of auto"):
        core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir)
