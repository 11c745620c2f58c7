"""Outputs made elsewhere (``name=folder``): matched to the inputs, checked, scored and stored like a model's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import core
from cli.main import main
from core.errors import DatasetError, SettingsError
from core.evaluation import OutsideMethod, match_outputs, run_method, split_methods


def _touch(folder: Path, *names: str) -> OutsideMethod:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        core.write_png(folder / name, np.zeros((4, 4, 3), np.uint8))
    return OutsideMethod("made", folder)


def test_files_are_matched_by_the_inputs_name_then_by_what_follows_a_separator(tmp_path: Path) -> None:
    method = _touch(tmp_path / "out", "0801.png", "0802_out.png", "0803-upscayl-4x.webp.png", "img1_x4.png",
                    "img10.png", "notes.png", ".hidden_0804.png")
    items = {"0801": ["0801"], "0802": ["0802"], "0803": ["0803"], "0804": ["0804"], "img1": ["img1"],
             "img10": ["img10"]}
    matched = match_outputs(method, items)
    assert {item: path.name for item, path in matched.files.items()} == {
        "0801": "0801.png", "0802": "0802_out.png", "0803": "0803-upscayl-4x.webp.png", "img1": "img1_x4.png",
        "img10": "img10.png"}  # img10 is not img1's output, nor img1_x4 img10's
    assert matched.unmatched == ("0804",) and not matched.by_order  # a hidden file is not an output
    assert "no output for 1 input(s): 0804" in matched.note()


def test_an_lr_files_stem_matches_too_and_an_exact_name_wins_over_a_prefix(tmp_path: Path) -> None:
    method = _touch(tmp_path / "out", "0801x4_out.png", "0802.png", "0802_old.png", "0803_a.png", "0803_b.png")
    matched = match_outputs(method, {"0801": ["0801", "0801x4"], "0802": ["0802"], "0803": ["0803"]})
    assert matched.files["0801"].name == "0801x4_out.png" and matched.files["0802"].name == "0802.png"
    assert "0803" not in matched.files and matched.ambiguous["0803"] == ("0803_a.png", "0803_b.png")
    assert "0803 matches 0803_a.png, 0803_b.png" in matched.note()
    with pytest.raises(DatasetError, match="several files match it: 0803_a.png, 0803_b.png"):
        matched.read("0803", (4, 4), 3)


def test_unrelated_names_are_matched_by_order_and_say_so_or_refused_when_the_counts_differ(tmp_path: Path) -> None:
    method = _touch(tmp_path / "out", "frame10.png", "frame2.png", "frame1.png")
    matched = match_outputs(method, {"a": ["a"], "b": ["b"], "c": ["c"]})
    assert matched.by_order and [p.name for p in matched.files.values()] == ["frame1.png", "frame2.png", "frame10.png"]
    assert "3 files matched to the inputs by order" in matched.note()
    with pytest.raises(DatasetError, match="none of the 3 images .* counts differ"):
        match_outputs(method, {"a": ["a"], "b": ["b"]})
    with pytest.raises(DatasetError, match="holds no image"):
        match_outputs(OutsideMethod("empty", _touch(tmp_path / "empty").path), {"a": ["a"]})


def test_method_specs_are_checked_before_any_work(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "out", "a.png").path
    names, outside = split_methods(["bicubic", f"upscayl={folder}", "RealESRGAN_x4plus"])
    assert names == ["bicubic", "upscayl", "RealESRGAN_x4plus"] and outside["upscayl"].path == folder
    for spec, message in [(f"bicubic={folder}", "not one of bicubic"), (f"../x={folder}", "letters, digits"),
                          ("made=", "no folder or image"), (f"made={tmp_path / 'missing'}", "no folder or image"),
                          (f"made={tmp_path / 'out' / 'a.txt'}", "no folder or image")]:
        with pytest.raises(SettingsError, match=message):
            split_methods([spec])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SettingsError, match="is not an image"):
        split_methods([f"made={tmp_path / 'notes.txt'}"])
    with pytest.raises(SettingsError, match="names two methods"):
        split_methods([f"made={folder}", f"made={folder}"])


def test_an_output_of_another_size_or_colour_is_a_clear_error_and_opaque_alpha_is_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    core.write_png(folder / "opaque.png", np.concatenate([rgb, np.full((8, 6, 1), 255, np.uint8)], axis=2))
    core.write_png(folder / "clear.png", np.concatenate([rgb, np.zeros((8, 6, 1), np.uint8)], axis=2))
    core.write_png(folder / "greyish.png", np.repeat(rgb[..., :1], 3, axis=2))
    matched = match_outputs(OutsideMethod("made", folder), {n: [n] for n in ("opaque", "clear", "greyish")})
    np.testing.assert_array_equal(matched.read("opaque", (8, 6), 3), rgb)
    np.testing.assert_array_equal(matched.read("greyish", (8, 6), 1), rgb[..., :1])  # a grey input stays grey
    with pytest.raises(DatasetError, match="has transparency"):
        matched.read("clear", (8, 6), 3)
    with pytest.raises(DatasetError, match="in colour; its input is grey"):
        matched.read("opaque", (8, 6), 1)
    with pytest.raises(DatasetError, match=r"is 6x8; it is compared at 12x16 \(0.5x"):
        matched.read("opaque", (16, 12), 3)


@pytest.fixture
def samples_made_elsewhere(tmp_path: Path) -> tuple[core.evaluation.Dataset, Path]:
    """The bundled samples, and a folder of their Lanczos upscales named as Upscayl names its outputs."""
    dataset = core.open_dataset("samples", 4)
    folder = tmp_path / "upscayl"
    folder.mkdir()
    for item in dataset.items:
        lr, hr = dataset.load(item)
        made = run_method("lanczos", lr, hr.shape[:2])
        core.write_png(folder / f"{item.name}_upscayl_4x_realesrgan-x4plus.png", made)
    return dataset, folder


def test_outputs_made_elsewhere_score_as_the_method_that_made_them_and_are_stored_by_content(
        samples_made_elsewhere, tmp_path: Path) -> None:
    dataset, folder = samples_made_elsewhere
    db = core.ResultDB(tmp_path / "results.sqlite")
    metrics = ["psnr", "ssim"]
    first = core.evaluate(dataset, ["lanczos", f"upscayl={folder}"], metrics, db=db)
    assert first.methods == ["lanczos", "upscayl"] and first.computed == 12
    rows = {(r.image, r.method): r for r in first.rows}
    for item in dataset.items:
        made, ours = rows[(item.name, "upscayl")], rows[(item.name, "lanczos")]
        assert made.metrics == ours.metrics and not made.error  # the same pixels, the same scores
        assert made.weights.startswith("sha256:") and made.source == f"outputs in {folder}"
    again = core.evaluate(dataset, [f"upscayl={folder}"], metrics, db=db)
    assert again.reused == 6 and again.computed == 0
    # one output made again (another tool, the same name): that image alone is scored again
    target = folder / "chelsea_upscayl_4x_realesrgan-x4plus.png"
    lr, hr = dataset.load(next(i for i in dataset.items if i.name == "chelsea"))
    core.write_png(target, run_method("bicubic", lr, hr.shape[:2]))
    os.utime(target, ns=(1, 1))
    changed = core.evaluate(dataset, [f"upscayl={folder}"], metrics, db=db)
    assert changed.computed == 1 and changed.reused == 5
    redone = next(r for r in changed.rows if r.image == "chelsea")
    assert redone.metrics != rows[("chelsea", "upscayl")].metrics
    db.close()


def test_a_missing_or_misfit_output_is_an_error_row_and_the_others_are_scored(samples_made_elsewhere) -> None:
    dataset, folder = samples_made_elsewhere
    (folder / "rocket_upscayl_4x_realesrgan-x4plus.png").unlink()
    core.write_png(folder / "camera_upscayl_4x_realesrgan-x4plus.png", np.zeros((10, 10), np.uint8))
    heard: list[str] = []
    result = core.evaluate(dataset, [f"upscayl={folder}"], ["psnr"], hooks=core.EvalHooks(status=heard.append))
    errors = {r.image: r.error for r in result.rows if r.error}
    assert set(errors) == {"rocket", "camera"} and "is 10x10" in errors["camera"]
    assert "no output for rocket" in errors["rocket"]
    assert len([r for r in result.rows if not r.error]) == 4
    assert heard == [f"upscayl ({folder}): no output for 1 input(s): rocket"]


def test_compare_takes_an_image_made_elsewhere_as_a_pane(tmp_path: Path) -> None:
    lr = core.load_sample("chelsea")[:40, :48]
    made = run_method("lanczos", lr, (160, 192))
    core.write_png(tmp_path / "mine.png", made)
    folder = tmp_path / "folder"
    folder.mkdir()
    core.write_png(folder / "cat_out.png", made)
    core.write_png(folder / "dog_out.png", made[::-1])
    job = core.compare.CompareJob(lr, ("bicubic", f"mine={tmp_path / 'mine.png'}", f"theirs={folder}"),
                                  metrics=("niqe",), image_name="cat")
    result = core.compare.compare_methods(job, load=lambda name: pytest.fail(f"loaded {name}"))
    assert list(result.outputs) == ["bicubic", "mine", "theirs"]
    np.testing.assert_array_equal(result.outputs["mine"], made)
    np.testing.assert_array_equal(result.outputs["theirs"], made)  # the one named after the input
    assert result.scores["mine"] == result.scores["theirs"] and "lr-psnr" in result.scores["mine"]
    assert result.outputs["bicubic"].shape == made.shape  # the image made elsewhere set the grid
    with pytest.raises(DatasetError, match="none of the 2 images .* is named after one of the 1 inputs"):
        core.compare.compare_methods(core.compare.CompareJob(lr, (f"theirs={folder}",), image_name="bird"),
                                     load=core.Upscaler.load)


@pytest.mark.slow
def test_the_cli_evaluates_and_compares_outputs_made_elsewhere(samples_made_elsewhere, tmp_path: Path,
                                                                 capsys) -> None:
    dataset, folder = samples_made_elsewhere
    assert main(["evaluate", "--methods", f"lanczos,upscayl={folder}", "--metrics", "psnr", "--out",
                 str(tmp_path / "run"), "-q"]) == 0
    said = capsys.readouterr()
    lines = {line.split()[0]: line.split()[1] for line in (said.out + said.err).splitlines()
             if line.startswith(("lanczos", "upscayl"))}
    assert lines["upscayl"] == lines["lanczos"]
    assert main(["evaluate", "--methods", f"upscayl={tmp_path / 'nowhere'}", "--out", str(tmp_path / "r2")]) == 2
    assert "upscayl: no folder or image at" in capsys.readouterr().err and not (tmp_path / "r2").exists()
    lr = core.load_sample("coffee")[:32, :32]
    core.write_png(tmp_path / "coffee.png", lr)
    core.write_png(tmp_path / "mine.png", run_method("lanczos", lr, (128, 128)))
    assert main(["compare", str(tmp_path / "coffee.png"), "--methods", f"bicubic,mine={tmp_path / 'mine.png'}",
                 "--metrics", "niqe", "-o", str(tmp_path / "page.html"), "-q"]) == 0
    assert "2 images at 128x128" in capsys.readouterr().err
