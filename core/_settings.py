"""Every ``STUDIO_*`` environment setting, read in this one module.

* ``STUDIO_WEIGHTS_DIR``: the weights folder (default: ``weights/`` in the repository).
* ``STUDIO_RESULTS_DIR``: where evaluations and benchmarks are written (default: ``results/``
  in the repository), for the dashboard and the CLI alike.
* ``STUDIO_ENGINE``: the network engine every front end loads models with: ``auto`` (default: on
  the CPU, the engine measured fastest per model), ``torch``, ``ncnn`` or ``openvino`` (e.g. the
  lean OpenVINO path where RAM is short).
* ``STUDIO_MAX_MODELS``: how many loaded models a dashboard / API process keeps (default 4; the least
  recently used goes first, and sooner when the host runs short of memory).
* ``STUDIO_API_<FIELD>``: any scalar field of the API's settings dataclass (``api/settings.py``),
  read by :func:`settings_from_env` from the dataclass itself, so defaults are written once.
* ``STUDIO_API_DOCS``: set by ``python -m api.serve`` for the dashboard beside it (the API docs' address).

Every front end calls :func:`core.check_environment` (``core/engines/_startup.py``) at start-up: a wrong
value, or a ``STUDIO_*`` name that is none
of these, is one line naming it, before anything runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

__all__ = ["KNOWN_NAMES", "check_folder_setting", "default_results_dir", "default_weights_dir", "max_models",
           "settings_from_env"]

KNOWN_NAMES = ("STUDIO_WEIGHTS_DIR", "STUDIO_RESULTS_DIR", "STUDIO_ENGINE", "STUDIO_MAX_MODELS", "STUDIO_API_DOCS")


_REPOSITORY = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def default_weights_dir() -> Path:
    """The weights folder: ``$STUDIO_WEIGHTS_DIR`` if set, else ``weights/`` in the repository."""
    env = os.environ.get("STUDIO_WEIGHTS_DIR")
    return Path(env) if env else _REPOSITORY / "weights"


def max_models() -> int:
    """``$STUDIO_MAX_MODELS`` if set (at least 1), else 4.

    Raises:
        SettingsError: a value that is not a whole number of at least 1.
    """
    from .errors import SettingsError

    raw = os.environ.get("STUDIO_MAX_MODELS", "4").strip() or "4"
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"STUDIO_MAX_MODELS={raw!r} must be a whole number of at least 1.")
    return int(raw)


def default_results_dir() -> Path:
    """The results folder: ``$STUDIO_RESULTS_DIR`` if set, else ``results/`` in the repository."""
    env = os.environ.get("STUDIO_RESULTS_DIR")
    return Path(env) if env else _REPOSITORY / "results"


def check_folder_setting(name: str) -> None:
    """Raise :class:`SettingsError` where ``$name`` is set to something that is not a folder path."""
    from .errors import SettingsError

    raw = os.environ.get(name)
    if raw is None:
        return
    if not raw.strip() or "\0" in raw:
        raise SettingsError(f"{name}={raw!r} is not a folder path; unset it for the default, or give a folder.")
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name}={raw} is not a folder (it is a file or a device); give a folder, which is "
                            "made if it does not exist.")


def settings_from_env(cls: type[T], prefix: str) -> T:
    """An instance of the frozen dataclass ``cls`` whose scalar fields (str, int, float, bool) are
    overridden by ``$<prefix><FIELD NAME>`` where set; the other fields keep their defaults.

    Raises:
        ValueError: a variable that does not parse as its field's type (the message names it).
    """
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f"{prefix}{field.name.upper()}"
        raw = os.environ.get(name)
        kind = hints[field.name]
        if raw is None or kind not in (str, int, float, bool):
            continue
        try:
            values[field.name] = _parse(raw, kind)
        except ValueError as exc:
            from .errors import SettingsError

            raise SettingsError(f"{name}={raw!r} is not {_KINDS[kind]}.") from exc
    return cls(**values)


_KINDS = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}


def _parse(raw: str, kind: type) -> Any:
    """``raw`` as ``kind``: booleans in words or 0 / 1 (anything else is refused, not taken as false), floats finite."""
    text = raw.strip()
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind is float:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(raw)
        return value
    return kind(text) if kind is int else raw
