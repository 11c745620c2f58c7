"""The API on a real uvicorn server on 127.0.0.1: client, fuzzing, bounded load, one-process layout."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

import core
from api import client as api_client

ROOT = Path(__file__).resolve().parents[2]
MODEL = "realesr-animevideov3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def _start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    handle = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--port", str(port), *args], cwd=ROOT,
                            env=os.environ | env, stdout=handle, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def api_server(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    env = {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_API_MODEL": MODEL, "STUDIO_API_DEVICE": "cpu",
           "STUDIO_API_MAX_WAITING": "8", "STUDIO_API_MAX_BODY_BYTES": "5000000"}
    proc, url = _start(["--api-only"], env, tmp_path_factory.mktemp("api") / "server.log")
    try:
        _wait_for(f"{url}/readyz")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_client_cli_modern_and_legacy(api_server: tuple[str, int], tmp_path: Path) -> None:
    url, _ = api_server
    image = core.write_png(tmp_path / "in.png", core.load_sample("rocket")[:20, :24])
    for extra, name in (([], "modern.png"), (["--legacy"], "legacy.png")):
        proc = subprocess.run([sys.executable, "-m", "api.client", str(image), "-o", str(tmp_path / name),
                               "--url", url, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert core.read_image(tmp_path / name).shape == (80, 96, 3)
    png, headers = api_client.upscale_bytes(image.read_bytes(), url=url, outscale=2)
    assert headers["x-output-size"] == "48x40" and core.decode_image(png).shape == (40, 48, 3)
    with pytest.raises(api_client.ApiError) as info:
        api_client.upscale_bytes(b"nope", url=url)
    assert info.value.status == 400
    bad = subprocess.run([sys.executable, "-m", "api.client", str(image), "-o", str(tmp_path / "x.png"),
                          "--url", url, "--model", "RealESRNet_x4plus"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "409" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_fuzzing_from_the_openapi_schema_finds_no_5xx(api_server: tuple[str, int]) -> None:
    """Schemathesis generates requests for every operation; none may give a 5xx (503 busy aside) or hang."""
    url, _ = api_server
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: dict[str, set[int]] = {}

    def fuzz(operation) -> None:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            response = case.call(base_url=url, timeout=60)
            seen.setdefault(operation.label, set()).add(response.status_code)
            busy = response.status_code == 503 and response.headers.get("Retry-After")
            assert response.status_code < 500 or busy, (operation.label, response.status_code, response.text[:300])

        check()

    for result in api.get_all_operations():
        fuzz(result.ok())
    assert len(seen) >= 6, seen
    assert any(400 <= code < 500 for codes in seen.values() for code in codes)  # it did send bad requests


@pytest.mark.slow
def test_bounded_load(api_server: tuple[str, int]) -> None:
    url, pid = api_server
    images = [core.encode_png(core.load_sample(name)[:32, :32]) for name in ("chelsea", "coffee", "rocket")]
    for data in images:  # warm-up
        api_client.upscale_bytes(data, url=url)
    time.sleep(0.5)
    rss_start = _rss_mb(pid)
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        start = time.perf_counter()
        try:
            png, _ = api_client.upscale_bytes(images[index % 3], url=url, timeout=60)
            status = 200 if core.decode_image(png).shape == (128, 128, 3) else -1
        except api_client.ApiError as exc:
            status = exc.status
        with lock:
            latencies.append(time.perf_counter() - start)
            statuses.append(status)

    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    wall = time.perf_counter() - began
    time.sleep(1.0)
    rss_end = _rss_mb(pid)
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) >= 50
    assert rss_end - rss_start < 150, f"server memory grew from {rss_start:.0f} to {rss_end:.0f} MB"
    ok = sorted(latency for latency, status in zip(latencies, statuses) if status == 200)
    report = {
        "requests": 200, "concurrency": 8, "ok": statuses.count(200), "busy_503": statuses.count(503),
        "p50_s": statistics.median(ok), "p95_s": ok[int(0.95 * (len(ok) - 1))],
        "throughput_ok_per_s": statuses.count(200) / wall, "wall_s": wall,
        "rss_start_mb": rss_start, "rss_end_mb": rss_end,
    }
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "api_load.json").write_text(json.dumps(report, indent=2))


@pytest.mark.slow
def test_dashboard_and_api_in_one_process(weights_dir: Path, tmp_path: Path) -> None:
    """One uvicorn process: Streamlit page, its websocket, the API routes, and a clean shutdown."""
    from websockets.sync.client import connect

    env = {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_API_MODEL": MODEL, "STUDIO_API_DEVICE": "cpu",
           "STUDIO_RESULTS_DIR": str(tmp_path / "results")}
    proc, url = _start([], env, tmp_path / "server.log")
    try:
        _wait_for(f"{url}/readyz")
        _wait_for(f"{url}/_stcore/health")
        with urllib.request.urlopen(f"{url}/", timeout=10) as response:
            page = response.read().decode()
            assert "<title>Streamlit</title>" in page or response.status == 200
        asset = re.search(r'(?:src|href)="\.?(/static/[^"]+)"', page)
        assert asset, page[:500]
        with urllib.request.urlopen(f"{url}{asset[1]}", timeout=10) as response:
            assert response.status == 200
        for probe in ("health", "host-config"):  # a page opened directly: Streamlit's client looks for its base path
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"{url}/benchmark/_stcore/{probe}", timeout=10)
        with connect(url.replace("http", "ws") + "/_stcore/stream", open_timeout=10) as socket_:
            assert socket_.protocol.state.name == "OPEN"
        with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as response:
            assert any(m["name"] == MODEL for m in json.loads(response.read()))
        png = api_client.upscale_legacy(core.encode_png(np.zeros((8, 8, 3), np.uint8)), url=url)
        assert core.decode_image(png).shape == (32, 32, 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    log = (tmp_path / "server.log").read_text()
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -SIGTERM is a clean exit here
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, f"exit {code}: {log[-2000:]}"
    assert "Traceback" not in log, log[-3000:]
    # the log says what the server does, not which static files it served
    assert "loading the default model" in log and "default model ready in" in log, log[-3000:]
    assert "GET /v1/models" in log and "GET /_stcore/health" not in log and asset[1] not in log, log[-3000:]
    assert "/benchmark/_stcore" not in log, log[-3000:]  # the base-path probe's expected 404s


def _send_upload(url: str, png: bytes, fields: dict[str, str]) -> socket.socket:
    """Send a multipart /v1/upscale request on a raw socket and leave it open (no read)."""
    boundary = "studio-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
                 "Content-Type: image/png\r\n\r\n".encode() + png + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                 f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + body)
    return sock


@pytest.mark.slow
def test_a_client_that_disconnects_frees_the_worker(api_server: tuple[str, int]) -> None:
    """A long job whose client leaves is cancelled, running or still waiting; the next request is served at once."""
    url, pid = api_server
    log = Path(f"/proc/{pid}/fd/1").resolve()
    before = log.read_text().count("its job was cancelled")
    big = core.encode_png(np.tile(core.load_sample("chelsea")[:256, :256], (4, 4, 1)))  # 1024², x4 at 32-px tiles
    small = core.encode_png(core.load_sample("rocket")[:16, :16])
    api_client.upscale_bytes(small, url=url)  # warm
    start = time.perf_counter()
    api_client.upscale_bytes(small, url=url)
    alone = time.perf_counter() - start
    running = _send_upload(url, big, {"tile": "32"})
    time.sleep(1.5)
    waiting = _send_upload(url, big, {"tile": "32"})
    time.sleep(1.0)
    waiting.close()  # leaves while queued
    running.close()  # leaves while its job runs
    start = time.perf_counter()
    png, _ = api_client.upscale_bytes(small, url=url, timeout=120)
    after = time.perf_counter() - start
    assert core.decode_image(png).shape == (64, 64, 3)
    # the two abandoned jobs take minutes on this CPU; cancelled, they cost at most a tile each
    assert after < alone + 10, f"the next request waited {after:.1f} s (alone: {alone:.2f} s)"
    deadline = time.monotonic() + 10
    while log.read_text().count("its job was cancelled") < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert log.read_text().count("its job was cancelled") == before + 2, log.read_text()[-2000:]


def _status_of(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    """The status code and raw reply read from ``sock`` (0 if the connection closed unanswered)."""
    sock.settimeout(timeout)
    reply = b""
    try:
        while chunk := sock.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and b'"}' in reply:
                break
    except TimeoutError:
        pass
    return (int(reply.split()[1]) if reply.startswith(b"HTTP/1.1") else 0), reply


@pytest.mark.slow
def test_sigterm_answers_in_flight_requests_before_exiting(weights_dir: Path, tmp_path: Path) -> None:
    """A SIGTERM during a minutes-long job: it and a queued one get 503 + Retry-After within the grace period."""
    from api.serve import GRACE

    env = {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_API_MODEL": MODEL, "STUDIO_API_DEVICE": "cpu"}
    proc, url = _start(["--api-only"], env, tmp_path / "server.log")
    try:
        _wait_for(f"{url}/readyz")
        big = core.encode_png(np.tile(core.load_sample("chelsea")[:256, :256], (4, 4, 1)))
        running = _send_upload(url, big, {"tile": "32"})
        time.sleep(1.5)
        waiting = _send_upload(url, big, {"tile": "32"})
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        replies = [_status_of(sock, GRACE + 5) for sock in (running, waiting)]
        answered = time.monotonic() - start
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    log = (tmp_path / "server.log").read_text()
    for status, reply in replies:
        assert status == 503 and b"retry-after" in reply.lower() and b"shutting down" in reply, (reply[:300], log)
    assert answered < GRACE, answered
    assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log[-2000:]
