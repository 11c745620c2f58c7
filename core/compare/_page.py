"""The comparison viewer as one self-contained HTML document: every image inline (PNG data URIs), the
script and styles inline, a Content-Security-Policy that allows no request at all. The dashboard shows
it in a frame (on previews); :func:`comparison_page` writes it as a page to share, at full resolution."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .._files import write_file
from .._io import encode_png, to_display
from .._resize import resize
from ..metrics import HEAT_RAMP, METRICS, Heat
from ._run import LR_PSNR, Comparison

__all__ = ["VIEWS", "Pane", "comparison_page", "image_uri", "panes_of", "viewer_html", "write_comparison"]

# the maps each pane can show instead of its image: key -> (menu title, the summary's name)
VIEWS = {"ssim": ("SSIM map vs HR", "SSIM"), "lr": ("LR consistency", "LR-PSNR")}
MODES = ("grid", "slider", "side", "flicker", "diff")


@dataclass(frozen=True)
class Pane:
    """One method in the viewer: its image on the grid, a caption (its scores), and its maps."""

    label: str
    image: np.ndarray
    caption: str = ""
    maps: dict[str, Heat] = field(default_factory=dict)


def image_uri(image: np.ndarray, compression: int = 1) -> str:
    """``image`` as an 8-bit PNG data URI (16-bit and float shown as 8-bit, as the viewer draws them)."""
    return _data_uri(image, compression)


def _data_uri(image: np.ndarray, compression: int) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(to_display(image), compression)).decode()


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[:2] == size else resize(image, size, "area")


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "∞" if math.isinf(value) else f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _summary(value: float) -> str:
    return _number(value, 2 if abs(value) > 2 else 4)


def viewer_html(panes: list[Pane], *, size: tuple[int, int] | None = None, height: int | None = 520,
                one_to_one: float = 1.0, note: str = "", mode: str = "slider", bridge: str | None = None) -> str:
    """The viewer for ``panes`` (2 or more, every image and map on the first image's grid), drawn at
    ``size = (height, width)`` (default: the grid; a smaller size is a preview). ``height``: the view's
    height in px, ``None`` to fill the window. ``one_to_one``: screen px per shown px at "1:1".

    ``bridge``: a preview in a page that serves real pixels. Past 100 % of the preview, the viewer
    dispatches a ``studio-view`` event on its parent document (``detail``: this key, the full-resolution
    ``rect = [x0, y0, x1, y1]`` in view and the pane indexes shown); the page answers with
    ``window.studioViewer.addTiles({rect, srcs: {index: data URI}})``, laid over the preview."""
    return _document(panes, _Layout(size, height, one_to_one, note, mode, bridge=bridge))


@dataclass(frozen=True)
class _Layout:
    """How the viewer is drawn (see :func:`viewer_html`); ``header``, ``table`` and ``title`` make it a page."""

    size: tuple[int, int] | None = None
    height: int | None = 520
    one_to_one: float = 1.0
    note: str = ""
    mode: str = "slider"
    compression: int = 1
    bridge: str | None = None
    header: str = ""
    table: str = ""
    title: str = "Comparison"


def _document(panes: list[Pane], layout: _Layout) -> str:
    size, height, mode, compression = layout.size, layout.height, layout.mode, layout.compression
    header = layout.header
    if len(panes) < 2:
        raise ValueError("A comparison needs at least two images.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    grid = panes[0].image.shape[:2]
    size = size or grid
    images = [{"label": p.label, "caption": p.caption, "src": _data_uri(_fit(p.image, size), compression)}
              for p in panes]
    views = {}
    for key, (menu, summary_name) in VIEWS.items():
        maps = [p.maps.get(key) for p in panes]
        if not any(maps):
            continue
        first = next(m for m in maps if m is not None)
        views[key] = {
            "title": menu, "label": first.label, "summaryLabel": summary_name,
            "low": f"{first.low:g}", "high": f"{max(m.high for m in maps if m):g}",
            "srcs": [_data_uri(_fit(_colours(m, maps), size), compression) if m else None for m in maps],
            "summaries": [_summary(m.summary) if m else None for m in maps],
        }
    data = {"grid": [size[1], size[0]], "one": float(layout.one_to_one), "panes": images, "views": views,
            "ramp": HEAT_RAMP.tolist(), "bridge": layout.bridge, "full": [grid[1], grid[0]]}
    template = (resources.files("core.compare") / "viewer.html").read_text(encoding="utf-8")
    replacements = {
        "__DATA__": _script_json(data), "__MODE__": _script_json(mode),
        "__HEIGHT__": f"{height}px" if height else "calc(100vh - 150px)", "__NOTE__": html.escape(layout.note),
        "__COUNT__": str(min(9, len(panes))), "__TITLE__": html.escape(layout.title), "__HEADER__": header,
        "__TABLE__": layout.table, "__BODY_CLASS__": "page" if header else "",
        "__BACKGROUND__": "#0e1117" if header else "transparent",
    }
    # one pass: a value that holds a placeholder's name (a file called __TABLE__.png) is never filled again
    return _PLACEHOLDER.sub(lambda found: replacements.get(found.group(0), found.group(0)), template)


_PLACEHOLDER = re.compile(r"__[A-Z_]+__")
# inside <script>, JSON must not hold "<" (``</script>``, ``<!--``), nor the two line separators JavaScript
# ends a line at; their \\u escapes decode to the same strings
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _script_json(value: object) -> str:
    """``value`` as JSON safe to place inside a ``<script>`` element."""
    text = json.dumps(value)
    for raw, escaped in _SCRIPT_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def _colours(heat: Heat, maps: list[Heat | None]) -> np.ndarray:
    """A map's colours on the scale shared by every pane's map of the same kind (the largest top)."""
    top = max(m.high for m in maps if m is not None)
    return heat.colours() if top == heat.high else Heat(heat.values, heat.low, top, heat.label, heat.summary).colours()


def _caption(scores: dict[str, float | None]) -> str:
    parts = []
    for name, value in scores.items():
        title = "LR-PSNR" if name == LR_PSNR else METRICS[name].title
        parts.append(f"{title} {_number(value, 4 if name != LR_PSNR and METRICS[name].title != 'PSNR' else 2)}")
    return " · ".join(parts)


def panes_of(comparison: Comparison, labels: dict[str, str] | None = None, *,
             scores: tuple[str, ...] | None = None) -> list[Pane]:
    """One pane per method of ``comparison``, captioned with its scores (only those named in ``scores``)."""
    labels = labels or {}
    return [Pane(labels.get(m, "HR reference" if m == "hr" else m), output,
                 _caption({k: v for k, v in comparison.scores.get(m, {}).items() if scores is None or k in scores}),
                 comparison.maps.get(m, {})) for m, output in comparison.outputs.items()]


def _table(comparison: Comparison) -> str:
    columns = [*comparison.metrics, *([LR_PSNR] if comparison.image is not None else [])]  # LR-PSNR needs the input
    higher = {name: True if name == LR_PSNR else METRICS[name].higher_is_better for name in columns}
    best = {}
    for name in columns:
        values = [v for m, r in comparison.scores.items() if m != "hr" and (v := r.get(name)) is not None
                  and not math.isnan(v)]
        best[name] = (max if higher[name] else min)(values) if values else None
    head = "".join(f"<th>{html.escape(_title(n))} {'↑' if higher[n] else '↓'}</th>" for n in columns)
    rows = []
    for method, scores in comparison.scores.items():
        cells = []
        for name in columns:
            value = scores.get(name)
            bold = method != "hr" and value is not None and value == best[name]
            cells.append(('<td class="best">' if bold else "<td>") + f"{_number(value)}</td>")
        seconds = comparison.seconds.get(method)
        cells.append(f"<td>{'—' if seconds is None else f'{seconds:.2f}'}</td>")
        rows.append(f"<tr><td>{html.escape('HR reference' if method == 'hr' else method)}</td>{''.join(cells)}</tr>")
    return (f'<table id="scores"><thead><tr><th>method</th>{head}<th>seconds</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            "<p class=\"sub\">Best per column in bold (the HR reference is not counted)."
            + (" LR-PSNR: each output brought back to the input's size (MATLAB bicubic) against the input, on Y; "
               "high means faithful to the input." if comparison.image is not None else "") + "</p>")


def _title(name: str) -> str:
    return "LR-PSNR" if name == LR_PSNR else METRICS[name].title


def comparison_page(comparison: Comparison, *, title: str, note: str = "") -> str:
    """A standalone page: the viewer on every output at full resolution (grid mode), the maps, and the
    scores table. It makes no request: open it from disk, offline."""
    grid = next(iter(comparison.outputs.values())).shape[:2]
    lr = comparison.image.shape[:2] if comparison.image is not None else None
    size = f"Input {lr[1]}x{lr[0]} → {grid[1]}x{grid[0]}" if lr is not None else f"{grid[1]}x{grid[0]}, no input"
    header = (f"<h1>{html.escape(title)}</h1><p class=\"sub\">{size}"
              f"{' · ' + html.escape(note) if note else ''} · made with realesrgan-studio</p>")
    layout = _Layout(size=None, height=None, mode="grid", compression=6, header=header, table=_table(comparison),
                     title=title)
    return _document(panes_of(comparison), layout)


def write_comparison(path: str | Path, comparison: Comparison, *, title: str, note: str = "") -> Path:
    """Write :func:`comparison_page` to ``path`` atomically (a reader never sees half a page)."""
    return write_file(path, comparison_page(comparison, title=title, note=note))
