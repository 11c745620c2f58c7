"""The batch pipeline from the core alone (no CLI): output plans, the local executor, its hooks and refusals.
The Ray executor runs the same pipeline in tests/cluster/test_ray.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core
from core._ours import mark_png
from core.errors import SettingsError
from core.pipeline import (
    EXECUTORS,
    BatchJob,
    LocalExecutor,
    ModelRun,
    executor_for,
    list_inputs,
    plan_outputs,
    run_batch,
)

MODEL = "realesr-animevideov3"


def _photos(folder: Path) -> Path:
    folder.mkdir()
    for i, name in enumerate(("chelsea", "coffee")):
        core.write_png(folder / f"{i}.png", core.load_sample(name)[40:88, 60:100])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_batch_into_its_own_folder_writes_outputs_beside_its_inputs_and_skips_them_next_time(
        weights_dir: Path, tmp_path: Path) -> None:
    folder = _photos(tmp_path / "in")
    files = list_inputs([str(folder)])
    assert files == [folder / "0.png", folder / "1.png"]
    plan = plan_outputs(files, folder)  # the folder holds the inputs: outputs get _out
    assert plan.names == ("0_out.png", "1_out.png")
    settings = core.UpscaleSettings(outscale=2, tile=32)
    job = BatchJob(plan, ModelRun(MODEL, device="cpu", weights_dir=weights_dir), settings)
    tiles: list[tuple[int, int, str]] = []
    statuses: list[str] = []
    hooks = core.EvalHooks(progress=lambda done, total, label: tiles.append((done, total, label)),
                           status=statuses.append)
    events = list(run_batch(job, LocalExecutor("torch"), hooks))
    assert [(e.status, Path(e.target).name, e.worker) for e in events] == [("written", "0_out.png", None),
                                                                          ("written", "1_out.png", None)]
    assert events[0].size == (80, 96) and events[0].seconds > 0
    assert statuses and MODEL in statuses[0]  # the model and its engine, said before the first image
    assert {label for _, _, label in tiles} == {str(folder / "0.png"), str(folder / "1.png")}
    assert all(total > 1 for _, total, _ in tiles) and tiles[-1][0] == tiles[-1][1]  # tiles of 32 px, each counted
    upscaler = core.Upscaler.load(MODEL, device="cpu", weights_dir=weights_dir, engine="torch")
    expected = core.encode_png(upscaler.upscale(core.read_image(folder / "0.png"), settings).image)
    assert (folder / "0_out.png").read_bytes() == mark_png(expected)  # the same PNG, marked as the studio's
    # again, into the same folder: the outputs are not taken for inputs, and are left as they are
    kept = (folder / "0_out.png").read_bytes()
    again = plan_outputs(list_inputs([str(folder)]), folder)
    assert again.inputs == (folder / "0.png", folder / "1.png")
    events = list(run_batch(BatchJob(again, job.model, settings, skip_existing=True), LocalExecutor("torch")))
    assert [e.status for e in events] == ["skipped", "skipped"] and (folder / "0_out.png").read_bytes() == kept


def test_cancel_stops_between_images_and_bad_inputs_are_events(weights_dir: Path, tmp_path: Path) -> None:
    folder = _photos(tmp_path / "in")
    (folder / "2.png").write_bytes(b"not a png")
    plan = plan_outputs(list_inputs([str(folder)]), tmp_path / "out")
    (tmp_path / "out").mkdir()
    job = BatchJob(plan, ModelRun(MODEL, device="cpu", weights_dir=weights_dir), core.UpscaleSettings(tile=0))
    events = list(run_batch(job, LocalExecutor("torch")))
    assert [e.status for e in events] == ["written", "written", "failed"] and "2.png" in str(events[2].source)
    assert events[2].error and not (tmp_path / "out" / "2.png").exists()
    seen: list[str] = []
    hooks = core.EvalHooks(cancel=lambda: bool(seen))
    for event in run_batch(BatchJob(plan_outputs(list_inputs([str(folder)]), tmp_path / "out2"), job.model,
                                    job.settings), LocalExecutor("torch"), hooks):
        seen.append(event.status)
    assert seen == ["written"]


def test_what_this_machine_cannot_do_is_refused_before_any_work(weights_dir: Path, tmp_path: Path) -> None:
    folder = _photos(tmp_path / "in")
    model = ModelRun(MODEL, device="cpu", weights_dir=weights_dir)
    shared = BatchJob(plan_outputs(list_inputs([str(folder)]), tmp_path / "out"), model, core.UpscaleSettings(),
                      shared_output=True)
    with pytest.raises(SettingsError, match="--shared-output is for --ray"):
        next(run_batch(shared, LocalExecutor()))
    to_store = BatchJob(plan_outputs(list_inputs([str(folder)]), "s3://bucket/out/"), model, core.UpscaleSettings())
    assert to_store.outputs.dest == "s3://bucket/out" and to_store.outputs.target(0) == "s3://bucket/out/0.png"
    with pytest.raises(SettingsError, match="written by cluster workers"):
        next(run_batch(to_store, LocalExecutor()))
    with pytest.raises(SettingsError, match="add --ray"):
        list_inputs(["s3://bucket/in/"], uris=False)
    (tmp_path / "linked").mkdir()
    os.link(folder / "0.png", tmp_path / "linked" / "0.png")  # another name of an input: never written over
    with pytest.raises(SettingsError, match="would replace the input"):
        plan_outputs([folder / "0.png"], tmp_path / "linked", suffix="")
    assert not (tmp_path / "out").exists()
    assert isinstance(executor_for(None), LocalExecutor) and EXECUTORS.names() == ("ray",)
    with pytest.raises(core.errors.UnknownNameError, match="Unknown executor 'dask'; known: local, ray"):
        EXECUTORS.get("dask")
