"""The last result survives a reload (F5): the page's address carries a random session token
(``?s=…``), and each finished upscale is kept on disk under that token, with the upload and the
settings that made it. A reloaded page, a new Streamlit session, finds the token in its address
and offers the result back; nobody without the address can reach it.

On disk: ``$STUDIO_RESULTS_DIR/sessions/TOKEN/last/`` holds ``state.json`` (the settings and each
result's details), the upload as it was sent, and one lossless PNG per model. Every file is
written atomically, ``state.json`` last, so a half-saved result is never offered. Sessions
untouched for :data:`KEEP_DAYS` days are removed when another is saved.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import streamlit as st

import core

TOKEN = "s"  # the query parameter
KEEP_DAYS = 7
_VALID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SIDEBAR = ("model", "device", "precision", "tile")  # the sidebar's settings (plain widget keys)
_PENDING = "_restored_results"


def session_token() -> str:
    """This session's token, put in the page's address (call in every run: a page switch drops it)."""
    token = st.session_state.get("_session_token")
    if token is None:
        offered = st.query_params.get(TOKEN)
        token = offered if offered and _VALID.match(offered) else secrets.token_urlsafe(16)
        st.session_state._session_token = token
    if st.query_params.get(TOKEN) != token:
        st.query_params[TOKEN] = token
    return token


def _folder(token: str) -> Path:
    return core.default_results_dir() / "sessions" / token / "last"


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def save_last(request_key: str, results: dict[str, core.UpscaleResult], upload: tuple[str, bytes] | None,
              kept: dict[str, object]) -> None:
    """Keep the finished ``results`` of ``request_key`` (the request's repr), the upload and the settings."""
    folder = _folder(session_token())
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for index, (name, result) in enumerate(results.items()):
        core.write_file(folder / f"result-{index}.png", core.encode_png(result.image, compression=1))
        models.append({"name": name, "file": f"result-{index}.png", "model": result.model, "device": result.device,
                       "precision": result.precision, "seconds": result.seconds, "tile": result.tile,
                       "batch": result.batch})
    if upload is not None:
        core.write_file(folder / "upload.bin", upload[1])
    widgets = {k: v for k, v in kept.items() if _jsonable(v)}
    widgets |= {k: st.session_state[k] for k in (*_SIDEBAR, "outscale_default") if k in st.session_state}
    state = {"saved": time.time(), "request": request_key, "results": models, "widgets": widgets,
             "upload": upload[0] if upload is not None else None}
    core.write_file(folder / "state.json", json.dumps(state))
    os.utime(folder.parent)  # this session is in use: pruning goes by the session folder's time
    _prune(folder.parents[1])


def _prune(sessions: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400
    for old in sessions.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue


def saved_last() -> dict | None:
    """What this session's token has kept (``None`` when nothing, or a file is unreadable)."""
    path = _folder(session_token()) / "state.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def restore(state: dict, kept_store: dict, upload_key: str) -> None:
    """Put the kept settings and upload back (a button callback: before the widgets are drawn again)."""
    folder = _folder(session_token())
    for key, value in state["widgets"].items():
        st.session_state[key] = value
        if key not in (*_SIDEBAR, "outscale_default"):
            kept_store[key] = value
    if state.get("upload"):
        st.session_state[upload_key] = (state["upload"], (folder / "upload.bin").read_bytes())
    st.session_state[_PENDING] = state


def pending_results(request_key: str) -> dict[str, core.UpscaleResult] | None:
    """The restored results when the page's request is the one they were made for (read once)."""
    state = st.session_state.get(_PENDING)
    if state is None or state["request"] != request_key:
        return None
    del st.session_state[_PENDING]
    folder = _folder(session_token())
    try:
        return {m["name"]: core.UpscaleResult(core.read_image(folder / m["file"]), m["model"], m["device"],
                                              m["precision"], m["seconds"], m["tile"], m["batch"])
                for m in state["results"]}
    except (OSError, core.StudioError):
        return None
