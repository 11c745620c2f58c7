"""Shared fixtures: seeded generators, a session weights folder, real sample crops."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import core


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder shared by the session (conversions are cached there once).

    ``STUDIO_WEIGHTS_DIR`` points at it, so the dashboard and the CLI use it too; the
    repository's own ``weights/`` is never touched by tests.
    """
    folder = tmp_path_factory.mktemp("weights")
    os.environ["STUDIO_WEIGHTS_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def x4plus(weights_dir: Path) -> core.Upscaler:
    return core.Upscaler.load("RealESRGAN_x4plus", device="cpu", weights_dir=weights_dir)


@pytest.fixture(scope="session")
def compact(weights_dir: Path) -> core.Upscaler:
    """The tiny, fast realesr-animevideov3 model, for format and plumbing tests."""
    return core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two float arrays (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def describe_difference(a: np.ndarray, b: np.ndarray) -> str:
    """An error histogram for assertion messages."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()
    edges = [0, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, np.inf]
    counts, _ = np.histogram(diff, bins=edges)
    bins = ", ".join(f"<{e:g}: {c}" for e, c in zip(edges[1:], counts))
    return f"max |diff| {diff.max():.3g}, mean {diff.mean():.3g}; histogram {bins}"


_FOLDER_MARKS = {"e2e": ("browser", "slow"), "cluster": ("cluster", "slow")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser and cluster tests are marked by their folder (every one of them starts a server or a cluster);
    other slow tests carry ``@pytest.mark.slow`` themselves."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.fspath).relative_to(root).parts
        for mark in _FOLDER_MARKS.get(parts[0] if len(parts) > 1 else "", ()):
            item.add_marker(mark)
