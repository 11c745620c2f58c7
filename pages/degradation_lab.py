"""Degradation Lab: see each Real-ESRGAN degradation stage, pin parameters, restore and score, sweep."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import streamlit as st

import core
from core import evaluation
from core.degradation import (
    JPEG_ENGINES,
    DegradationParams,
    DegradationResult,
    FinalParams,
    KernelParams,
    NoiseParams,
    StageParams,
    make_kernel,
    parse_degradation,
    parse_params,
)
from core.errors import ConfigError
from dashboard import cache, charts
from dashboard.errors import show_error
from dashboard.jobs import follow_job, start_job
from dashboard.loading import models_for_job
from dashboard.pickers import pick_image
from dashboard.slider import comparison
from dashboard.texts import metric_header
from dashboard.widgets import kept

KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc"]


def _kernel_picker(key: str, label: str, default_on: bool = True) -> KernelParams | None:
    if not st.checkbox(label, value=default_on, key=f"{key}_on"):
        return None
    cols = st.columns(4)
    kind = cols[0].selectbox("Type", KERNELS, key=f"{key}_type")
    size = cols[1].select_slider("Size", list(range(7, 22, 2)), value=15, key=f"{key}_size")
    if kind == "sinc":
        omega = cols[2].slider("Cut-off ω", np.pi / 5, np.pi, np.pi / 2, key=f"{key}_omega")
        return KernelParams("sinc", size, omega=omega)
    sx = cols[2].slider("σx", 0.2, 4.0, 1.5, 0.05, key=f"{key}_sx")
    sy = cols[3].slider("σy", 0.2, 4.0, 0.8, 0.05, key=f"{key}_sy", disabled="aniso" not in kind)
    cols = st.columns(2)
    theta = cols[0].slider("Rotation θ", -np.pi, np.pi, 0.5, key=f"{key}_theta", disabled="aniso" not in kind)
    beta = cols[1].slider("Shape β", 0.5, 4.0, 1.5, 0.05, key=f"{key}_beta",
                          disabled=not kind.startswith(("generalized", "plateau")))
    return KernelParams(kind, size, sx, sy, theta, beta)


def _noise_picker(key: str, seed: int) -> NoiseParams | None:
    cols = st.columns(3)
    kind = cols[0].selectbox("Noise", ["none", "gaussian", "poisson"], index=1, key=f"{key}_noise")
    if kind == "none":
        return None
    level = cols[1].slider("σ (0-255)" if kind == "gaussian" else "Poisson scale", 0.0,
                           50.0 if kind == "gaussian" else 4.0, 8.0 if kind == "gaussian" else 1.0, key=f"{key}_lvl")
    grey = cols[2].checkbox("Grey noise", key=f"{key}_grey")
    return NoiseParams(kind, level, grey, seed)


def _stage_picker(index: int, seed: int, jpeg_default: int | None) -> StageParams:
    st.markdown(f"**Stage {index}**")
    kernel = _kernel_picker(f"fx{index}", "Blur", default_on=True)
    cols = st.columns(2)
    factor = cols[0].slider("Resize factor", 0.15 if index == 1 else 0.3, 1.5 if index == 1 else 1.2,
                            0.5 if index == 1 else 1.0, 0.05, key=f"fx{index}_rf")
    mode = cols[1].selectbox("Resize mode", ["area", "bilinear", "bicubic"], key=f"fx{index}_rm")
    noise = _noise_picker(f"fx{index}", seed + index)
    quality = None
    if jpeg_default is not None:
        quality = st.slider("JPEG quality", 10, 100, jpeg_default, key=f"fx{index}_q")
    direction = "up" if factor > 1 else "down" if factor < 1 else "keep"
    return StageParams(kernel, direction, factor, mode, noise, quality)


JPEG_LABELS = {"diffjpeg": "simulated, as Real-ESRGAN trains (continuous quality)",
               "opencv": "real JPEG codec (OpenCV, integer quality)"}


def _fixed_params(scale: int) -> DegradationParams:
    cols = st.columns(3)
    seed = cols[0].number_input("Noise seed", 0, 2**31 - 1, key=kept("fx_seed", 0))
    usm = cols[1].checkbox("Unsharp-mask the HR first", key=kept("fx_usm", True),
                           help="Real-ESRGAN degrades its USM-sharpened ground truth (weight 0.5, 51 px, "
                                "threshold 10).")
    engine = cols[2].selectbox("JPEG", JPEG_ENGINES, key=kept("fx_jpeg", JPEG_ENGINES[0]),
                               format_func=JPEG_LABELS.get)
    with st.expander("Stage 1", expanded=True):
        first = _stage_picker(1, seed, 60)
    with st.expander("Stage 2"):
        second = _stage_picker(2, seed, None)
    with st.expander("Final step"):
        sinc = _kernel_picker("fxf", "Final sinc filter", default_on=True)
        cols = st.columns(3)
        orders = ["resize + sinc, then JPEG", "JPEG, then resize + sinc"]
        order = cols[0].radio("Order", orders, key=kept("fx_order", orders[0]))
        mode = cols[1].selectbox("Final resize", ["area", "bilinear", "bicubic"], key=kept("fx_fmode", "bicubic"))
        quality = cols[2].slider("Final JPEG quality", 10, 100, key=kept("fx_fq", 75))
    final = FinalParams(order.startswith("resize"), sinc, mode, quality)
    return DegradationParams(scale, first, second, final, usm_sharpen=usm, jpeg_engine=engine)


def _config_from_upload() -> core.DegradationConfig | None:
    upload = st.file_uploader("Load a configuration (JSON or YAML)", type=["json", "yaml", "yml"], key="lab_load")
    if upload is None:
        return None
    text = upload.getvalue().decode("utf-8", errors="replace")
    try:
        return parse_degradation(text, upload.name)
    except ConfigError as exc:
        try:
            parse_params(text, upload.name)
        except ConfigError:
            show_error(exc)
        else:
            st.error(f"{upload.name} holds drawn parameters, not a configuration: choose \"Fixed\" above and load it "
                     "under \"Replay saved parameters\" to replay it exactly.")
        return None


def _params_from_upload(scale: int) -> DegradationParams | None:
    """Saved parameters to replay exactly (the Lab's own file, or degrade's ``*_params.json``), if one is loaded."""
    upload = st.file_uploader("Replay saved parameters (the file \"Save these parameters\" wrote, or a "
                              "*_params.json from realesrgan-studio degrade)", type=["json"], key="lab_params_load")
    if upload is None:
        return None
    try:
        params = parse_params(upload.getvalue().decode("utf-8", errors="replace"), upload.name)
    except ConfigError as exc:
        show_error(exc)
        return None
    if params.scale != scale:
        st.error(f"{upload.name} was drawn for x{params.scale}: choose that scale above to replay it.")
        return None
    st.info(f"Replaying {upload.name} exactly; the settings below are not used until you remove the file.")
    return params


def _stages(result: DegradationResult) -> None:
    applied = [s for s in result.stages if s.applied]
    for start in range(0, len(applied), 4):
        cols = st.columns(4)
        for col, stage in zip(cols, applied[start : start + 4]):
            col.image(core.to_display(core.from_unit(stage.image)),
                      caption=f"{stage.name}: {stage.detail}", width="stretch", output_format="PNG")
    kernels = [(name, k) for name, k in (("blur 1", result.params.first.kernel),
                                         ("blur 2", result.params.second.kernel if result.params.second else None),
                                         ("final sinc", result.params.final.sinc if result.params.final else None))
               if k is not None]
    if kernels:
        cols = st.columns(len(kernels) + 1)
        for col, (name, kernel) in zip(cols, kernels):
            col.altair_chart(charts.kernel_chart(make_kernel(kernel), f"{name} kernel ({kernel.type})"),
                             width="content")


def _restore(hr: np.ndarray, lr: np.ndarray, scale: int) -> None:
    st.subheader("Restore and compare")
    available = [i.name for i in core.list_models() if i.available]
    methods = st.multiselect("Methods", ["bicubic", *available], default=["bicubic", available[0]] if available
                             else ["bicubic"], key="lab_methods")
    key = ("lab", cache.image_key(lr), cache.image_key(hr), tuple(methods))
    outputs = cache.result_store().get(key)
    def finish(snap: core.JobSnapshot) -> None:
        if snap.status == "done":
            cache.result_store().put(*snap.result)

    if follow_job("lab", finish):
        return
    reference = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
    if outputs is None:
        if st.button("Super-resolve the degraded image", type="primary", key="lab_run", disabled=not methods):
            models = models_for_job([m for m in methods if m != "bicubic"])  # loading: the job waits, not the page

            def work(ctx: core.JobContext):
                upscalers = models(ctx)
                results = {}
                for index, method in enumerate(methods):
                    ctx.progress(index, len(methods), method)
                    results[method] = evaluation.run_method(method, lr, reference.shape[:2], upscalers.get(method),
                                                            cancel=ctx.cancelled)
                return key, results

            start_job("lab", "Restoring", work)
        return
    comparison([*outputs.items(), ("HR", reference)], key="lab_slider")
    table = cache.scores(outputs, reference if reference.dtype == np.uint8 else None, str(key), scale)
    st.dataframe(pd.DataFrame([{"method": m, **{metric_header(k): v for k, v in row.items()}}
                               for m, row in table.items()]), hide_index=True, key="lab_scores")


def _sweep(hr: np.ndarray, scale: int) -> None:
    with st.expander("Sensitivity sweep: vary one parameter, plot each method's score"):
        cols = st.columns(3)
        parameter = cols[0].selectbox("Parameter", list(evaluation.SWEEP_PARAMETERS), key="sweep_param",
                                      format_func=lambda p: evaluation.SWEEP_PARAMETERS[p][0])
        _, low, high = evaluation.SWEEP_PARAMETERS[parameter]
        span = cols[1].slider("Range", low, high, (low, high), key="sweep_range")
        steps = cols[2].number_input("Steps", 2, 20, 5, key="sweep_steps")
        available = [i.name for i in core.list_models() if i.available]
        methods = st.multiselect("Methods", ["bicubic", *available], default=["bicubic"], key="sweep_methods")
        metric = st.selectbox("Metric", core.METRICS.names(ready=True), key="sweep_metric", format_func=metric_header,
                              help="Metrics whose network weights are not here are listed on Models & System.")
        def finish(snap: core.JobSnapshot) -> None:
            st.session_state.sweep_points = [asdict(p) for p in snap.partial]  # a cancelled sweep keeps its points

        running = follow_job("sweep", finish)
        if not running and st.button("Run sweep", key="sweep_run", disabled=not methods):
            models = models_for_job([m for m in methods if m != "bicubic"])  # loading: the job waits, not the page
            values = list(np.linspace(span[0], span[1], int(steps)))
            total = len(values) * len(methods)

            def work(ctx: core.JobContext) -> None:
                upscalers = models(ctx)
                runners = {m: (lambda lr, size, m=m: evaluation.run_method(m, lr, size, upscalers.get(m)))
                           for m in methods}
                done = []

                def point(p: evaluation.SweepPoint) -> None:
                    ctx.publish(p)
                    done.append(p)
                    ctx.progress(len(done), total, f"{p.method} at {p.value:.2f}")

                evaluation.run_sweep(hr, parameter, values, runners, metric, scale, on_point=point,
                               cancel=ctx.cancelled)

            start_job("sweep", "Sweep", work)
        points = st.session_state.get("sweep_points")
        if points:
            x_title = evaluation.SWEEP_PARAMETERS[points[0]["parameter"]][0]
            st.altair_chart(charts.sweep_chart(pd.DataFrame(points), x_title, points[0]["metric"]), width="stretch")


def render() -> None:
    st.title("Degradation Lab")
    source = pick_image("lab", "HR image", default_sample="astronaut")
    if source is None:
        return
    hr, _ = source
    if max(hr.shape[:2]) > 256 and st.checkbox("Use a 256x256 centre crop (fast on CPU)", key=kept("lab_crop", True)):
        top, left = (hr.shape[0] - 256) // 2, (hr.shape[1] - 256) // 2
        hr = hr[max(0, top) : max(0, top) + 256, max(0, left) : max(0, left) + 256]
    mode = st.radio("Parameters", ["Preset + seed (sampled)", "Fixed (set every parameter)"], horizontal=True,
                    key=kept("lab_mode", "Preset + seed (sampled)"))
    scale = st.selectbox("Scale", [2, 3, 4], key=kept("lab_scale", 4))
    hr = core.crop_to_scale(hr, scale)
    if mode.startswith("Preset"):
        cols = st.columns(2)
        names = list(core.PRESETS)
        preset = cols[0].selectbox("Preset", names, key=kept("lab_preset", "realesrgan", names),
                                   format_func=lambda n: core.PRESETS[n].name)
        seed = cols[1].number_input("Seed", 0, 2**31 - 1, key=kept("lab_seed", 0))
        config = replace(_config_from_upload() or core.PRESETS[preset], scale=scale)
        try:
            result = core.degrade(hr, config, int(seed))
        except ValueError as exc:
            show_error(exc)
            return
        st.download_button("Save this configuration (JSON)", config.to_json(), file_name=f"{preset}.json",
                           mime="application/json", key="lab_save")
    else:
        params = _params_from_upload(scale) or _fixed_params(scale)
        result = core.degradation.apply_params(hr, params)
        st.download_button("Save these parameters (JSON)", result.params.to_json(), file_name="params.json",
                           mime="application/json", key="lab_save_params")
    st.subheader("Stages")
    _stages(result)
    with st.expander("Drawn parameters (replay them in fixed mode or with apply_params)"):
        st.json(json.loads(result.params.to_json()))
    _restore(hr, result.lr, scale)
    _sweep(hr, scale)
