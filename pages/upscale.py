"""Upscale & Compare: pick or upload, upscale with up to six methods, compare, score, download."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import streamlit as st

import core
from core import evaluation
from dashboard import cache, restore, scoring
from dashboard.errors import show_error
from dashboard.jobs import follow_job, start_job
from dashboard.loading import load_upscaler, model_key, model_loading, models_for_job
from dashboard.pickers import UPLOAD_TYPES, pick_image, picked_profile
from dashboard.slider import comparison
from dashboard.texts import METRICS_EXPLAINED, metric_header
from dashboard.widgets import forget_kept, kept, kept_values, saved_upload_key

REFERENCE_MODES = ["No reference", "Downscale my image first and compare to it", "Upload an HR reference"]


@dataclass(frozen=True)
class Request:
    """Everything that determines the result (the cache key)."""

    image: str
    models: tuple[str, ...]
    device: str
    precision: str
    settings: core.UpscaleSettings


PREVIEW_SIDE = 448  # px: the longest side of the source preview (smaller images are shown as they are)


def preview(image: np.ndarray, box: tuple[int, int, int] | None) -> np.ndarray:
    """An 8-bit RGB thumbnail of ``image`` with the region ``box = (x, y, size)`` outlined."""
    height, width = image.shape[:2]
    factor = min(1.0, PREVIEW_SIDE / max(height, width))
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    thumb = core.to_display(core.resize(image, size, "area") if factor < 1 else image)
    if thumb.ndim == 2:
        thumb = np.repeat(thumb[:, :, None], 3, axis=2)
    thumb = np.array(thumb[:, :, :3])  # a copy: the source may be a read-only cached array
    if box is not None:
        x, y, side = box
        left, top = int(x * factor), int(y * factor)
        right = min(size[1] - 1, max(left + 1, round((x + side) * factor) - 1))
        bottom = min(size[0] - 1, max(top + 1, round((y + side) * factor) - 1))
        region = thumb[top : bottom + 1, left : right + 1].copy()
        thumb = (thumb * 0.55).astype(np.uint8)  # dim what is outside the region
        thumb[top : bottom + 1, left : right + 1] = region
        for row in (top, bottom):
            thumb[row, left : right + 1] = (255, 64, 64)
        for col in (left, right):
            thumb[top : bottom + 1, col] = (255, 64, 64)
    return thumb


def _slider(label: str, low: int, high: int, default: int, key: str, step: int = 1) -> int:
    """A slider from ``low`` to ``high`` that copes with another image: no slider where there is
    nothing to choose (``high <= low``), and a value kept from a larger image brought into range."""
    if high <= low:
        return low
    step = min(step, high - low)
    kept(key, min(max(default, low), high))  # kept across page switches, brought into this image's range
    st.session_state[key] = min(max(st.session_state[key], low), high)
    # value= as well: where Streamlit's client resets a widget in a rerun race (streamlit/streamlit#9056), it
    # falls back to this value, not to the slider's minimum
    return st.slider(label, low, high, value=st.session_state[key], step=step, key=key)


def _region(image: np.ndarray, on_cpu: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``image`` to upscale (all of it, or a square region), with a preview."""
    height, width = image.shape[:2]
    shown, controls = st.columns([2, 3])
    default = on_cpu and max(height, width) > 160
    box = None
    with controls:
        if st.checkbox("Upscale only a region (fast on CPU)", key=kept("roi", default)):
            if default:
                st.caption(f"On by default here: on the CPU a {width}x{height} image takes much longer than a "
                           "128 px region. Untick it to upscale the whole image.")
            largest = min(512, height, width)
            size = _slider("Region size (px)", min(32, largest), largest, 128, "roi_size", step=16)
            x = _slider("Region left", 0, width - size, (width - size) // 2, "roi_x")
            y = _slider("Region top", 0, height - size, (height - size) // 2, "roi_y")
            box = (x, y, size)
    caption = f"Source {width}x{height}"
    if box is not None:
        caption += f" · region {box[2]}x{box[2]} at left {box[0]}, top {box[1]} (outlined)"
    shown.image(preview(image, box), caption=caption, width="content")
    if box is None:
        return image, (0, 0)
    x, y, size = box
    return image[y : y + size, x : x + size], (x, y)


def _reference(image: np.ndarray, full_height: int, origin: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """``(input, reference, factor)`` according to the reference mode.

    ``image`` is the (region of the) source; ``full_height`` and ``origin`` locate the region
    in the source, so an uploaded full-size reference is cut to the same region.
    """
    mode = st.radio(f"Reference for {_titles('full-reference')}", REFERENCE_MODES,
                    key=kept("reference_mode", REFERENCE_MODES[0]))
    if mode == REFERENCE_MODES[1]:
        factor = st.selectbox("Downscale by (MATLAB bicubic)", [2, 3, 4], key=kept("ref_factor", 4))
        config = replace(core.PRESETS["none"], scale=factor)
        lr, hr = core.degradation.make_pair(image, config, 0)
        st.caption(f"Input {lr.shape[1]}x{lr.shape[0]} made from your {hr.shape[1]}x{hr.shape[0]} image, "
                   "which becomes the reference.")
        return lr, hr, factor
    if mode == REFERENCE_MODES[2]:
        upload = st.file_uploader("HR reference (same scene, output size)", type=UPLOAD_TYPES, key="ref_upload")
        if upload is not None:
            try:
                reference = cache.decode(upload.getvalue()).pixels
            except core.StudioError as exc:
                show_error(exc, upload.name)
                return image, None, None
            ratio = reference.shape[0] / full_height
            x, y = origin
            top, left = round(y * ratio), round(x * ratio)
            region = reference[top : top + round(image.shape[0] * ratio), left : left + round(image.shape[1] * ratio)]
            return image, region, None
    return image, None, None


def _start(request: Request, image: np.ndarray) -> None:
    models = models_for_job(request.models)  # loaded already, or loading in the background: the job waits

    def work(ctx: core.JobContext) -> dict[str, core.UpscaleResult]:
        upscalers = list(models(ctx).values())
        plans = [u.resolve(request.settings) for u in upscalers]  # the tile each uses, fixed for this job
        counts = [u.count_tiles(*image.shape[:2], plan, image.shape[2]) for u, plan in zip(upscalers, plans)]
        # each model's expected seconds, from its measured speed: the ETA weighs the work left by them
        expected = [u.estimate_seconds(*image.shape, plan) for u, plan in zip(upscalers, plans)]
        ctx.expect(sum(expected))
        ctx.progress(0, sum(counts), f"{upscalers[0].info.name}, tile 0/{counts[0]}", work=0.0)  # the work starts
        results, offset, before = {}, 0, 0.0
        for upscaler, plan, count, seconds in zip(upscalers, plans, counts, expected):
            name = upscaler.info.name

            def report(done: float, total: int, offset: int = offset, name: str = name, before: float = before,
                       seconds: float = seconds) -> None:
                inside = f" ({done % 1:.0%} of tile {int(done) + 1})" if done % 1 else ""
                ctx.progress(offset + done, sum(counts), f"{name}, tile {int(done)}/{total}{inside}",
                             work=before + seconds * done / max(total, 1))

            results[name] = upscaler.upscale(image, plan, progress=report, cancel=ctx.cancelled)
            offset, before = offset + count, before + seconds
        return results

    st.session_state.upscale_request = request
    start_job("upscale", "Upscaling", work, rerun=False)
    job = st.session_state.upscale_job
    upload = st.session_state.get(saved_upload_key("up")) if st.session_state.get("up_source") == "Upload" else None
    source = upload[0] if upload else st.session_state.get("up_sample", "the sample")
    try:  # a reload (F5) during the job finds it again
        restore.keep_running(job, {"upscale_job": job, "upscale_request": request}, upload, saved_upload_key("up"),
                             f"the upscale of {source} with {', '.join(request.models)}")
    except OSError as exc:
        st.session_state.restore_error = f"A reload during this job will not find it: {exc.strerror or exc}."
    st.rerun()


def _finish(snap: core.JobSnapshot) -> None:
    request = st.session_state.pop("upscale_request")
    restore.job_ended(snap.id)
    if snap.status == "done":
        cache.result_store().put(request, snap.result)
        st.session_state.upscaled_here = True
        upload = st.session_state.get(saved_upload_key("up")) if st.session_state.get("up_source") == "Upload" else None
        try:  # kept for a reload (F5) of this page
            restore.save_last(repr(request), snap.result, upload, kept_values())
        except OSError as exc:
            st.session_state.restore_error = f"This result is not kept for a reload: {exc.strerror or exc}."


def _offer_restore() -> None:
    """A reloaded page (a new session) offers the last result its address kept."""
    if st.session_state.get("upscaled_here") or st.session_state.get("restore_answered"):
        return
    state = restore.saved_last()
    if state is None:
        return
    when = time.strftime("%H:%M on %d %b", time.localtime(state["saved"]))
    what = state.get("upload") or state["widgets"].get("up_sample", "a sample")
    models = ", ".join(r["name"] for r in state["results"])
    note, yes, no = st.columns([6, 1, 1])
    note.info(f"Your last result, from {when}: **{what}** with {models}. Restore it, with its settings?",
              icon=":material/history:")

    def answer(take: bool) -> None:
        st.session_state.restore_answered = True
        if take:
            restore.restore(state, kept_values(), saved_upload_key("up"))

    yes.button("Restore", key="restore_last", type="primary", on_click=answer, args=(True,))
    no.button("Dismiss", key="restore_dismiss", on_click=answer, args=(False,))


def _made_elsewhere(stem: str, whole: tuple[int, int], box: tuple[int, int, int, int], size: tuple[int, int],
                    channels: int, taken: list[str], room: int) -> dict[str, np.ndarray]:
    """Uploaded outputs of this input made by other tools (Upscayl, chaiNNer...): each a pane named after its file,
    cut to the region where one is upscaled; those that do not fit are said, and left out."""
    files = st.file_uploader("Outputs made elsewhere (optional)", type=UPLOAD_TYPES, accept_multiple_files=True,
                             key="up_outside",
                             help="This input upscaled by another tool (Upscayl, chaiNNer, a paper's results): each "
                                  "file is a pane, scored like the others. Upload the whole image's output at the "
                                  "output scale; where a region is upscaled, the same region is cut from it.")
    made: dict[str, np.ndarray] = {}
    for upload in files or []:
        name = evaluation.outside_name(upload.name, stem, [*taken, *made])
        if len(made) >= room:
            st.warning(f"{upload.name} is left out: at most {core.compare.MAX_METHODS} panes.")
            continue
        try:
            picture = cache.decode_output(upload.getvalue())
            made[name] = evaluation.fit_to_region(picture, upload.name, whole, box, size, channels)
        except core.StudioError as exc:
            st.warning(f"Left out: {exc}")
    if made:
        st.caption("Made elsewhere: " + ", ".join(f"**{n}**" for n in made) + " (named after their files).")
    return made


def _results(request: Request, results: dict[str, core.UpscaleResult], image: np.ndarray,
             reference: np.ndarray | None, stem: str, baselines: tuple[str, ...],
             made: dict[str, np.ndarray]) -> None:
    first = results[request.models[0]]
    out = first.image
    outputs = {b: cache.baseline(image, request.image, out.shape[:2], evaluation.BASELINES[b]) for b in baselines}
    outputs |= {name: results[name].image for name in request.models}
    for name, picture in made.items():
        if picture.shape == out.shape:
            outputs[name] = picture
        else:  # the model's alpha setting changed its output's channels
            st.warning(f"{name} is left out: {picture.shape[2]} channels, where {first.model}'s output has "
                       f"{out.shape[2]}.")
    runs = list(results.values())
    timing = ", ".join((f"{r.model} " if len(runs) > 1 else "") + f"{r.seconds:.2f} s (tile {r.tile or 'none'})"
                       for r in runs)  # each model named once
    st.success(f"{first.model} · {first.device} · {first.precision} · {timing} · {core.image_info(out)}")
    if reference is not None and reference.shape != out.shape:
        st.warning(f"The reference is {reference.shape[1]}x{reference.shape[0]} but the result is "
                   f"{out.shape[1]}x{out.shape[0]}: PSNR / SSIM need the same size (set the output scale).")
    matching = reference if reference is not None and reference.shape == out.shape else None
    scored = outputs | ({"hr": matching} if matching is not None else {})
    key = f"{request}|{'/'.join(baselines)}|{cache.image_key(matching) if matching is not None else ''}|" + \
        "/".join(f"{name}={cache.image_key(picture)}" for name, picture in made.items())
    compared = scoring.scoring(key, image, scored, matching)  # in the background: as far as it is scored
    if len(compared.maps) < len(scored):
        st.info("Scoring stopped before the maps were ready: \"Compute the missing scores\" below opens the viewer."
                if compared.cancelled else "The viewer opens once the hand-made metrics and the maps are ready (see "
                "Metrics below); the learned metrics go on after.", icon=":material/hourglass_top:")
    else:  # drawn once: the learned metrics' numbers (cards and table) do not redraw it
        cheap = tuple(m for m in compared.metrics if not core.METRICS[m].learned) + (core.compare.LR_PSNR,)
        panes = core.compare.panes_of(compared, {"hr": "HR reference"}, scores=cheap)
        if reference is not None and matching is None:
            panes.append(core.compare.Pane("HR reference", reference))  # shown on the output grid, not scored
        comparison(panes, key="compare", mode="grid" if len(panes) > 3 else "slider",
                   cache_key=f"{key}|{cache.image_key(reference) if reference is not None else ''}")

    def rows(scored_so_far: core.compare.Comparison) -> list[dict]:
        table = []
        for name in outputs:
            run = results.get(name)
            values = scored_so_far.scores.get(name, {})
            row = {"method": name, **{metric_header(m): values.get(m) for m in scored_so_far.metrics}}
            row |= {"LR-PSNR ↑": values.get(core.compare.LR_PSNR)}
            row |= {"seconds": f"{run.seconds:.2f}" if run else "—",
                    "device": run.device if run else "made elsewhere" if name in made else "cpu",
                    "precision": run.precision if run else "—"}
            table.append(row)
        return table

    def table(shown: list[dict]) -> None:
        formats = {metric_header(m): st.column_config.NumberColumn(format="%.4f") for m in core.METRICS}
        formats["LR-PSNR ↑"] = st.column_config.NumberColumn(format="%.2f")
        st.dataframe(pd.DataFrame(shown), hide_index=True, key="metrics_table", column_config=formats)

    st.subheader("Metrics")
    finished = scoring.show_scores(key, compared, rows, table)
    border = round(out.shape[0] / image.shape[0])
    if reference is not None and matching is None:
        st.caption(f"Only {_titles('no-reference')}: the reference is not the output's size, so "
                   f"{_titles('full-reference')} cannot be computed.")
    elif matching is None:
        st.caption(f"Only {_titles('no-reference')} without a reference (no-reference metrics). For "
                   f"{_titles('full-reference')}, choose a reference above.")
    else:
        st.caption(f"{_titles('full-reference')} against the reference, on the Y channel (ITU-R BT.601), with a "
                   f"{border} px "
                   "border cropped on each side (the scale: the BasicSR / MATLAB convention).")
    st.caption("LR-PSNR: each output brought back to the input's size (MATLAB bicubic) against the input, on Y. "
               "High means faithful to the input; detail a model invents against the input lowers it (see the "
               "viewer's \"LR consistency\" maps).")
    with st.expander("What these numbers mean"):
        st.markdown(METRICS_EXPLAINED)
    for name in request.models:
        st.download_button(f"Download {name} result (PNG, {core.image_info(results[name].image)})",
                           core.encode_png(results[name].image, icc_profile=picked_profile("up")),
                           file_name=f"{stem}_{name}.png",
                           mime="image/png", key=f"download_{name}", on_click="ignore")  # no rerun for a download
    if finished is None:
        st.caption("The comparison page to download is offered once scoring ends.")
        return
    st.download_button("Download comparison (one HTML page, opens offline)",
                       lambda: core.compare.comparison_page(finished, title=f"{stem}: {', '.join(finished.outputs)}"),
                       file_name=f"{stem}_comparison.html", mime="text/html", key="download_comparison",
                       on_click="ignore",
                       help="Every method at full resolution, with the grid, slider, zoom, difference and map views "
                            "and the scores, in one file with no outside request.")


def _titles(kind: str) -> str:
    return " / ".join(core.METRICS[m].title for m in core.METRICS.names(kind=kind, ready=True))


def _outscale_key(default: float) -> str:
    """The output scale's key: kept across page switches, and back to ``default`` (the model's scale, or the
    reference's factor) when that changes."""
    if st.session_state.get("outscale_default") != default:
        st.session_state.outscale_default = default
        forget_kept("outscale")
    return kept("outscale", default)


def _on_cpu() -> bool:
    device = st.session_state.get("device", "auto")
    return device == "cpu" or (device == "auto" and core.available_devices()[0] == "cpu")


def render() -> None:
    st.title("Upscale & Compare")
    notice = st.session_state.pop(restore.NOTICE, None)
    if notice is not None:
        {"info": st.info, "warning": st.warning}[notice[0]](notice[1], icon=":material/history:")
    _offer_restore()
    if "restore_error" in st.session_state:
        st.warning(st.session_state.pop("restore_error"))
    source = pick_image("up")
    if source is None:
        return
    image, stem = source
    whole = image.shape[:2]
    name = st.session_state.model
    upscaler = load_upscaler(name)  # None while it loads in the background: the page works meanwhile
    if upscaler is None and not model_loading(name):
        return  # it failed to load: the error is shown
    st.caption(upscaler.describe() if upscaler else f"{name} is loading (see the sidebar); you can set up the "
               "run meanwhile, and Upscale waits for it.")
    full_height = image.shape[0]
    image, origin = _region(image, _on_cpu())
    image, reference, factor = _reference(image, full_height, origin)
    others = [i.name for i in core.list_models() if i.available and i.name != name]
    choices = ["bicubic", "lanczos", *others]
    room = core.compare.MAX_METHODS - 1 - (reference is not None)  # the model, and the reference's pane
    picked = st.session_state[kept("compare_with", ["bicubic"])]
    picked = [picked] if isinstance(picked, str) else picked
    st.session_state.compare_with = [v for v in picked if v in choices][:room]
    # the whole width: five picks' chips stay readable (in a third of it they hid one another)
    versus = st.multiselect("Compare with", choices, key="compare_with", max_selections=room,
                              help=f"Up to {room} more: baselines and other models (MATLAB bicubic is the "
                                   "literature's). Keys 1-9 in the viewer pick the compared pane.")
    box = (*origin, *image.shape[:2])
    right, third, _ = st.columns(3)
    scale = upscaler.scale if upscaler else (core.model_info(name).scale or 4)
    key = _outscale_key(float(factor or scale))  # value= too: a client reset in a rerun race (streamlit#9056)
    outscale = right.number_input("Output scale", 0.25, 16.0, value=st.session_state[key], step=0.25, key=key)
    alpha = third.selectbox("Alpha channel", core.ALPHA_MODES, key=kept("alpha", "model"),
                            disabled=image.shape[2] != 4, help="RGBA images only")
    settings = core.UpscaleSettings(outscale=outscale, tile=st.session_state.get("tile"), alpha=alpha)
    baselines = tuple(v for v in versus if v in evaluation.BASELINES)
    models = (name, *(v for v in versus if v not in evaluation.BASELINES))
    device, precision = model_key(name)[1:]
    request = Request(cache.image_key(image), models, device, precision, settings)
    out_h, out_w = core.target_size(*image.shape[:2], outscale)
    made = _made_elsewhere(stem, whole, box, (out_h, out_w), image.shape[2], [name, *versus], room - len(versus))
    st.write(f"Input: {core.image_info(image)} → output {out_w}x{out_h}")
    if outscale > scale:
        st.caption(f"Beyond x{scale:g}, the model's own scale, the x{scale:g} output is resized to x{outscale:g} "
                   "(Lanczos): the network adds no detail past its scale, and the job and the file grow with "
                   "the square of the scale.")

    if reference is not None and reference.shape[:2] != (out_h, out_w):
        fits = reference.shape[0] / image.shape[0]
        st.warning(f"The reference is {reference.shape[1]}x{reference.shape[0]} but the output will be "
                   f"{out_w}x{out_h}: {_titles('full-reference')} need the same size. Set the output scale to "
                   f"{fits:g}" + (" (the reference's size over the input's)." if fits == round(fits * 4) / 4 else
                                  ", or upload a reference of the output's size."))
    if follow_job("upscale", _finish):
        return
    results = cache.result_store().get(request)
    if results is None and (results := restore.pending_results(repr(request))) is not None:
        cache.result_store().put(request, results)  # restored after a reload: the same request made them
    if results is None:
        if st.button("Upscale", type="primary", key="run"):
            try:
                settings.limits.check_upscale(image.shape[1], image.shape[0], (out_h, out_w))
            except core.StudioError as exc:
                show_error(exc)
                return
            _start(request, image)
        return
    _results(request, results, image, reference, stem, baselines, made)
