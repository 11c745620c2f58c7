"""Every ``STUDIO_*`` setting checked at start-up (:func:`check_environment`). It lives with the engines because
``STUDIO_ENGINE`` is checked against the engine registry, which the base layer (``core/_settings.py``) cannot see."""

from __future__ import annotations

import dataclasses
import os
from typing import TypeVar, overload

from .._settings import KNOWN_NAMES, check_folder_setting, max_models, settings_from_env
from ..errors import SettingsError
from ._engines import default_engine

__all__ = ["check_environment"]

T = TypeVar("T")


@overload
def check_environment(settings: None = None, prefix: str = ...) -> None: ...
@overload
def check_environment(settings: type[T], prefix: str = ...) -> T: ...
def check_environment(settings: type[T] | None = None, prefix: str = "STUDIO_API_") -> T | None:
    """Every ``STUDIO_*`` variable that is set, checked at start-up, so a wrong one is one clear line before
    anything runs (not a "File exists" from deep inside a model load, or a setting silently ignored); with a
    ``settings`` dataclass, that dataclass read from its ``<prefix><FIELD>`` variables (:func:`settings_from_env`).

    A ``<prefix>*`` name that is no field of ``settings`` (a typo, ``STUDIO_API_MAX_RUNING``) is refused; front ends
    that read no such settings (the CLI, the dashboard alone) leave ``STUDIO_API_*`` to the API.

    Raises:
        SettingsError: the first variable that is wrong, by name and value, and what it should be.
    """
    api_fields = tuple(f.name for f in dataclasses.fields(settings)) if settings is not None else ()  # type: ignore[arg-type]

    check_folder_setting("STUDIO_WEIGHTS_DIR")
    check_folder_setting("STUDIO_RESULTS_DIR")
    max_models()
    default_engine()
    api = {f"{prefix}{name.upper()}" for name in api_fields}
    for name in sorted(os.environ):
        if not name.startswith("STUDIO_") or name in KNOWN_NAMES:
            continue
        if name.startswith(prefix):
            if settings is not None and name not in api:
                raise SettingsError(f"{name} is not a setting of the API (a typo?); known: {', '.join(sorted(api))}.")
            continue
        known = ", ".join(KNOWN_NAMES[:4])
        raise SettingsError(f"{name} is not a studio setting (a typo?); known: {known} and {prefix}*.")
    return settings_from_env(settings, prefix) if settings is not None else None
