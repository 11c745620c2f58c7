"""The comparison component: the core's viewer (:func:`core.compare.viewer_html`: inline HTML/CSS/JS, no
network, lossless PNG) in a frame.

Two to six images are drawn on one output grid (so a bicubic result, model results and the HR
reference line up pixel for pixel): a grid of every pane, a divider between any two (mouse, touch,
keyboard), side by side, flicker and |A − B|, with synchronised zoom and pan (kept across a
resize), keys 1-9 to pick the compared pane, and each pane's maps (SSIM against the reference,
LR consistency) where given.

Large images: the frame receives a downscaled preview (longest side at most ``PREVIEW_MAX``). Past
100 % of the preview, the viewer asks for the part in view through a small bridge component
(``st.components.v2``, in the page itself): the next run answers with that part at full resolution,
which the viewer lays over the preview. Real pixels at any zoom, without sending the whole image.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core.compare import Pane, image_uri, viewer_html

PREVIEW_MAX = 1600
TILE_MAX = 2048  # px: the largest side of a full-resolution part sent at once (centred on the view)

_BRIDGE_JS = """
export default function (component) {
  const { data, setStateValue } = component;
  const ask = (event) => {
    if (event.detail && event.detail.key === data.key) setStateValue("view", event.detail);
  };
  document.addEventListener("studio-view", ask);
  let tries = 0;
  const send = () => {  // to the viewer frame of this key, once it is there
    for (const frame of document.querySelectorAll("iframe")) {
      try {
        const viewer = frame.contentWindow && frame.contentWindow.studioViewer;
        if (viewer && viewer.key === data.key) { viewer.addTiles(data.tiles); return; }
      } catch (e) { /* another origin: not ours */ }
    }
    if (tries++ < 40) setTimeout(send, 100);
  };
  if (data.tiles) send();
  return () => document.removeEventListener("studio-view", ask);
}
"""
_bridge = st.components.v2.component("studio_viewer_bridge", js=_BRIDGE_JS)


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[:2] == size else core.resize(image, size, "area")


def _panes(images: list[tuple[str, np.ndarray] | Pane]) -> list[Pane]:
    return [item if isinstance(item, Pane) else Pane(item[0], item[1]) for item in images]


def _part(rect: list[int], full: tuple[int, int]) -> tuple[int, int, int, int]:
    """``rect`` in the full image, clipped, at most :data:`TILE_MAX` a side (around its centre)."""
    height, width = full
    x0, y0, x1, y1 = (int(v) for v in rect)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    if x1 - x0 > TILE_MAX:
        x0 = (x0 + x1) // 2 - TILE_MAX // 2
        x1 = x0 + TILE_MAX
    if y1 - y0 > TILE_MAX:
        y0 = (y0 + y1) // 2 - TILE_MAX // 2
        y1 = y0 + TILE_MAX
    return x0, y0, x1, y1


def _tiles(key: str, aligned: list[Pane]) -> dict | None:
    """The full-resolution part the viewer of ``key`` asked for, as data URIs (``None`` before it asks)."""
    view = st.session_state.get(f"{key}_bridge")
    view = getattr(view, "view", None) if not isinstance(view, dict) else view.get("view")
    if not view or not view.get("rect"):
        return None
    x0, y0, x1, y1 = _part(view["rect"], aligned[0].image.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return None
    shown = [int(i) for i in view.get("panes", []) if 0 <= int(i) < len(aligned)]
    return {"rect": [x0, y0, x1, y1], "srcs": {i: image_uri(aligned[i].image[y0:y1, x0:x1]) for i in shown}}


@st.cache_data(show_spinner=False, max_entries=4)
def _viewer(_panes: list[Pane], size: tuple[int, int], height: int, one_to_one: float, note: str, mode: str,
            bridge: str | None, cache_key: str) -> str:
    """:func:`viewer_html`, kept by ``cache_key`` (what made the panes): six 1600-px panes with their maps
    take about 2 s to encode, and every rerun of the page would encode them again."""
    return viewer_html(_panes, size=size, height=height, one_to_one=one_to_one, note=note, mode=mode, bridge=bridge)


def comparison(images: list[tuple[str, np.ndarray] | Pane], *, key: str, height: int = 520,
               mode: str = "slider", cache_key: str | None = None) -> None:
    """Show the comparison of 2-6 images (``(label, image)`` or :class:`~core.compare.Pane` with scores and
    maps); the first image's size is the output grid. Images larger than :data:`PREVIEW_MAX` are shown as a
    preview, with real pixels past 100 %. ``cache_key``: what made the images, to encode them once."""
    panes = _panes(images)
    if len(panes) < 2:
        raise ValueError("comparison needs at least two images")
    full_h, full_w = panes[0].image.shape[:2]
    factor = min(1.0, PREVIEW_MAX / max(full_h, full_w))
    size = (max(1, round(full_h * factor)), max(1, round(full_w * factor)))
    # Everything else on the first image's grid (e.g. a reference of another size).
    aligned = [p if p.image.shape[:2] == (full_h, full_w) else Pane(p.label, _fit(p.image, (full_h, full_w)),
                                                                    p.caption, {}) for p in panes]
    preview = factor < 1
    note = f"preview {size[1]}x{size[0]} of {full_w}x{full_h}" if preview else f"{full_w}x{full_h}"
    args = (size, height, 1.0 / factor, note, mode, key if preview else None)
    page = _viewer(aligned, *args, cache_key) if cache_key else viewer_html(
        aligned, size=size, height=height, one_to_one=1.0 / factor, note=note, mode=mode, bridge=args[-1])
    st.iframe(page, height=height + 104)
    if preview:
        _bridge(key=f"{key}_bridge", data={"key": key, "tiles": _tiles(key, aligned)}, on_view_change=lambda: None,
                height=0)
        st.caption(f"A {full_w}x{full_h} result is shown as a {size[1]}x{size[0]} preview; zoom past 100 % and "
                   "the part in view loads at full resolution (the downloadable comparison page holds every "
                   "image at full resolution).")
