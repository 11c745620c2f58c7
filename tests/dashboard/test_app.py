"""The dashboard, driven with Streamlit's AppTest (real script runs, real model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def app(weights_dir: Path) -> AppTest:  # weights_dir sets STUDIO_WEIGHTS_DIR for the app
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_opens_on_defaults_with_offline_models(app: AppTest) -> None:
    assert app.title[0].value == "Upscale & Compare"
    models = app.sidebar.selectbox(key="model")
    assert models.value == "RealESRGAN_x4plus"
    assert "realesr-animevideov3" in models.options and "RealESRNet_x4plus" not in models.options
    assert any("weights:" in c.value and "ncnn" in c.value for c in app.caption)
    assert app.selectbox(key="sample").value == "chelsea"
    assert app.checkbox(key="roi").value  # CPU: a fast centre region by default


def test_upscale_a_sample_and_compare_with_bicubic(app: AppTest) -> None:
    app.sidebar.selectbox(key="model").set_value("realesr-animevideov3").run()
    app.slider(key="roi_size").set_value(64).run()
    app.button(key="run").click().run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert "realesr-animevideov3" in app.success[0].value and "256x256 RGB 8-bit" in app.success[0].value
    assert len(app.get("image")) == 2
    assert app.get("download_button")
    # same inputs again: the stored result is shown at once, no button to run again
    app.run()
    assert not _has_button(app)
    assert "realesr-animevideov3" in app.success[0].value and len(app.get("image")) == 2
    # a different region is a different input: it needs a new run
    app.slider(key="roi_size").set_value(48).run()
    assert _has_button(app) and not app.success


def _has_button(app: AppTest) -> bool:
    try:
        app.button(key="run")
    except KeyError:
        return False
    return True
