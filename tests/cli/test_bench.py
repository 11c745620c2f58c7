"""The benchmark harness in quick mode: structure and output agreement (not timings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from cli.bench import BenchPlan, conv_flops_per_pixel, format_table, rows_to_json, run_bench
from cli.main import main


def test_flop_count_matches_the_architecture(weights_dir: Path) -> None:
    x4plus = core.load_model("RealESRGAN_x4plus", weights_dir).descriptor
    flops = conv_flops_per_pixel(x4plus.model, 4)
    # 17.9 M multiply-adds per LR pixel (23 RRDBs + two 2x upsampling stages) = 35.9 MFLOP
    assert 35.5e6 < flops < 36.2e6, flops / 1e6
    compact = core.load_model("realesr-animevideov3", weights_dir).descriptor
    expected = 2 * (3 * 64 * 9 + 16 * 64 * 64 * 9 + 64 * 48 * 9)  # 18 convolutions (16nc)
    assert abs(conv_flops_per_pixel(compact.model, 4) - expected) < 1


def test_quick_bench_rows_and_agreement(weights_dir: Path) -> None:
    rows, info = run_bench(BenchPlan(["realesr-animevideov3"], [24], ["ours", "pytorch", "ncnn"], device="cpu",
                                     repeats=1, rounds=2, subprocesses=False))
    assert {r.engine for r in rows} == {"ours", "pytorch", "ncnn"} and info["threads"] == torch.get_num_threads()
    by = {r.engine: r for r in rows}
    assert by["pytorch"].psnr_vs_pytorch == float("inf")
    assert by["ncnn"].psnr_vs_pytorch > 100 and by["ours"].psnr_vs_pytorch > 60
    for row in rows:
        assert row.median_s > 0 and row.min_s <= row.median_s <= row.max_s and row.gflops > 0
        assert row.runs == 2  # one timed run in each of two rounds
        assert abs(row.lr_mp_per_s - 24 * 24 / 1e6 / row.median_s) < 1e-9
    table = format_table(rows)
    assert "ours/ncnn time" in table and "ours/pytorch time" in table
    payload = json.loads(rows_to_json(rows, info))
    assert payload["machine"]["cpu"] and len(payload["rows"]) == 3


@pytest.mark.slow
def test_bench_cli_quick_mode_with_subprocesses(weights_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--models", "realesr-animevideov3", "--engines", "ours,ncnn,pytorch",
                 "--out", str(out), "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "realesr-animevideov3" in printed and "PSNR vs pytorch" in printed
    rows = json.loads(out.read_text())["rows"]
    assert {r["engine"] for r in rows} == {"ours", "ncnn", "pytorch"} and all(r["peak_rss_mb"] > 50 for r in rows)


@pytest.mark.slow
def test_bench_runs_a_user_file_from_the_weights_dir_given(weights_dir: Path, tmp_path: Path, capsys) -> None:
    """`--weights-dir` reaches the engine processes: a user file that only that folder holds is benched."""
    from safetensors.torch import save_file

    state = core.load_model("realesr-animevideov3", weights_dir).descriptor.model.state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "my-anime.safetensors"))
    out = tmp_path / "bench.json"
    code = main(["--weights-dir", str(folder), "bench", "--quick", "--models", "my-anime", "--engines",
                 "ours:torch,pytorch", "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(out.read_text())["rows"]
    assert {(r["engine"], r["model"]) for r in rows} == {("ours:torch", "my-anime"), ("pytorch", "my-anime")}
    assert next(r for r in rows if r["engine"] == "ours:torch")["psnr_vs_pytorch"] > 60


@pytest.mark.slow
def test_engines_agree_and_can_be_forced(weights_dir: Path) -> None:
    image = core.load_sample("chelsea")[100:140, 200:240].astype(np.uint16) * 257
    ncnn = core.Upscaler.load("RealESRGAN_x4plus_anime_6B", device="cpu", weights_dir=weights_dir, engine="ncnn")
    torch_engine = core.Upscaler.load("RealESRGAN_x4plus_anime_6B", device="cpu", weights_dir=weights_dir,
                                      engine="torch")
    assert ncnn.engine == "ncnn" and torch_engine.engine == "torch"
    a = ncnn.upscale(image, core.UpscaleSettings(tile=32)).image / 65535.0
    b = torch_engine.upscale(image, core.UpscaleSettings(tile=32)).image / 65535.0
    assert 10 * np.log10(1 / np.mean((a - b) ** 2)) > 60
    try:
        core.Upscaler.load("RealESRGAN_x4plus", device="cpu", precision="bf16", weights_dir=weights_dir,
                           engine="ncnn")
    except core.errors.DeviceUnavailableError as exc:
        assert "ncnn engine is not available" in str(exc)
    else:
        raise AssertionError("ncnn in bf16 must be refused")


def test_variants_of_ours_measure_each_speed_path(weights_dir: Path) -> None:
    engines = ["ours:batch=2:tile=32", "ours:nchw:torch", "pytorch", "ncnn-vulkan"]
    skipped: list[str] = []
    rows, _ = run_bench(BenchPlan(["realesr-animevideov3"], [24], engines, device="cpu", repeats=1,
                                  subprocesses=False), log=skipped.append)
    by = {r.engine: r for r in rows}
    measured = core.engines.auto_engine(core.model_info("realesr-animevideov3", weights_dir))  # what plain "ours" runs
    assert measured is not None
    assert by["ours:batch=2:tile=32"].note.startswith(f"engine {measured.engine}, fp32, tile 32, batch 2")
    assert "engine torch" in by["ours:nchw:torch"].note and "NCHW" in by["ours:nchw:torch"].note
    assert by["ours:batch=2:tile=32"].psnr_vs_pytorch > 60 and by["ours:nchw:torch"].psnr_vs_pytorch > 60
    if "ncnn-vulkan" not in by:  # no Vulkan GPU here: said so, not a crash
        assert any("ncnn-vulkan" in line and "skipped" in line for line in skipped)
    table = format_table(rows)
    assert "ours:nchw:torch/pytorch time" in table


def test_unknown_engines_and_options_are_refused_before_running(capsys) -> None:
    from cli.bench import parse_engine

    assert parse_engine("ours:batch=4:compile=reduce-overhead:nchw") == (
        "ours", {"batch": "4", "compile": "reduce-overhead", "nchw": ""})
    for bad in ("tensorrt", "ours:fastest", "ncnn:batch=2"):
        with pytest.raises(ValueError):
            parse_engine(bad)
    assert main(["bench", "--quick", "--engines", "ours,ours:turbo", "-q"]) == 2
    assert "ours:turbo" in capsys.readouterr().err
    assert main(["bench", "--rounds", "0", "-q"]) == 2
    assert "--rounds" in capsys.readouterr().err
