"""Every STUDIO_* setting is checked at start-up: a wrong one stops the API server (real uvicorn), the CLI and the
dashboard with one line naming it, instead of hanging every request or being silently ignored (issue 38.14)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import core
from api.settings import ApiSettings
from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MODEL = "realesr-animevideov3"

BAD = [
    ("STUDIO_API_MAX_RUNNING", "0", "STUDIO_API_MAX_RUNNING=0 must be a whole number of at least 1"),
    ("STUDIO_API_MAX_RUNNING", "-1", "STUDIO_API_MAX_RUNNING=-1 must be a whole number of at least 1"),
    ("STUDIO_API_MAX_WAITING", "-1", "STUDIO_API_MAX_WAITING=-1 must be a whole number of at least 0"),
    ("STUDIO_API_MAX_BODY_BYTES", "0", "STUDIO_API_MAX_BODY_BYTES=0 must be a whole number of at least 1"),
    ("STUDIO_API_MAX_BODY_BYTES", "1e6", "STUDIO_API_MAX_BODY_BYTES='1e6' is not a whole number"),
    ("STUDIO_API_REQUEST_TIMEOUT", "nan", "STUDIO_API_REQUEST_TIMEOUT='nan' is not a finite number"),
    ("STUDIO_API_REQUEST_TIMEOUT", "inf", "STUDIO_API_REQUEST_TIMEOUT='inf' is not a finite number"),
    ("STUDIO_API_REQUEST_TIMEOUT", "-5", "STUDIO_API_REQUEST_TIMEOUT=-5.0 must be a number of seconds above 0"),
    ("STUDIO_API_BODY_TIMEOUT", "0", "STUDIO_API_BODY_TIMEOUT=0.0 must be a number of seconds above 0"),
    ("STUDIO_API_RETRY_AFTER", "-2", "STUDIO_API_RETRY_AFTER=-2 must be a whole number of at least 0"),
    ("STUDIO_API_MODEL", "no-such-model", "STUDIO_API_MODEL='no-such-model': No model named"),
    ("STUDIO_API_DEVICE", "tpu", "STUDIO_API_DEVICE='tpu' with STUDIO_API_PRECISION='auto': Unknown device"),
    ("STUDIO_API_PRECISION", "fp8", "STUDIO_API_PRECISION='fp8' must be one of auto, fp32, fp16, bf16"),
    ("STUDIO_API_MAX_RUNING", "2", "STUDIO_API_MAX_RUNING is not a setting of the API (a typo?)"),
    ("STUDIO_ENGINE", "tensorrt", "STUDIO_ENGINE='tensorrt' is not an engine"),
    ("STUDIO_MAX_MODELS", "0", "STUDIO_MAX_MODELS='0' must be a whole number of at least 1"),
    ("STUDIO_WEIGHTS_DIR", "/dev/null", "STUDIO_WEIGHTS_DIR=/dev/null is not a folder"),
    ("STUDIO_RESULTS_DIR", "", "STUDIO_RESULTS_DIR='' is not a folder path"),
    ("STUDIO_WIEGHTS_DIR", "/tmp", "STUDIO_WIEGHTS_DIR is not a studio setting (a typo?)"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_a_wrong_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, weights_dir: Path, name: str,
                                                   value: str, message: str) -> None:
    monkeypatch.setenv("STUDIO_API_DEVICE", "cpu")
    monkeypatch.setenv(name, value)
    with pytest.raises(core.errors.SettingsError) as caught:
        ApiSettings.from_env()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_right_settings_are_read(monkeypatch: pytest.MonkeyPatch, weights_dir: Path) -> None:
    for name, value in (("STUDIO_API_MODEL", MODEL), ("STUDIO_API_DEVICE", "cpu"), ("STUDIO_API_MAX_RUNNING", "2"),
                        ("STUDIO_API_REQUEST_TIMEOUT", " 12.5 "), ("STUDIO_API_DOCS", "/docs")):
        monkeypatch.setenv(name, value)
    settings = ApiSettings.from_env()
    assert (settings.model, settings.max_running, settings.request_timeout) == (MODEL, 2, 12.5)


@pytest.mark.parametrize(("name", "value", "message"), [BAD[0], BAD[5], BAD[13], BAD[16]],
                         ids=["max_running=0", "timeout=nan", "typo", "weights=/dev/null"])
@pytest.mark.slow
def test_the_real_server_stops_at_start_up_with_one_line(weights_dir: Path, name: str, value: str,
                                                         message: str) -> None:
    env = os.environ | {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_API_MODEL": MODEL,
                        "STUDIO_API_DEVICE": "cpu", name: value}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "api.serve", "--api-only", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: {proc.stderr.strip().splitlines()[-1][7:]}"
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "Uvicorn running" not in proc.stderr + proc.stdout and time.monotonic() - start < 60


def test_the_cli_and_the_dashboard_refuse_a_file_as_the_weights_folder(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """Issue 38.15: STUDIO_WEIGHTS_DIR=/dev/null said "File exists" from deep inside a model load."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", "/dev/null")
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "error: STUDIO_WEIGHTS_DIR=/dev/null is not a folder (it is a file or a device)" in err
    assert "File exists" not in err
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert any("STUDIO_WEIGHTS_DIR=/dev/null is not a folder" in e.value for e in at.error)
