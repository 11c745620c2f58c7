"""Our own before/after comparison component: inline HTML/CSS/JS, no network, lossless PNG.

Two or three images are drawn on one output grid (so a bicubic result, a model result and
the HR reference line up pixel for pixel), with a draggable divider (mouse, touch,
keyboard), synchronised zoom (wheel, buttons, up to 16 screen pixels per image pixel, with
nearest-neighbour rendering from 2x) and pan, a 1:1 view, side-by-side and flicker modes.

Large images: the component receives a downscaled preview (longest side at most
``PREVIEW_MAX``); :func:`comparison` then offers a full-resolution region view.
"""

from __future__ import annotations

import base64
import json
from importlib import resources

import numpy as np
import streamlit as st

import core

PREVIEW_MAX = 1600
REGION = 384


def _data_uri(image: np.ndarray) -> str:
    display = core.to_display(image)
    return "data:image/png;base64," + base64.b64encode(core.encode_png(display, compression=1)).decode()


def _template() -> str:
    return (resources.files("dashboard") / "components" / "slider.html").read_text(encoding="utf-8")


def slider_html(images: list[tuple[str, np.ndarray]], grid: tuple[int, int], *, height: int = 520,
                one_to_one: float = 1.0, note: str = "") -> str:
    """The component's HTML for ``images`` (label, array) drawn on a ``(width, height)`` grid."""
    payload = [{"label": label, "src": _data_uri(image)} for label, image in images]
    html = _template()
    # JSON inside <script>: escape "</" so a label can never close the script element.
    images_json = json.dumps(payload).replace("</", "<\\/")
    for key, value in (("__IMAGES__", images_json), ("__GRID__", json.dumps(list(grid))),
                       ("__HEIGHT__", str(height)), ("__ONE__", repr(float(one_to_one))),
                       ("__NOTE__", note.replace("<", "&lt;"))):
        html = html.replace(key, value)
    return html


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[:2] == size else core.resize(image, size, "area")


def comparison(images: list[tuple[str, np.ndarray]], *, key: str, height: int = 520) -> None:
    """Show the comparison of 2-3 images; the first image's size is the output grid.

    Images larger than :data:`PREVIEW_MAX` are shown as a preview, with a full-resolution
    region (chosen with two sliders) shown in a second comparison below.
    """
    if len(images) < 2:
        raise ValueError("comparison needs at least two images")
    full_h, full_w = images[0][1].shape[:2]
    factor = min(1.0, PREVIEW_MAX / max(full_h, full_w))
    size = (max(1, round(full_h * factor)), max(1, round(full_w * factor)))
    # Everything else on the first image's grid (e.g. a reference of another size).
    aligned = [(label, _fit(image, (full_h, full_w)) if image.shape[:2] != (full_h, full_w) else image)
               for label, image in images]
    shown = [(label, _fit(image, size)) for label, image in aligned]
    note = f"preview {size[1]}x{size[0]} of {full_w}x{full_h}" if factor < 1 else f"{full_w}x{full_h}"
    st.iframe(slider_html(shown, (size[1], size[0]), height=height, one_to_one=1.0 / factor, note=note),
              height=height + 48)
    if factor < 1:
        st.caption("Full-resolution region (the preview above is downscaled to keep the page responsive):")
        left, right = st.columns(2)
        cx = left.slider("Region centre x", 0, full_w, full_w // 2, key=f"{key}_rx")
        cy = right.slider("Region centre y", 0, full_h, full_h // 2, key=f"{key}_ry")
        half = REGION // 2
        x0 = int(np.clip(cx - half, 0, max(0, full_w - REGION)))
        y0 = int(np.clip(cy - half, 0, max(0, full_h - REGION)))
        crops = [(label, image[y0 : y0 + REGION, x0 : x0 + REGION]) for label, image in aligned]
        ch, cw = crops[0][1].shape[:2]
        st.iframe(slider_html(crops, (cw, ch), height=height, note=f"region at ({x0}, {y0})"), height=height + 48)
