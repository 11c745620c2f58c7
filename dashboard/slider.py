"""The comparison component: the core's viewer (:func:`core.compare.viewer_html`: inline HTML/CSS/JS, no
network, lossless PNG) in a frame.

Two to six images are drawn on one output grid (so a bicubic result, model results and the HR
reference line up pixel for pixel): a grid of every pane, a divider between any two (mouse, touch,
keyboard), side by side, flicker and |A − B|, with synchronised zoom and pan (kept across a
resize), keys 1-9 to pick the compared pane, and each pane's maps (SSIM against the reference,
LR consistency) where given.

Large images: the frame receives a downscaled preview (longest side at most ``PREVIEW_MAX``);
:func:`comparison` then offers a full-resolution region view.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core.compare import Pane, viewer_html

PREVIEW_MAX = 1600
REGION = 384


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[:2] == size else core.resize(image, size, "area")


def _panes(images: list[tuple[str, np.ndarray] | Pane]) -> list[Pane]:
    return [item if isinstance(item, Pane) else Pane(item[0], item[1]) for item in images]


def comparison(images: list[tuple[str, np.ndarray] | Pane], *, key: str, height: int = 520,
               mode: str = "slider") -> None:
    """Show the comparison of 2-6 images (``(label, image)`` or :class:`~core.compare.Pane` with scores and
    maps); the first image's size is the output grid.

    Images larger than :data:`PREVIEW_MAX` are shown as a preview, with a full-resolution
    region (chosen with two sliders) shown in a second comparison below.
    """
    panes = _panes(images)
    if len(panes) < 2:
        raise ValueError("comparison needs at least two images")
    full_h, full_w = panes[0].image.shape[:2]
    factor = min(1.0, PREVIEW_MAX / max(full_h, full_w))
    size = (max(1, round(full_h * factor)), max(1, round(full_w * factor)))
    # Everything else on the first image's grid (e.g. a reference of another size).
    aligned = [p if p.image.shape[:2] == (full_h, full_w) else Pane(p.label, _fit(p.image, (full_h, full_w)),
                                                                    p.caption, {}) for p in panes]
    note = f"preview {size[1]}x{size[0]} of {full_w}x{full_h}" if factor < 1 else f"{full_w}x{full_h}"
    st.iframe(viewer_html(aligned, size=size, height=height, one_to_one=1.0 / factor, note=note, mode=mode),
              height=height + 104)
    if factor < 1:
        st.caption("Full-resolution region (the preview above is downscaled to keep the page responsive; "
                   "the downloadable comparison page holds every image at full resolution):")
        left, right = st.columns(2)
        cx = left.slider("Region centre x", 0, full_w, full_w // 2, key=f"{key}_rx")
        cy = right.slider("Region centre y", 0, full_h, full_h // 2, key=f"{key}_ry")
        half = REGION // 2
        x0 = int(np.clip(cx - half, 0, max(0, full_w - REGION)))
        y0 = int(np.clip(cy - half, 0, max(0, full_h - REGION)))
        crops = [Pane(p.label, p.image[y0 : y0 + REGION, x0 : x0 + REGION], p.caption) for p in aligned]
        st.iframe(viewer_html(crops, height=height, note=f"region at ({x0}, {y0})", mode=mode), height=height + 104)
