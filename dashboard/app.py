"""Streamlit entry: page config, shared sidebar (model, device, precision, tile), navigation."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from pages import upscale  # noqa: E402

st.set_page_config(page_title="Real-ESRGAN studio", page_icon="🔍", layout="wide")


def sidebar() -> None:
    st.sidebar.header("Model")
    infos = core.list_models()
    models = [info for info in infos if info.available]
    names = [info.name for info in models]
    default = names.index(core.DEFAULT_MODEL) if core.DEFAULT_MODEL in names else 0
    st.sidebar.selectbox("Model", names, index=default, key="model",
                         help="Models with weights available offline or in the weights folder.")
    st.sidebar.selectbox("Device", ["auto", *core.available_devices()], key="device")
    st.sidebar.selectbox("Precision", ["auto", "fp32", "fp16", "bf16"], key="precision",
                         help="auto: fp16 on CUDA where the model supports it, fp32 elsewhere.")
    st.sidebar.number_input("Tile size (0 = no tiling)", min_value=0, max_value=2048, value=None,
                            step=32, key="tile", placeholder="auto",
                            help="Tiles bound memory use; auto picks a size for the device.")
    missing = [info for info in infos if not info.available]
    if missing:
        with st.sidebar.expander(f"{len(missing)} models not available offline"):
            for info in missing:
                st.caption(f"**{info.name}**: {info.reason}")


sidebar()
navigation = st.navigation([st.Page(upscale.render, title="Upscale & Compare", icon="🔍",
                                    url_path="upscale", default=True)])
navigation.run()
