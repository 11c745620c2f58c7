"""engine="auto" on the CPU: each model's engine measured once per machine, kept, and honoured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import core
from core._engine_choice import FILE_NAME, MIN_PSNR, TIE, EngineTrial, pick
from tests.conftest import psnr

ROOT = Path(__file__).resolve().parents[2]


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


def test_auto_measures_once_per_machine_and_runs_what_it_measured(weights_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    _user_copy(weights_dir, folder, "my-anime")  # no ncnn file: PyTorch against OpenVINO
    info = core.model_info("my-anime", folder)
    assert core.auto_engine(info) is None and core.cpu_engine_label(info) == "measured on first load"
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
    assert core.cpu_engine_label(info) == f"{choice.engine} (measured)"
    reference = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder, engine="torch")
    assert psnr(second.upscale(_crop()).image / 65535, reference.upscale(_crop()).image / 65535) >= MIN_PSNR

    assert core.forget_engine(info) and core.auto_engine(info) is None
    again = core.Upscaler.load("my-anime", device="cpu", weights_dir=folder).engine_choice
    assert again is not None and again.trials != choice.trials  # measured anew


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
    choice = core.auto_engine(core.model_info("my-anime", folder))
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
    with pytest.raises(core.SettingsError, match="STUDIO_ENGINE='tensorrt' is not an engine; use one of auto"):
        core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir)
