"""The Models & System page, driven with Streamlit's AppTest: models, metric weights, downloads.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import core
from tests.dashboard.apptest import open_page, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_models_and_system_page(x4plus: core.Upscaler) -> None:
    at = open_page("models")
    table = at.table[0].value.join(at.table[1].value)  # static tables: long sources wrap, nothing is cut
    assert "source" not in at.table[0].value.columns  # the sources in their own table, in an expander
    available = {i.name for i in core.list_models() if i.available}
    assert set(table.index) == available and "RealESRGAN_x4plus" in available
    assert table.loc["RealESRGAN_x4plus", "parameters"] == "16.70 M" and table.loc["RealESRGAN_x4plus", "fp16"] == "yes"
    # what engine="auto" runs it with: the engine its first load here measured fastest (more measurements
    # come on loads an hour or more later)
    assert x4plus.engine_choice is not None and table.loc["RealESRGAN_x4plus", "CPU engine"] == \
        f"{x4plus.engine} (measured 1 of {core.engines.MEASUREMENTS})"
    assert table.loc["RealESRGAN_x4plus", "source"].endswith("/RealESRGAN_x4plus.pth)")  # the official file's link
    assert not table.isna().any().any(), "a cell would show 'None'"
    engines = next(df.value for df in at.dataframe if "why" in df.value.columns).set_index("model")
    assert engines.loc["RealESRGAN_x4plus", "engine"] == x4plus.engine
    assert engines.loc["RealESRGAN_x4plus", "measured"] == f"1 of {core.engines.MEASUREMENTS}"
    assert engines.loc["RealESRGAN_x4plus", "torch"].endswith(" s")
    assert engines.loc["RealESRGAN_x4plus", "why"] == x4plus.engine_choice.reason
    missing = next(m.value for m in at.markdown if "**RealESRNet_x4plus**" in m.value)  # with how to get it
    assert "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/RealESRNet_x4plus.pth" in missing
    assert any(s.value.startswith("Not available here (") for s in at.subheader)
    system = next(df.value for df in at.dataframe if "value" in df.value.columns)
    assert "torch" in system[""].tolist() and "ram available / total (GB)" in system[""].tolist()
    at.button(key="clear_models").click().run()
    assert "cleared" in at.success[0].value


@pytest.mark.slow
def test_a_failed_download_is_an_error_message_and_the_page_stays_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Models page's background download through the shared job helper: served from loopback, the file is
    not a model, so the job fails; its message shows once, and the Download button is back."""
    import dataclasses

    from core.models import _catalogue
    from tests.loopback import LoopbackServer

    spec = core.models.CATALOGUE["RealESRNet_x4plus"]
    with LoopbackServer({"/bad.pth": b"not a model" * 100}) as server:
        monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/bad.pth"))
        at = open_page("models")
        at.selectbox(key="dl_model").set_value(spec.name).run()
        at.button(key="dl_go").click().run()
        if not at.error:  # a failure within milliseconds is already shown by the click's own run
            wait(at, lambda a: bool(a.error))
    assert "not a usable model" in at.error[0].value and "run again" in at.error[0].value
    assert not at.success and [b for b in at.button if b.key == "dl_go"]
    at.run()
    assert not at.error, "the outcome is shown once"


@pytest.mark.slow
def test_the_models_page_lists_metric_weights_and_an_offline_download_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from core.metrics import _lpips, _torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ImageNet backbone here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no CLIP in ~/.cache/clip
    with socket.socket() as sock:  # a port nothing listens on: the machine is offline for this download
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setattr(_torchvision, "_source", lambda net: f"http://127.0.0.1:{closed}/vgg16-397923af.pth")
    monkeypatch.setattr(_lpips, "_HEADS_URL", f"http://127.0.0.1:{closed}/{{net}}.pth")
    at = open_page("models")
    table = next(d for d in at.dataframe if "metric" in d.value.columns).value.set_index("metric")
    assert list(table.index) == ["lpips-alex", "lpips-vgg", "dists", "clipiqa", "clipiqa-ensemble", "musiq",
                                 "musiq-spaq", "musiq-paq2piq", "musiq-ava"]
    assert set(table["here"]) == {"no"}
    assert "MIT" in table.loc["dists", "licences"]
    assert "BSD-2-Clause" in table.loc["lpips-alex", "licences"] and "alexnet-owt-7be5be79.pth" in table.loc[
        "lpips-alex", "files"]
    at.selectbox(key="metric_dl_name").set_value("lpips-vgg").run()
    at.button(key="metric_dl_go").click().run()
    if not at.error:  # a failure within milliseconds is already shown by the click's own run
        wait(at, lambda a: bool(a.error))
    assert "Could not download" in at.error[0].value and not at.exception  # offline: said, not a traceback
    assert [b for b in at.button if b.key == "metric_dl_go"]  # and the button is back
