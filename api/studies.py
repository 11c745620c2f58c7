"""``/v1/studies``: the rater page and its calls, outside Streamlit, and the owner's results.

A study lives in ``$STUDIO_RESULTS_DIR/studies/<id>/`` (``realesrgan-studio study create``). Its rater link,
``/v1/studies/<id>/rate?key=<rater key>``, makes a rater (a random id the page keeps in the browser, so a rater
who comes back resumes) and reads nothing but that rater's trials: images by random ids, only those of the
rater's own trials, with no method name in any body, URL or header. The owner's key reads the results.
"""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

import core
from core.study import Study, study_results

router = APIRouter(prefix="/v1/studies", tags=["studies"])
_PAGE = (Path(__file__).with_name("rater.html")).read_text(encoding="utf-8")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_open: dict[str, Study] = {}
_lock = threading.Lock()
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def studies_dir() -> Path:
    return core.default_results_dir() / "studies"


def _study(sid: str) -> Study:
    if not _ID.fullmatch(sid) or sid.startswith("."):
        raise HTTPException(404, "No such study.")
    folder = studies_dir() / sid
    with _lock:
        if sid not in _open or _open[sid].folder != folder:
            try:
                _open[sid] = Study.open(folder)
            except core.StudioError:
                raise HTTPException(404, "No such study.") from None
        return _open[sid]


def _key(study: Study, name: str, given: str) -> None:
    if not secrets.compare_digest(given.encode(), study.meta(name).encode()):
        raise HTTPException(403, "This link's key is not the study's: ask its owner for the link.")


def _rater(study: Study, rater: str) -> None:
    if not study.known_rater(rater):
        raise HTTPException(404, "Unknown rater.")  # the page then makes a new one


class Answer(BaseModel):
    trial: str
    choice: Literal["left", "right", "tie"]


@router.get("/{sid}/rate", response_class=HTMLResponse, summary="The rater page (share this link)")
def rate(sid: str, key: str = Query(...)) -> HTMLResponse:
    _key(_study(sid), "rater_key", key)
    return HTMLResponse(_PAGE, headers=_PRIVATE | {"Content-Security-Policy": "default-src 'self'; "
                                                   "style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                                                   "img-src 'self'"})


@router.post("/{sid}/raters", summary="A new rater (an anonymous random id)")
def new_rater(sid: str, key: str = Query(...)) -> JSONResponse:
    study = _study(sid)
    _key(study, "rater_key", key)
    return JSONResponse({"rater": study.new_rater()}, headers=_PRIVATE)


@router.get("/{sid}/raters/{rater}/next", summary="The rater's open trial, else a new one")
def next_trial(sid: str, rater: str) -> JSONResponse:
    study = _study(sid)
    _rater(study, rater)
    trial = study.next_trial(rater)
    total = int(study.meta("trials_per_rater"))
    if trial is None:
        return JSONResponse({"trial": None, "done": total, "total": total}, headers=_PRIVATE)
    return JSONResponse({"trial": trial.id, "left": trial.left, "right": trial.right, "done": trial.done,
                         "total": trial.total}, headers=_PRIVATE)


@router.get("/{sid}/raters/{rater}/images/{image}", summary="An image of one of the rater's trials (PNG)")
def image(sid: str, rater: str, image: str) -> Response:
    study = _study(sid)
    _rater(study, rater)
    path = study.image_file(image) if _ID.fullmatch(image) and study.rater_sees(rater, image) else None
    if path is None:
        raise HTTPException(404, "No such image.")
    # the bytes alone: no file name, and no Last-Modified or ETag, whose times would tell the order the outputs
    # were written in (method by method)
    return Response(path.read_bytes(), media_type="image/png", headers=_PRIVATE)


@router.post("/{sid}/raters/{rater}/votes", summary="The rater's answer to a trial (one transaction)")
def vote(sid: str, rater: str, answer: Answer) -> JSONResponse:
    study = _study(sid)
    _rater(study, rater)
    return JSONResponse({"recorded": study.vote(rater, answer.trial, answer.choice)}, headers=_PRIVATE)


@router.get("/{sid}/results", summary="The study's results (the owner's key)")
def results(sid: str, key: str = Query(...), careless: bool = False, resamples: int = Query(1000, ge=0, le=10000)
            ) -> JSONResponse:
    study = _study(sid)
    _key(study, "owner_key", key)
    payload = study_results(study, careless=careless, resamples=resamples).payload()
    return JSONResponse(payload | {"raters": payload["raters"] | {"count": len(study.raters())}}, headers=_PRIVATE)
