"""Streamlit entry script: the frame (page config, shared sidebar) and navigation over the pages."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # without `pip install -e .`, `streamlit run` only has dashboard/ on the path
    sys.path.insert(0, str(ROOT))

from dashboard import frame  # noqa: E402

frame.setup()
frame.navigation()
