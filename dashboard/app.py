"""Streamlit entry script: the frame (page config, shared sidebar) and navigation over the pages."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # without `pip install -e .`, `streamlit run` only has dashboard/ on the path
    sys.path.insert(0, str(ROOT))

if "core" not in sys.modules:  # the first run of a server process imports PyTorch & co. (seconds): say so
    starting = st.empty()
    starting.caption("Starting the studio (loading PyTorch)…")
from dashboard import frame  # noqa: E402
from pages import PAGES  # noqa: E402

if "starting" in globals():
    starting.empty()
frame.setup()
st.navigation([st.Page(render, title=title, icon=icon, url_path=path, default=path == "upscale")
               for path, (render, title, icon) in PAGES.items()]).run()
