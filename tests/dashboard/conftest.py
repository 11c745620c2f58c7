"""Fixtures of the dashboard tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def results_dir(weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's weights and a results folder of the test's own, as the pages' AppTest modules use."""
    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"
