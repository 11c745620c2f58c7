"""What a metric is: its metadata as data (:class:`MetricInfo`) and the registry front ends list.

A metric declares its kind, direction, range, colour space, crop policy, the devices it runs on,
the weights it needs (with source, checksum and licence) and the implementation its numbers are
checked against; ``compute`` is the maths. Adding a metric is one module with its function and one
``add`` line in :mod:`core.metrics._metrics`; front ends list what is registered.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from ..errors import UnknownNameError
from ._pixel import Channel, Grey

__all__ = ["FULL_REFERENCE", "NO_REFERENCE", "Kind", "MetricInfo", "MetricOptions", "MetricRegistry", "WeightsFile"]

Kind = Literal["full-reference", "no-reference", "dataset"]
FULL_REFERENCE: Kind = "full-reference"
NO_REFERENCE: Kind = "no-reference"


@dataclass(frozen=True)
class MetricOptions:
    """How a pair is scored: the border cropped on each side, the channel, how grey is read, and the torch
    device learned metrics run on (``cpu``, ``cuda``, ``cuda:1``; hand-made metrics ignore it)."""

    crop_border: int = 0
    channel: Channel = "y"
    grey: Grey = "rgb"
    device: str = "cpu"


@dataclass(frozen=True)
class WeightsFile:
    """A network file a learned metric needs: fetched from ``url`` on request, or dropped into ``weights/metrics/``.

    ``sha256``: the file's digest, or its first 8 hex digits where the file's own name carries them and its
    loader checks them (torchvision), or empty where another package fetches and checks its files (pyiqa);
    ``size`` in bytes, ``None`` where not recorded."""

    name: str
    url: str
    sha256: str
    licence: str
    size: int | None


# (image, reference or None, options) -> value; raises ValueError where the pair cannot be scored
Compute = Callable[[np.ndarray, "np.ndarray | None", MetricOptions], float]


@dataclass(frozen=True)
class MetricInfo:
    """A metric and everything a table, a chart or a scheduler needs to know about it.

    Attributes:
        name: key (``psnr``, ``ssim``, ``niqe``).
        title: display name.
        kind: ``full-reference`` (needs a ground truth), ``no-reference`` or ``dataset`` (one value per set).
        higher_is_better: direction of improvement.
        unit: ``"dB"`` or ``""``.
        description: how it is computed, one line.
        value_range: the values it can take.
        colour: the colour space it scores.
        crop: which border is cropped (``"scale"``: the evaluation's crop border; ``"none"``).
        devices: where it runs (``"cpu"``; learned metrics add ``"cuda"``).
        weights: the network files it needs (none for hand-made metrics).
        reference: the implementation its numbers are checked against.
        compute: the maths (see :data:`Compute`).
    """

    name: str
    title: str
    kind: Kind
    higher_is_better: bool
    unit: str
    description: str
    value_range: tuple[float, float]
    colour: str
    crop: str
    reference: str
    compute: Compute = field(compare=False, repr=False)
    devices: tuple[str, ...] = ("cpu",)
    weights: tuple[WeightsFile, ...] = ()
    ready: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)
    """Whether its weights are here (a metric without weights always is)."""
    download: Callable[[Callable[[int, int | None], None] | None], None] | None = field(
        default=None, compare=False, repr=False)
    """Fetches its weights, with a ``(bytes done, total)`` progress callback."""
    version: int = 1
    """Raised when a fix changes its values, so results stored before are computed again."""

    @property
    def full_reference(self) -> bool:
        return self.kind == FULL_REFERENCE

    @property
    def learned(self) -> bool:
        """Whether it runs a network (it needs weights): seconds per image on a CPU, where the others take less."""
        return bool(self.weights)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def to_json(self) -> dict[str, Any]:
        """The metadata (not the maths), as a results file records it."""
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("compute", "ready", "download", "version")}
        return data | {"full_reference": self.full_reference, "value_range": list(self.value_range),
                       "weights": [asdict(w) for w in self.weights], "devices": list(self.devices)}


class MetricRegistry(Mapping[str, MetricInfo]):
    """Metrics by name, in the order they were added (the order of table columns)."""

    def __init__(self) -> None:
        self._metrics: dict[str, MetricInfo] = {}

    @contextmanager
    def scoped(self) -> Iterator[MetricRegistry]:
        """Within the block, metrics added (a test's, a plugin tried out) are gone again afterwards."""
        saved = dict(self._metrics)
        try:
            yield self
        finally:
            self._metrics = saved

    def add(self, metric: MetricInfo) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"A metric named {metric.name!r} is already registered.")
        self._metrics[metric.name] = metric

    def replace(self, metric: MetricInfo) -> None:
        """Put ``metric`` in place of the registered one of its name (a fix with a new ``version``).

        Raises:
            UnknownNameError: no metric of that name is registered.
        """
        self.get_metric(metric.name)
        self._metrics[metric.name] = metric

    def __getitem__(self, name: str) -> MetricInfo:
        return self._metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def get_metric(self, name: str) -> MetricInfo:
        """The metric called ``name``.

        Raises:
            UnknownNameError: an unknown name (the message lists the metrics and suggests the closest).
        """
        if name not in self._metrics:
            close = difflib.get_close_matches(name, self._metrics, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"Unknown metric {name!r}; known: {', '.join(self._metrics)}.{hint}")
        return self._metrics[name]

    def names(self, kind: Kind | None = None, *, ready: bool = False) -> list[str]:
        """The metrics' names, of one ``kind`` where given; with ``ready``, only those whose weights are here."""
        return [m.name for m in self._metrics.values()
                if (kind is None or m.kind == kind) and (not ready or m.ready())]
