"""The Benchmark page, driven with Streamlit's AppTest: background runs, stored runs, uploaded pairs.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from dashboard import charts
from tests.dashboard.apptest import open_page, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_benchmark_runs_in_the_background_and_reloads() -> None:
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["bicubic", "lanczos"]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr", "niqe"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    means = at.dataframe[0].value.set_index("method")
    assert set(means.index) == {"bicubic", "lanczos"} and (means["PSNR ↑"] > 20).all()
    assert means.loc["bicubic", "images"] == 6
    rows = at.dataframe[1].value
    assert len(rows) == 12 and rows["NIQE ↓"].notna().all()
    assert len(at.get("download_button")) == 3  # CSV, JSON and the paper table
    best = "**" + f"{means['PSNR ↑'].max():.2f}" + "**"  # the better method's PSNR, in bold
    assert best in at.code[0].value and "| Method | PSNR (dB) ↑ | NIQE ↓ |" in at.code[0].value
    at.radio(key="bench_table_format").set_value("latex").run()
    assert "\\textbf{" + best.strip("*") + "}" in at.code[0].value
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    assert len(specs) == 2 and specs[0]["height"] == specs[1]["height"]  # bar and per-image charts, side by side
    dots = specs[0]["layer"][0]
    assert dots["mark"]["type"] == "point" and dots["encoding"]["x"]["scale"]["zero"] is False  # a dot plot may
    low, high = dots["encoding"]["x"]["scale"]["domain"]  # span the data; a bar would have to start at zero
    assert low > 20 and low < means["PSNR ↑"].min() < means["PSNR ↑"].max() < high
    colours = dict(zip(dots["encoding"]["color"]["scale"]["domain"], dots["encoding"]["color"]["scale"]["range"]))
    assert colours["bicubic"] == charts.method_colours(["bicubic"])[0]  # one colour per method, whatever the run
    again = open_page("benchmark")  # a new session finds the run in the results folder
    assert again.selectbox(key="bench_run_pick").options and any(
        "Per-method means" in s.value for s in again.subheader)


@pytest.mark.slow
def test_a_damaged_run_is_listed_as_damaged_and_the_others_still_load(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = core.evaluate(core.open_dataset("samples", 4), ["bicubic"], ["psnr"])
    core.write_results(result, results / "20260101-000000")
    _, newest = core.write_results(result, results / "20260102-000000")
    newest.write_bytes(newest.read_bytes()[:200])  # killed mid-write by the old code, or a full disk
    at = open_page("benchmark")
    pick = at.selectbox(key="bench_run_pick")
    assert pick.options == ["20260102-000000 (damaged)", "20260101-000000"]
    assert pick.value == "20260101-000000"  # the newest readable run is the default
    assert any("Per-method means" in s.value for s in at.subheader)
    pick.set_value("20260102-000000").run()
    assert not at.exception
    assert any("damaged" in e.value and "results.json" in e.value for e in at.error)


def test_the_benchmark_page_says_what_a_mean_leaves_out(tmp_path: Path) -> None:
    """Issue 38.7: a PSNR of +inf (an output identical to its HR) is left out of the mean, and the page says so."""
    result = core.evaluation.EvalResult("set", 4, "MATLAB bicubic", ["bicubic"], ["psnr"], core.EvalSettings())
    result.rows = [core.evaluation.EvalRow(name, "bicubic", {"psnr": value}, 0.1, "cpu", "fp32", "test")
                   for name, value in (("a", float("inf")), ("b", 30.0), ("c", 32.0))]
    core.write_results(result, tmp_path / "results" / "20260101-000000")
    at = open_page("benchmark")
    assert not at.exception
    notes = [c.value for c in at.caption if "left out" in c.value]
    assert notes == ["⚠ bicubic · PSNR: mean of 2 of 3 images; left out: 1 +inf (an output identical to its "
                     "reference)"], [c.value for c in at.caption]


@pytest.mark.slow
def test_uploaded_pairs_are_exactly_the_current_uploads_and_go_with_the_session() -> None:
    import gc

    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Uploaded HR / LR pairs").run()
    crops = {name: core.encode_png(core.load_sample(name)[:64, :64]) for name in ("rocket", "coffee")}
    at.file_uploader(key="bench_hr").set_value([(f"{n}.png", data, "image/png") for n, data in crops.items()]).run()
    assert not at.exception
    assert any("2 images" in m.value for m in at.markdown), [m.value for m in at.markdown]
    root = at.session_state["bench_uploads"].root
    at.file_uploader(key="bench_hr").set_value([("rocket.png", crops["rocket"], "image/png")]).run()
    assert any("1 images" in m.value for m in at.markdown), [m.value for m in at.markdown]
    sets = list(root.iterdir())
    assert len(sets) == 1 and [p.name for p in (sets[0] / "hr").iterdir()] == ["rocket.png"]  # coffee is gone
    del at
    gc.collect()
    assert not root.exists()  # the session is gone, and so are its uploads


@pytest.mark.slow
def test_an_uploaded_pair_with_other_names_pairs_by_order_and_no_temporary_path_is_shown() -> None:
    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Uploaded HR / LR pairs").run()
    hr = core.load_sample("coffee")[:64, :64]
    at.file_uploader(key="bench_hr").set_value([("pair_hr.png", core.encode_png(hr), "image/png")]).run()
    at.file_uploader(key="bench_lr").set_value([("pair_lr.png", core.encode_png(core.imresize(hr, 0.25)),
                                                 "image/png")]).run()
    assert not at.error, [e.value for e in at.error]  # it was "no LR partner in /tmp/studio-upload-…"
    assert any("pair_hr.png ↔ pair_lr.png" in c.value for c in at.caption)
    assert any(m.value.startswith("uploads: pair_hr.png: 1 images") for m in at.markdown)
    at.file_uploader(key="bench_lr").set_value([("pair_lr.png", core.encode_png(hr[:8, :8]), "image/png")]).run()
    at.file_uploader(key="bench_hr").set_value([("pair_hr.png", core.encode_png(hr), "image/png"),
                                                ("other.png", core.encode_png(hr), "image/png")]).run()
    message = at.error[0].value  # two HR, one LR: nothing pairs them, and the message says so without the path
    assert "no LR partner" in message and "the LR uploads" in message and "studio-upload" not in message


@pytest.mark.slow
def test_a_second_benchmark_run_is_the_one_shown() -> None:
    """The Results picker keeps its own state: after a run it must move to the run just made, not stay on the
    one it showed before."""
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["bicubic"]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    first = at.selectbox(key="bench_run_pick").value
    assert list(at.dataframe[0].value["method"]) == ["bicubic"]
    at.multiselect(key="bench_methods").set_value(["lanczos"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: a.selectbox(key="bench_run_pick").value != first and any(
        "Per-method means" in s.value for s in a.subheader))
    second = at.selectbox(key="bench_run_pick").value
    assert list(at.dataframe[0].value["method"]) == ["lanczos"]  # the new run's numbers, not the first one's
    assert any(second in s.value and "Finished" in s.value for s in at.success)
    assert second in at.selectbox(key="bench_run_pick").options and first in at.selectbox(key="bench_run_pick").options


@pytest.mark.slow
def test_a_real_world_lr_only_folder_is_benchmarked_with_no_reference_metrics(tmp_path: Path) -> None:
    for name in ("cat", "coffee"):
        core.write_png(tmp_path / "RealSRSet" / f"{name}.png", core.load_sample(
            "chelsea" if name == "cat" else "coffee")[:32, :40])
    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Folder: real-world LR only (no HR)").run()
    at.text_input(key="bench_lr_path").input(str(tmp_path / "RealSRSet")).run()
    assert "hr" not in at.multiselect(key="bench_methods_lr").options  # nothing to compare with
    assert at.multiselect(key="bench_metrics_lr").value == core.METRICS.names("no-reference", ready=True)
    at.multiselect(key="bench_methods_lr").set_value(["bicubic", "lanczos"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    means = at.dataframe[0].value.set_index("method")
    assert list(means.columns[:1]) == ["NIQE ↓"] and (means["NIQE ↓"] > 0).all() and (means["images"] == 2).all()
    assert any("real-world LR (no ground truth)" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_folder_of_outputs_made_elsewhere_is_benchmarked_as_a_method(tmp_path: Path) -> None:
    """NAME=FOLDER under the methods: matched to the samples (what is missing said before the run), scored as the
    method that made the files scores, and an unusable folder is one message with the run disabled."""
    dataset = core.open_dataset("samples", 4)
    folder = tmp_path / "theirs"
    folder.mkdir()
    for item in dataset.items[:-1]:  # the last one is missing
        lr, hr = dataset.load(item)
        core.write_png(folder / f"{item.name}_out.png", core.evaluation.run_method("lanczos", lr, hr.shape[:2]))
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["lanczos"]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr"]).run()
    at.text_area(key="bench_outside").set_value(f"theirs={tmp_path / 'nowhere'}").run()
    assert any("no folder or image at" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="bench_run_button").disabled
    at.text_area(key="bench_outside").set_value(f"lanczos={folder}").run()
    assert any("not one of bicubic, bicubic-opencv, lanczos, hr" in e.value for e in at.error)
    at.multiselect(key="bench_methods").set_value(["lanczos", "realesr-animevideov3"]).run()
    at.text_area(key="bench_outside").set_value(f"realesr-animevideov3={folder}").run()
    assert any("realesr-animevideov3 is already a method above" in e.value for e in at.error)
    at.multiselect(key="bench_methods").set_value(["lanczos"]).run()
    at.text_area(key="bench_outside").set_value(f"theirs={folder}").run()
    missing = dataset.items[-1].name
    assert any(f"no output for 1 input(s): {missing}" in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    means = at.dataframe[0].value.set_index("method")
    assert means.loc["theirs", "images"] == 5 and means.loc["lanczos", "images"] == 6
    rows = at.dataframe[1].value
    ours = rows[rows["method"] == "lanczos"].set_index("image")["PSNR ↑"]
    made = rows[rows["method"] == "theirs"].set_index("image")["PSNR ↑"].dropna()
    assert len(made) == 5 and (made == ours[made.index]).all()  # the same pixels, the same scores
