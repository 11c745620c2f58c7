"""The dashboard as a whole, driven with Streamlit's AppTest: the entry script, the sidebar, page switches,
the model cache and the server's settings. Each page has its own module beside this one.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core
from tests.dashboard.apptest import APP, open_page, run_pages, run_switchable, settle, slow_loads, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_entry_script_opens_on_defaults_with_offline_models() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Upscale & Compare"
    settle(at)
    models = at.sidebar.selectbox(key="model")
    assert models.value == "RealESRGAN_x4plus"
    assert "realesr-animevideov3" in models.options and "RealESRNet_x4plus" not in models.options
    assert any("In use: RealESRGAN_x4plus · cpu · fp32" in c.value and "ncnn" in c.value for c in at.sidebar.caption)
    assert any(re.search(r"Auto tile now: \d+ px with 24 px context", c.value) for c in at.sidebar.caption)
    assert any("RealESRNet_x4plus" in c.value and "Download it" in c.value for c in at.sidebar.caption)
    assert at.selectbox(key="up_sample").value == "chelsea" and at.checkbox(key="roi").value


@pytest.mark.slow
def test_the_sidebar_links_to_the_api_docs_where_the_api_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m api.serve` serves /docs beside the dashboard and says so; `streamlit run` alone has no API."""
    assert not any("API docs" in m.value for m in open_page("models").sidebar.markdown)
    monkeypatch.setenv("STUDIO_API_DOCS", "/docs")
    assert any("[HTTP API docs](/docs)" in m.value for m in open_page("models").sidebar.markdown)


def test_the_sidebar_shows_a_loading_model(monkeypatch: pytest.MonkeyPatch) -> None:

    from dashboard import cache

    cache.model_loads().clear()
    gate = slow_loads(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["precision"] = "fp32"  # a key no other test has loaded
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Upscale & Compare"
    assert any("Loading **RealESRGAN_x4plus** on auto" in i.value for i in at.sidebar.info)
    gate.set()
    settle(at)
    assert not at.sidebar.info and any("In use: RealESRGAN_x4plus · cpu · fp32" in c.value for c in at.sidebar.caption)


def test_a_tile_below_the_minimum_is_raised_with_a_note() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.sidebar.number_input(key="tile").set_value(5).run()
    assert not at.exception, at.exception
    assert at.sidebar.number_input(key="tile").value == core.MIN_TILE
    assert any(f"at least {core.MIN_TILE} px" in info.value for info in at.sidebar.info)


@pytest.mark.slow
def test_settings_survive_page_switches_and_hidden_modes() -> None:
    at = AppTest.from_function(run_pages, default_timeout=120)
    at.run()
    at.selectbox(key="lab_preset").set_value("mild").run()
    at.number_input(key="lab_seed").set_value(7).run()
    at.selectbox(key="lab_sample").set_value("rocket").run()
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()  # hides preset and seed
    at.number_input(key="fx_seed").set_value(3).run()
    at.radio(key="lab_mode").set_value("Preset + seed (sampled)").run()
    assert at.selectbox(key="lab_preset").value == "mild" and at.number_input(key="lab_seed").value == 7
    at.session_state["_test_page"] = "models"  # another page: none of the lab's widgets are drawn
    at.run()
    at.run()
    assert not at.exception, at.exception
    at.session_state["_test_page"] = "degradation"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="lab_sample").value == "rocket"
    assert at.selectbox(key="lab_preset").value == "mild" and at.number_input(key="lab_seed").value == 7
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    assert at.number_input(key="fx_seed").value == 3


@pytest.mark.slow
def test_the_dashboard_keeps_no_model_the_core_has_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's cache is bounded; the dashboard's load tracker must not hold models beyond it."""
    import gc
    import types
    import weakref

    from core.upscale import _shared
    from dashboard.cache import ModelLoads

    class Model:
        measurement_due = False

    monkeypatch.setattr(_shared, "Upscaler", types.SimpleNamespace(load=lambda name, **kw: Model()))
    core.clear_shared()
    loads, key = ModelLoads(), ("m", "cpu", "fp32")
    first = loads.start(key).result(10)
    assert loads.start(key).result(0) is first  # loaded: answered at once from the core's cache
    gone = weakref.ref(first)
    del first
    core.clear_shared()  # the core lets it go (least recently used, or short of memory)
    gc.collect()
    assert gone() is None
    assert isinstance(loads.start(key).result(10), Model)  # asked for again: loaded again
    core.clear_shared()


@pytest.mark.slow
def test_settings_and_result_survive_a_page_switch() -> None:
    """Region on/off, size and position and the output scale stay as set when the user visits another page
    and comes back; so does the finished result, which is keyed on them."""
    at = AppTest.from_function(run_switchable, default_timeout=120)
    settle(at.run())
    at.sidebar.selectbox(key="model").set_value("realesr-animevideov3").run()
    at.slider(key="roi_size").set_value(64).run()
    at.slider(key="roi_x").set_value(40).run()
    at.number_input(key="outscale").set_value(2.0).run()
    at.button(key="run").click().run()
    wait(at, lambda a: any(s.value == "Metrics" for s in a.subheader))
    at.session_state["page"] = "models"
    at.run()
    assert not at.exception and not [s for s in at.slider if s.key == "roi_size"]  # the other page is shown
    at.session_state["page"] = "upscale"
    at.run()
    assert at.checkbox(key="roi").value and at.slider(key="roi_size").value == 64 and at.slider(key="roi_x").value == 40
    assert at.number_input(key="outscale").value == 2.0
    assert any(s.value == "Metrics" for s in at.subheader) and not [b for b in at.button if b.key == "run"]
    at.checkbox(key="roi").uncheck().run()
    at.session_state["page"] = "benchmark"
    at.run()
    at.session_state["page"] = "upscale"
    at.run()
    assert not at.checkbox(key="roi").value  # off stays off


def test_the_server_config_keeps_streamlit_from_slowing_the_work() -> None:
    """Streamlit's defaults slowed a running upscale 3x on two cores: ``gc.collect(2)`` after every script run
    (the job panels rerun twice a second) holds the GIL between PyTorch's layers, and the source watcher polls
    every imported file under the project, ``.venv`` included (benchmarks/first_result.py: 2.7 s instead of
    7.5-9.1 s for the default upscale, 13 s instead of 24 s to the first result)."""
    import tomllib

    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["runOnSave"] is False
