"""The last result survives a reload (F5): the page's address carries a session token (``?s=…``),
and each finished upscale is kept on disk under that token, with the upload and the settings that made
it. A reloaded page, a new Streamlit session, finds the token in its address and offers the result back;
nobody without the address can reach it.

Tokens are minted here, one per session (``secrets.token_urlsafe``), and a session writes only under its
own. A token that arrives in an address is only read, and only where a result is kept under it: a link
with a token of someone else's choosing offers nothing, and whatever this session makes next goes under
its own token, so whoever chose the token cannot read it later.

On disk: ``$STUDIO_RESULTS_DIR/sessions/TOKEN/last/`` holds ``state.json`` (the settings and each
result's details), the upload as it was sent, and one lossless PNG per model. Every file is
written atomically, ``state.json`` last, so a half-saved result is never offered. When a session
saves, sessions untouched for :data:`KEEP_DAYS` days are removed, then the oldest until at most
:data:`KEEP_SESSIONS` sessions and :data:`KEEP_BYTES` bytes are kept.
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
KEEP_SESSIONS = 200
KEEP_BYTES = 4 * 2**30
_VALID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # fullmatch: no trailing newline
_SIDEBAR = ("model", "device", "precision", "tile")  # the sidebar's settings (plain widget keys)
_PENDING = "_restored_results"


def _own_token() -> str:
    """The token minted for this session: the only one it writes under."""
    if "_session_token" not in st.session_state:
        st.session_state._session_token = secrets.token_urlsafe(16)
    return st.session_state._session_token


def _offered_token() -> str | None:
    """The token the address came with, where a result is kept under it (read once per session)."""
    if "_offered_token" not in st.session_state:
        offered = st.query_params.get(TOKEN)
        valid = isinstance(offered, str) and _VALID.fullmatch(offered) is not None
        st.session_state._offered_token = offered if valid and (_folder(offered) / "state.json").is_file() else None
    return st.session_state._offered_token


def session_token() -> str:
    """The token in the page's address (call in every run: a page switch drops it): the one this session
    saved under, else the offered one whose result can still be restored, else this session's own."""
    own = _own_token()
    token = own if st.session_state.get("_saved_here") else (_offered_token() or own)
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
    folder = _folder(_own_token())
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
    st.session_state._saved_here = True
    session_token()  # the address now names this session's own token
    _prune(folder.parents[1], keep=folder.parent)


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _prune(sessions: Path, keep: Path | None = None, *, days: float = KEEP_DAYS, count: int = KEEP_SESSIONS,
           size: int = KEEP_BYTES) -> None:
    """Remove sessions untouched for ``days``, then the oldest until at most ``count`` sessions and ``size``
    bytes remain; ``keep`` (the one just saved) stays whatever its size."""
    found = []
    for folder in sessions.iterdir():
        try:
            found.append((folder.stat().st_mtime, folder, _bytes(folder)))
        except OSError:
            continue
    found.sort(key=lambda entry: entry[0], reverse=True)  # newest first
    cutoff, total, kept = time.time() - days * 86400, 0, 0
    for mtime, folder, used in found:
        if folder == keep or (mtime >= cutoff and kept < count and total + used <= size):
            total, kept = total + used, kept + 1
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _restore_folder() -> Path | None:
    token = _offered_token()
    return None if token is None else _folder(token)


def saved_last() -> dict | None:
    """What the address's token has kept (``None`` when nothing, or a file is unreadable or malformed)."""
    folder = _restore_folder()
    if folder is None:
        return None
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = (isinstance(state, dict) and isinstance(state.get("widgets"), dict)
             and isinstance(state.get("results"), list) and isinstance(state.get("saved"), int | float)
             and all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in state["results"]))
    return state if valid else None


def restore(state: dict, kept_store: dict, upload_key: str) -> None:
    """Put the kept settings and upload back (a button callback: before the widgets are drawn again)."""
    folder = _restore_folder()
    if folder is None:
        return
    for key, value in state["widgets"].items():
        st.session_state[key] = value
        if key not in (*_SIDEBAR, "outscale_default"):
            kept_store[key] = value
    if state.get("upload"):
        try:
            st.session_state[upload_key] = (state["upload"], (folder / "upload.bin").read_bytes())
        except OSError as exc:
            st.session_state.restore_error = f"The kept upload could not be read back: {exc.strerror or exc}."
            return
    st.session_state[_PENDING] = state


def pending_results(request_key: str) -> dict[str, core.UpscaleResult] | None:
    """The restored results when the page's request is the one they were made for (read once)."""
    state = st.session_state.get(_PENDING)
    if state is None or state["request"] != request_key:
        return None
    del st.session_state[_PENDING]
    folder = _restore_folder()
    if folder is None:
        return None
    try:
        return {m["name"]: core.UpscaleResult(core.read_image(folder / m["file"]), m["model"], m["device"],
                                              m["precision"], m["seconds"], m["tile"], m["batch"])
                for m in state["results"]}
    except (OSError, core.StudioError, KeyError, TypeError):
        return None
