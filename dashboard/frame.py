"""The frame around every page: page config and the shared sidebar (model, device, precision, tile).

It knows no page: the entry script (``dashboard/app.py``) navigates over :data:`pages.PAGES`.
"""

from __future__ import annotations

import os

import streamlit as st
from PIL import Image

import core
from dashboard import restore
from dashboard.jobs import jobs
from dashboard.loading import load_upscaler, model_status
from dashboard.widgets import remember_widgets

API_DOCS_ENV = "STUDIO_API_DOCS"  # set by `python -m api.serve`, which serves the API beside the dashboard


def _at_least_min_tile() -> None:
    tile = st.session_state.get("tile")
    if tile is not None and 0 < tile < core.MIN_TILE:
        st.session_state.tile = core.MIN_TILE
        st.session_state.tile_raised = True


def sidebar() -> None:
    st.sidebar.header("Model")
    infos = core.list_models()
    names = [info.name for info in infos if info.available]
    default = names.index(core.DEFAULT_MODEL) if core.DEFAULT_MODEL in names else 0
    st.sidebar.selectbox("Model", names, index=default, key="model",
                         help="Models with weights available offline or in the weights folder.")
    st.sidebar.selectbox("Device", ["auto", *core.available_devices()], key="device")
    st.sidebar.selectbox("Precision", core.PRECISIONS, key="precision",
                         help="auto: fp16 on CUDA where the model supports it, fp32 elsewhere.")
    st.sidebar.number_input("Tile size (0 = no tiling)", min_value=0, max_value=2048, value=None,
                            step=32, key="tile", placeholder="auto", on_change=_at_least_min_tile,
                            help=f"Tiles bound memory use; auto picks the largest default that fits in free memory "
                                 f"(RAM on the CPU, GPU memory on CUDA); 0 runs the image whole where it fits. "
                                 f"At least {core.MIN_TILE} px. The result line shows the tile used.")
    if st.session_state.pop("tile_raised", False):
        st.sidebar.info(f"Tiles are at least {core.MIN_TILE} px (smaller ones cost more in context than they "
                        "save); the tile size was set to that.")
    with st.sidebar:
        upscaler = load_upscaler(st.session_state.model)
        if upscaler is not None:
            st.caption(f"In use: {upscaler.describe()}")
            if st.session_state.get("tile") is None:
                auto = upscaler.resolve(core.UpscaleSettings())
                st.caption(f"Auto tile now: {auto.tile} px with {auto.tile_pad} px context (fits free memory; "
                           f"in steps of {core.upscale.TILE_STEP} px).")
        else:
            model_status(st.session_state.model)
    missing = [info for info in infos if not info.available]
    if missing:
        with st.sidebar.expander(f"{len(missing)} models not available"):
            for info in missing:
                st.caption(f"**{info.name}**: {info.reason}")
    docs = os.environ.get(API_DOCS_ENV)
    if docs:  # served with the API (python -m api.serve): say where its docs are
        st.sidebar.markdown(f"[HTTP API docs]({docs}) · the same models, from scripts")


@st.cache_resource(show_spinner=False)
def _favicon() -> Image.Image:
    """A 64-px crop of a bundled sample, served by our server (a material-icon favicon is fetched from Google)."""
    return Image.fromarray(core.to_display(core.resize(core.load_sample("chelsea")[60:300, 180:420], (64, 64), "area")))


def setup(*, with_sidebar: bool = True) -> None:
    st.set_page_config(page_title="Real-ESRGAN studio", page_icon=_favicon(), layout="wide")
    try:
        core.check_environment()  # a wrong STUDIO_* variable: said once, before any page runs on it
    except core.StudioError as exc:
        st.error(f"The studio cannot start: {exc}")
        st.stop()
    remember_widgets()
    restore.session_token()  # in the address, so a reload (F5) finds this session's last result
    restore.reattach(lambda job_id: jobs().get(job_id) is not None)  # F5 during a job: before any widget
    if with_sidebar:
        sidebar()

