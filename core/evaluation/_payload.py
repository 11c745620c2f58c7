"""The shape of a ``results.json`` that the readers (``table``, the Benchmark page) rely on, checked before use.

A file edited by hand, written by another tool or damaged on disk used to crash ``table`` and the Benchmark page
with a ``TypeError`` deep inside; it is now refused with its path and the first key that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["payload_problem"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_null(value: Any) -> bool:
    return value is None or _number(value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _mapping(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, dict) and all(isinstance(k, str) and check(v) for k, v in value.items())


def _listing(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


def _row(value: Any) -> bool:
    return (isinstance(value, dict) and _text(value.get("image")) and _text(value.get("method"))
            and _mapping(_number_or_null)(value.get("metrics")) and _number(value.get("seconds", 0.0))
            and _text(value.get("error", "")) and isinstance(value.get("reused", False), bool))


def _settings(value: Any) -> bool:
    return (isinstance(value, dict) and _text(value.get("channel", "y"))
            and (value.get("crop_border") is None or (_number(value["crop_border"]) and value["crop_border"] >= 0)))


def _scale(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16


_SHAPE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (_text, "a name"),
    "scale": (_scale, "a whole number from 1 to 16"),
    "lr_source": (_text, "text"),
    "methods": (_listing(_text), "a list of method names"),
    "metrics": (_mapping(lambda v: isinstance(v, dict)), "an object of metric descriptions"),
    "settings": (_settings, "an object with channel and crop_border"),
    "cancelled": (lambda v: isinstance(v, bool), "true or false"),
    "means": (_mapping(_mapping(_number_or_null)), "an object of per-method means (numbers or null)"),
    "rows": (_listing(_row), "a list of rows, each with image, method, metrics (numbers or null) and seconds"),
    "counts": (_mapping(_mapping(_mapping(lambda v: isinstance(v, int) and v >= 0))),
               "an object of per-method counts"),
    "plan": (lambda v: isinstance(v, dict), "an object"),
}
_OPTIONAL = ("counts", "plan")  # runs written before these were recorded lack them


def payload_problem(payload: Any) -> str | None:
    """What is wrong with a ``results.json`` payload, in words (``"scale should be ..."``), or ``None``."""
    if not isinstance(payload, dict):
        return f"it holds a JSON {type(payload).__name__}, not an object"
    for key, (check, what) in _SHAPE.items():
        if key not in payload:
            if key in _OPTIONAL:
                continue
            return f"it lacks {key}"
        if not check(payload[key]):
            return f"{key} should be {what}"
    for method, means in payload["means"].items():
        for name, value in means.items():
            if value is not None and not math.isfinite(value):
                return f"means.{method}.{name} is not a finite number"
    return None
