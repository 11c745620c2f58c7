"""The bundled sample images (``samples/*.png``, see ``samples/README.md``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import read_image

__all__ = ["SAMPLES_DIR", "list_samples", "load_sample"]

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


def list_samples() -> list[str]:
    """Names of the bundled samples (file stems), sorted."""
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.png"))


def load_sample(name: str) -> np.ndarray:
    """Load a bundled sample by name; raises ``KeyError`` for an unknown name."""
    path = SAMPLES_DIR / f"{name}.png"
    if not path.is_file():
        raise KeyError(f"No sample named {name!r}; samples: {', '.join(list_samples())}.")
    return read_image(path)
