"""The last result survives a reload (F5): the page's address carries a session token (``?s=…``),
and each finished upscale is kept on disk under that token, with the upload and the settings that made
it. A reloaded page, a new Streamlit session, finds the token in its address and offers the result back;
nobody without the address can reach it.

Tokens are minted here, one per session (``secrets.token_urlsafe``), and a session writes only under its
own. A token that arrives in an address is only read, and only where a result is kept under it: a link
with a token of someone else's choosing offers nothing, and whatever this session makes next goes under
its own token, so whoever chose the token cannot read it later.

A job survives a reload too: while it runs, ``sessions/TOKEN/running/`` keeps its id, the upload and the
settings, and the server keeps what the page needs to follow it (:func:`keep_running`). A reloaded page
finds it (:func:`reattach`, before any widget is drawn): the upload and settings come back, and the page
follows the job where the server still runs it, or says it stopped (a server restart) so it can be run again.
The older last result is then not offered: it belongs to another input.

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
from collections.abc import Callable
from pathlib import Path

import streamlit as st

import core
from dashboard.widgets import kept_values

TOKEN = "s"  # the query parameter
KEEP_DAYS = 7
KEEP_SESSIONS = 200
KEEP_BYTES = 4 * 2**30
_VALID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # fullmatch: no trailing newline
_SIDEBAR = ("model", "device", "precision", "tile")  # the sidebar's settings (plain widget keys)
_PENDING = "_restored_results"
NOTICE = "_reattach_notice"  # what reattach() did, in words, for the page to show once


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
        kept = valid and any((_folder(offered, part) / "state.json").is_file() for part in ("last", "running"))
        st.session_state._offered_token = offered if kept else None
    return st.session_state._offered_token


def session_token() -> str:
    """The token in the page's address (call in every run: a page switch drops it): the one this session
    saved under, else the offered one whose result can still be restored, else this session's own."""
    own = _own_token()
    token = own if st.session_state.get("_saved_here") else (_offered_token() or own)
    if st.query_params.get(TOKEN) != token:
        st.query_params[TOKEN] = token
    return token


def _folder(token: str, part: str = "last") -> Path:
    return core.default_results_dir() / "sessions" / token / part


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


@st.cache_resource
def _following() -> dict[str, dict[str, object]]:
    """Per running job: the session-state entries a page needs to follow it (the server's memory: a job lives
    no longer than its server)."""
    return {}


def keep_running(job_id: str, entries: dict[str, object], upload: tuple[str, bytes] | None, upload_key: str,
                 what: str) -> None:
    """While job ``job_id`` runs, keep what a reload needs to find it, under this session's own token: the
    upload (under ``upload_key``), the kept settings and ``entries`` (put back as they are); ``what`` names the
    job in words ("RealESRGAN_x4plus on my photo.png")."""
    folder = _folder(_own_token(), "running")
    folder.mkdir(parents=True, exist_ok=True)
    if upload is not None:
        core.write_file(folder / "upload.bin", upload[1])
    widgets = {k: v for k, v in kept_values().items() if _jsonable(v)}
    widgets |= {k: st.session_state[k] for k in (*_SIDEBAR, "outscale_default") if k in st.session_state}
    state = {"saved": time.time(), "job": job_id, "what": what, "widgets": widgets, "upload_key": upload_key,
             "upload": upload[0] if upload is not None else None}
    core.write_file(folder / "state.json", json.dumps(state))
    os.utime(folder.parent)
    _following()[job_id] = dict(entries)
    st.session_state._saved_here = True
    session_token()  # the address names this session's own token from now on


def job_ended(job_id: str) -> None:
    """The page handled job ``job_id``'s end: a reload no longer finds it (under this session's token, nor under
    the one a reload reattached from)."""
    _following().pop(job_id, None)
    for token in {_own_token(), st.session_state.get("_offered_token")} - {None}:
        _forget_running(_folder(token, "running"), job_id)


def _forget_running(folder: Path, job_id: str) -> None:
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("job") == job_id:
        shutil.rmtree(folder, ignore_errors=True)


def _running_state() -> dict | None:
    token = _offered_token()
    if token is None:
        return None
    try:
        state = json.loads((_folder(token, "running") / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = (isinstance(state, dict) and isinstance(state.get("job"), str) and isinstance(state.get("widgets"), dict)
             and isinstance(state.get("saved"), int | float) and isinstance(state.get("upload_key"), str)
             and isinstance(state.get("what"), str))
    return state if valid else None


def reattach(known: Callable[[str], bool]) -> None:
    """A reloaded page (a new session) whose address names a session with a job running: put its upload and
    settings back and follow the job where the server still has it (``known(job_id)``), else say it stopped.
    Call before any widget is drawn, once per run (it acts once per session)."""
    if st.session_state.get("_reattach_checked"):
        return
    st.session_state._reattach_checked = True
    state = _running_state()
    if state is None:
        return
    folder = _folder(_offered_token() or "", "running")
    for key, value in state["widgets"].items():
        st.session_state[key] = value
        if key not in (*_SIDEBAR, "outscale_default"):
            kept_values()[key] = value
    upload = None
    if state.get("upload"):
        try:
            upload = (state["upload"], (folder / "upload.bin").read_bytes())
            st.session_state[state["upload_key"]] = upload
        except OSError:
            upload = None
    when = time.strftime("%H:%M", time.localtime(state["saved"]))
    st.session_state.restore_answered = True  # the older last result belongs to another input: not offered
    entries = _following().get(state["job"])
    if entries is not None and known(state["job"]):
        for key, value in entries.items():
            st.session_state[key] = value
        keep_running(state["job"], entries, upload, state["upload_key"], state["what"])  # a reload finds it again
        st.session_state[NOTICE] = ("info", f"The page was reloaded while {state['what']} ran (started at {when}): "
                                            "it goes on, and its image and settings are back.")
    else:
        _forget_running(folder, state["job"])  # it ran on a server that is gone: said once, not at every reload
        lost = "" if upload is not None or not state.get("upload") else " (the upload could not be read back)"
        st.session_state[NOTICE] = ("warning", f"{state['what']} (started at {when}) stopped before it finished: the "
                                               f"server no longer has it (it was restarted). Its image and settings "
                                               f"are back{lost}; run it again when ready.")
