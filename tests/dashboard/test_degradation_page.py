"""The Degradation Lab page, driven with Streamlit's AppTest: stages, sweeps, saved parameters.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

import json
import time

import pytest

import core
from dashboard import charts
from tests.dashboard.apptest import open_page, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_degradation_lab_stages_fixed_mode_and_restore() -> None:
    at = open_page("degradation")
    captions = [image.proto.imgs[0].caption for image in at.get("image")]
    assert captions[0].startswith("input: 256x256")
    heat_maps = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    blur1 = next(spec for spec in heat_maps if spec["title"].startswith("blur 1 kernel ("))  # the kernel heat map...
    assert blur1["encoding"]["color"]["legend"]["title"] == "weight"  # ...with its colour scale
    assert any(c.startswith("blur 1: ") for c in captions) and any(c.startswith("output: 64x64") for c in captions)
    at.number_input(key="lab_seed").set_value(1).run()
    assert [image.proto.imgs[0].caption for image in at.get("image")] != captions  # another draw
    assert captions[1].startswith("usm sharpen: ")  # the preset degrades the sharpened HR, as Real-ESRGAN
    assert any("(simulated, as Real-ESRGAN)" in c for c in captions if c.startswith("jpeg 1: "))
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    assert not at.exception
    fixed = [image.proto.imgs[0].caption for image in at.get("image")]
    assert fixed[1].startswith("usm sharpen: ") and any("(simulated" in c for c in fixed if c.startswith("jpeg 1"))
    at.checkbox(key="fx_usm").uncheck().run()
    at.selectbox(key="fx_jpeg").set_value("opencv").run()
    fixed = [image.proto.imgs[0].caption for image in at.get("image")]
    assert not any(c.startswith("usm") for c in fixed) and "jpeg 1: quality 60 (OpenCV codec)" in fixed
    at.multiselect(key="lab_methods").set_value(["bicubic"]).run()
    at.button(key="lab_run").click().run()
    wait(at, lambda a: any(df.value.shape[0] == 1 and "PSNR ↑" in df.value.columns for df in a.dataframe))
    scores = next(df.value for df in at.dataframe if "PSNR ↑" in df.value.columns)
    assert scores["method"].tolist() == ["bicubic"] and 10 < scores["PSNR ↑"].iloc[0] < 40


@pytest.mark.slow
def test_the_sweep_chart_spans_the_scores_in_each_methods_colour() -> None:
    at = open_page("degradation")
    at.number_input(key="sweep_steps").set_value(3).run()
    at.multiselect(key="sweep_methods").set_value(["bicubic"]).run()
    assert at.selectbox(key="sweep_metric").options == [f"{core.METRICS[m].title} {core.METRICS[m].arrow}"
                                                         for m in core.METRICS.names(ready=True)]
    at.selectbox(key="sweep_metric").set_value("psnr").run()
    at.button(key="sweep_run").click().run()
    wait(at, lambda a: any("score" in json.loads(c.proto.spec)["encoding"].get("y", {}).get("field", "")
                           for c in a.get("vega_lite_chart") if "encoding" in json.loads(c.proto.spec)))
    spec = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart")
                if json.loads(c.proto.spec).get("encoding", {}).get("y", {}).get("field") == "score")
    scores = [p["score"] for p in at.session_state.sweep_points]
    low, high = spec["encoding"]["y"]["scale"]["domain"]
    assert spec["encoding"]["y"]["scale"]["zero"] is False and 0 < low < min(scores) <= max(scores) < high
    assert spec["encoding"]["color"]["scale"]["range"] == charts.method_colours(["bicubic"])


@pytest.mark.slow
def test_a_model_still_to_load_does_not_freeze_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run sweep with a model not loaded: the page used to wait for the load (15 s, no cancel). Now the job
    waits, with a status line and a Cancel button, and the page answers at once."""
    from dashboard import cache

    real, slow = core.shared_upscaler, "realesr-animevideov3"

    def loading(name, device="auto", precision="auto", *args, timeout=None, **kwargs):
        if name == slow:
            if timeout == 0:
                raise TimeoutError  # the core: not loaded yet
            time.sleep(8)
        return real(name, device, precision, *args, timeout=timeout, **kwargs)

    monkeypatch.setattr(core, "shared_upscaler", loading)
    cache.model_loads().clear()
    at = open_page("degradation")
    at.number_input(key="sweep_steps").set_value(2).run()
    at.multiselect(key="sweep_methods").set_value(["bicubic", slow]).run()
    start = time.monotonic()
    at.button(key="sweep_run").click().run()
    seconds = time.monotonic() - start
    assert not at.exception, at.exception
    assert seconds < 6, f"the page waited {seconds:.1f} s for the model (it loads for 8 s)"
    wait(at, lambda a: bool(a.session_state["sweep_points"]) if "sweep_points" in a.session_state else False)
    assert {p["method"] for p in at.session_state.sweep_points} == {"bicubic", slow}


@pytest.mark.slow
def test_saved_parameters_replay_exactly_in_fixed_mode() -> None:
    at = open_page("degradation")
    at.number_input(key="lab_seed").set_value(5).run()
    drawn = [image.proto.imgs[0].caption for image in at.get("image")]
    hr = core.load_sample("astronaut")
    top, left = (hr.shape[0] - 256) // 2, (hr.shape[1] - 256) // 2
    result = core.degrade(hr[top:top + 256, left:left + 256], core.PRESETS["realesrgan"], 5)
    saved = result.params.to_json().encode()  # what "Save these parameters" offers for this draw
    at.file_uploader(key="lab_load").set_value([("params.json", saved, "application/json")]).run()
    assert "holds drawn parameters, not a configuration" in at.error[0].value  # it was "Unknown ... final"
    at.file_uploader(key="lab_load").set_value([]).run()
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    at.file_uploader(key="lab_params_load").set_value([("params.json", saved, "application/json")]).run()
    assert not at.error and any("Replaying params.json exactly" in i.value for i in at.info)
    assert [image.proto.imgs[0].caption for image in at.get("image")] == drawn  # the same stages, the same draw
    wrapped = json.dumps({"seed": 5, "config": {}, "params": json.loads(saved)}).encode()  # degrade's own file
    at.file_uploader(key="lab_params_load").set_value([("a_params.json", wrapped, "application/json")]).run()
    assert [image.proto.imgs[0].caption for image in at.get("image")] == drawn
    at.selectbox(key="lab_scale").set_value(2).run()
    assert "drawn for x4: choose that scale" in at.error[0].value
