"""Upscale & Compare: pick a sample or upload, upscale, compare with bicubic, download."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

import core
from dashboard import cache

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"]


def _source_image() -> tuple[np.ndarray, str] | None:
    choice = st.radio("Image", ["Bundled sample", "Upload"], horizontal=True, key="source")
    if choice == "Upload":
        upload = st.file_uploader("Upload an image", type=UPLOAD_TYPES, key="upload")
        if upload is None:
            st.info("Upload a PNG, JPEG, WebP, BMP or TIFF image (16-bit and alpha are kept).")
            return None
        try:
            return cache.decode(upload.getvalue()), upload.name.rsplit(".", 1)[0]
        except core.StudioError as exc:
            st.error(f"{upload.name}: {exc}")
            return None
    samples = core.list_samples()
    name = st.selectbox("Sample", samples, index=samples.index("chelsea") if "chelsea" in samples else 0,
                        key="sample")
    return core.load_sample(name), name


def _crop(image: np.ndarray, on_cpu: bool) -> np.ndarray:
    height, width = image.shape[:2]
    crop = st.checkbox("Upscale only a centre region (fast on CPU)", value=on_cpu and max(height, width) > 160,
                       key="roi")
    if not crop:
        return image
    size = st.slider("Region size (input pixels)", 32, max(32, min(512, height, width)),
                     min(128, height, width), step=16, key="roi_size")
    top, left = (height - min(size, height)) // 2, (width - min(size, width)) // 2
    return image[top : top + size, left : left + size]


def render() -> None:
    st.title("Upscale & Compare")
    source = _source_image()
    if source is None:
        return
    image, stem = source
    try:
        upscaler = cache.get_upscaler(st.session_state.model, st.session_state.device,
                                      st.session_state.precision)
    except core.StudioError as exc:
        st.error(f"Cannot load {st.session_state.model}: {exc}")
        return
    st.caption(upscaler.describe())
    image = _crop(image, upscaler.choice.device == "cpu")
    outscale = st.number_input("Output scale", 0.25, 16.0, float(upscaler.scale), 0.25, key="outscale")
    alpha = st.selectbox("Alpha channel", ["model", "bicubic", "drop"], key="alpha",
                         disabled=image.shape[2] != 4)
    settings = core.UpscaleSettings(outscale=outscale, tile=st.session_state.tile, alpha=alpha)
    key = (cache.image_key(image), upscaler.info.name, upscaler.choice.device,
           upscaler.choice.precision, settings)
    store = cache.result_store()
    st.write(f"Input: {core.image_info(image)}")
    if key not in store and st.button("Upscale", type="primary", key="run"):
        bar = st.progress(0.0, text="Starting…")
        start = time.perf_counter()

        def on_progress(done: int, total: int) -> None:
            elapsed = time.perf_counter() - start
            eta = elapsed / done * (total - done)
            bar.progress(done / total, text=f"Tile {done}/{total} · {elapsed:.1f} s elapsed · ETA {eta:.1f} s")

        try:
            store.put(key, upscaler.upscale(image, settings, progress=on_progress))
        except core.StudioError as exc:
            st.error(str(exc))
            return
        finally:
            bar.empty()
    result = store.get(key)
    if result is None:
        return
    out = result.image
    baseline = cache.bicubic(image, key[0], out.shape[:2], "bicubic")
    st.success(f"{result.model} · {result.device} · {result.precision} · {result.seconds:.2f} s · "
               f"{core.image_info(out)}")
    left, right = st.columns(2)
    left.image(core.to_display(baseline), caption="Bicubic (OpenCV)", width="stretch")
    right.image(core.to_display(out), caption=result.model, width="stretch")
    st.download_button("Download PNG", core.encode_png(out), file_name=f"{stem}_{result.model}.png",
                       mime="image/png", key="download")
