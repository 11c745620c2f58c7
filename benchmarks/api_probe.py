"""Probe a real API server with bad and hostile requests, then load it; print status counts and memory.

    .venv/bin/python benchmarks/api_probe.py [--model realesr-animevideov3] [--requests 120]

Starts ``python -m api.serve --api-only`` on a free port (CPU, the model given), sends each
probe once (the reply's status is printed against what we expect), then 8 and 16 concurrent
clients, and reports the server's peak RSS (VmHWM) after each phase. A 5xx other than a
deliberate 503 (busy, with Retry-After) is a failure: the script exits 1.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402


def _chunk(kind: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb() -> bytes:
    """A ~90-byte 16-bit PNG whose IDAT declares about 4 GB."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 16, 2, 0, 0, 0))
            + _chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00")
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 8), declared=0xFFFFFF00) + _chunk(b"IEND", b""))


def _multipart(png: bytes, fields: dict[str, str], files: int = 1) -> tuple[bytes, str]:
    boundary = "probe-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
              "Content-Type: image/png\r\n\r\n".encode() + png + b"\r\n"] * files
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             chunked: bool = False, timeout: float = 300) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunked and body is not None:
            conn.request(method, path, body=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                         headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _tiff(array, **options) -> bytes:
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _raw(port: int, head: bytes, body: bytes, wait: float) -> int:
    """Send ``head + body`` on a raw socket, then nothing; the status of the reply within ``wait`` s (0: none)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        sock.settimeout(wait)
        try:
            reply = sock.recv(65536)
        except TimeoutError:
            return 0
    return int(reply.split()[1]) if reply.startswith(b"HTTP/1.1") else 0


def _metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and line[0] != "#"}


def probes(port: int) -> list[tuple[str, int, int]]:
    """(name, expected status, got) for each hostile or broken request."""
    import numpy as np
    from PIL import Image, ImageCms

    small = core.encode_png(core.load_sample("rocket")[:24, :24])
    cases: list[tuple[str, int, int]] = []

    def upload(name: str, expected: int, png: bytes, fields: dict[str, str] | None = None, **kw) -> None:
        body, kind = _multipart(png, fields or {})
        status, _ = _request(port, "POST", "/v1/upscale", body, {"Content-Type": kind}, **kw)
        cases.append((name, expected, status))

    def legacy(name: str, expected: int, payload: object) -> None:
        status, _ = _request(port, "POST", "/inference", json.dumps(payload).encode(),
                             {"Content-Type": "application/json"})
        cases.append((name, expected, status))

    upload("valid upload", 200, small)
    upload("91-byte 16-bit PNG declaring a 4 GB IDAT", 400, _png_bomb())
    upload("not an image", 400, b"hello")
    upload("truncated PNG", 400, small[: len(small) // 2])
    upload("20000x20000 PNG header (pixel bomb)", 413,
           b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    upload("tile=1", 422, small, {"tile": "1"})
    upload("tile=0 (untiled where it fits)", 200, small, {"tile": "0"})
    upload("outscale=99", 422, small, {"outscale": "99"})
    upload("unknown model", 404, small, {"model": "nope"})
    upload("model without weights", 409, small, {"model": "RealESRNet_x4plus"})
    upload("body over the limit, declared", 413, b"\0" * (65 * 2**20))
    upload("body over the limit, chunked", 413, b"\0" * (65 * 2**20), chunked=True)
    wrapped = base64.encodebytes(small).decode()
    legacy("legacy, base64 with line breaks", 200, {"img_str": wrapped})
    legacy("legacy, tile=0", 200, {"img_str": base64.b64encode(small).decode(), "tile": 0})
    legacy("legacy, tile=1 (raised to the minimum)", 200, {"img_str": base64.b64encode(small).decode(), "tile": 1})
    legacy("legacy, not base64", 400, {"img_str": "###"})
    legacy("legacy, missing field", 422, {"tile": 0})
    status, _ = _request(port, "POST", "/inference", b"{not json", {"Content-Type": "application/json"})
    cases.append(("legacy, broken JSON", 422, status))
    status, _ = _request(port, "GET", "/v1/models")
    cases.append(("model list", 200, status))
    # issue 25: formats, names, several files, stalled bodies, clients that leave
    rgb16 = (np.arange(24 * 24 * 3).reshape(24, 24, 3) * 97 % 65536).astype(np.uint16)
    upload("16-bit planar RGB TIFF, LZW", 200, _tiff(np.moveaxis(rgb16, -1, 0), photometric="rgb",
                                                     planarconfig="separate", compression="lzw"))
    upload("16-bit TIFF turned by its Orientation tag", 200,
           _tiff(rgb16[:, :20], photometric="rgb", extratags=[(274, "H", 1, 6, True)]))
    upload("16-bit MinIsWhite TIFF", 200, _tiff(rgb16[:, :, 0], photometric="miniswhite"))
    upload("16-bit CMYK TIFF", 415, _tiff(np.dstack([rgb16, rgb16[:, :, :1]]), photometric="separated"))
    upload("float TIFF", 415, _tiff(rgb16.astype(np.float32), photometric="rgb"))
    upload("TIFF cut in half", 400, _tiff(rgb16, photometric="rgb")[:900])
    jpeg = io_bytes(Image.fromarray(core.load_sample("coffee")[:256, :256]), "JPEG", quality=90)
    upload("JPEG cut inside its image data", 400, jpeg[: jpeg.rfind(b"\xff\xda") + 200])
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    body, kind = _multipart(io_bytes(Image.fromarray(core.load_sample("coffee")[:24, :24]), "JPEG",
                                     icc_profile=profile), {})
    png = _body(port, "/v1/upscale", body, kind)
    kept = png is not None and Image.open(__import__("io").BytesIO(png)).info.get("icc_profile") == profile
    cases.append(("JPEG with an ICC profile: the output PNG carries it", 1, int(kept)))
    grey_key = Image.fromarray(core.load_sample("camera")[:24, :24, 0])
    key = int(np.asarray(grey_key)[0, 0])
    upload("grey PNG with a tRNS colour key", 200, io_bytes(grey_key, "PNG", transparency=key))
    double, kind = _multipart(small, {}, files=2)
    status, _ = _request(port, "POST", "/v1/upscale", double, {"Content-Type": kind})
    cases.append(("two file parts", 422, status))
    upload("tile=31", 422, small, {"tile": "31"})
    upload("model named ../../etc/passwd", 404, small, {"model": "../../etc/passwd"})
    upload(f"user file with a non-ASCII name ({ODD_NAME})", 200, small, {"model": ODD_NAME})
    head = (f"POST /v1/upscale HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nContent-Type: {kind}\r\n\r\n"
            .encode())
    start = time.perf_counter()
    status = _raw(port, head, body[:300], wait=60)
    cases.append((f"body stalled after 300 of 1000000 bytes (answered in {time.perf_counter() - start:.1f} s)",
                  408, status))
    before = _metrics(port)
    big, kind = _multipart(core.encode_png(core.load_sample("chelsea")[:256, :256]), {"tile": "32"})
    with socket.create_connection(("127.0.0.1", port)) as sock:  # leaves while its job runs
        sock.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}\r\n"
                     f"Content-Type: {kind}\r\n\r\n".encode() + big)
        time.sleep(1.0)
    time.sleep(2.0)
    after = _metrics(port)
    left = after.get("studio_disconnects_total", 0) - before.get("studio_disconnects_total", 0)
    errors = after["studio_errors_total"] - before["studio_errors_total"]
    cases.append(("a client that leaves: counted as a disconnect (1), not an error (0)", 10, int(10 * left + errors)))
    return cases


ODD_NAME = "模型"


def io_bytes(image, fmt: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _body(port: int, path: str, body: bytes, kind: str) -> bytes | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": kind})
        response = conn.getresponse()
        data = response.read()
        return data if response.status == 200 else None
    finally:
        conn.close()


def first_load_beside(port: int, loaded: str, loading: str) -> dict[str, float]:
    """Seconds a request for a loaded model takes while another model loads for the first time (issue 25,
    point 6), and how long the request that started that load waited for its answer."""
    small = core.encode_png(core.load_sample("rocket")[:16, :16])
    body, kind = _multipart(small, {"model": loaded})
    _request(port, "POST", "/v1/upscale", body, {"Content-Type": kind})  # loaded (on request) and warm
    result: dict[str, float] = {}

    def slow() -> None:
        start = time.perf_counter()
        slow_body, _ = _multipart(small, {"model": loading})
        result["loading_request_status"], _ = _request(port, "POST", "/v1/upscale", slow_body, {"Content-Type": kind})
        result["loading_request_s"] = round(time.perf_counter() - start, 2)

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(slow)
        time.sleep(1.0)
        start = time.perf_counter()
        result["loaded_request_status"], _ = _request(port, "POST", "/v1/upscale", body, {"Content-Type": kind})
        result["loaded_request_s"] = round(time.perf_counter() - start, 2)
        pending.result()
    return result


def load(port: int, concurrency: int, requests: int) -> Counter:
    images = [core.encode_png(core.load_sample(n)[:32, :32]) for n in ("chelsea", "coffee", "rocket")]

    def one(index: int) -> int:
        body, kind = _multipart(images[index % 3], {})
        status, headers = _request(port, "POST", "/v1/upscale", body, {"Content-Type": kind}, timeout=120)
        return -503 if status == 503 and not headers.get("retry-after") else status

    with ThreadPoolExecutor(concurrency) as pool:
        return Counter(pool.map(one, range(requests)))


BAD_SETTINGS = (("STUDIO_API_MAX_RUNNING", "0"), ("STUDIO_API_REQUEST_TIMEOUT", "nan"),
                ("STUDIO_API_REQUEST_TIMEOUT", "-1"), ("STUDIO_API_MAX_WAITING", "-1"),
                ("STUDIO_API_BODY_TIMEOUT", "inf"), ("STUDIO_API_MAX_BODY_BYTES", "-5"),
                ("STUDIO_API_DEVICE", "cuda:7"), ("STUDIO_API_PRECISION", "fp64"), ("STUDIO_API_MODEL", "nope"),
                ("STUDIO_API_MAX_RUNING", "4"), ("STUDIO_WEIGHTS_DIR", "/dev/null"), ("STUDIO_ENGINE", "tensorrt"))


def startup_settings(env: dict[str, str]) -> list[dict[str, object]]:
    """Issue 38.14: the server started with each wrong setting must stop at once, exit 2, with one line naming it
    (before, MAX_RUNNING=0 hung every request and a NaN timeout turned the timeout off)."""
    out = []
    for name, value in BAD_SETTINGS:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "api.serve", "--api-only", "--port", "0"], cwd=ROOT,
                              env=env | {name: value}, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        held = (proc.returncode == 2 and bool(lines) and lines[-1].startswith("error: ") and name in lines[-1]
                and "Traceback" not in proc.stderr)
        out.append({"setting": f"{name}={value}", "held": held, "exit": proc.returncode,
                    "seconds": round(time.monotonic() - start, 1), "line": lines[-1][:160] if lines else ""})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--requests", type=int, default=120, help="requests per load phase")
    parser.add_argument("--timeout", type=float, default=20.0, help="the server's request_timeout (s)")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # a fresh weights folder: the probed model and a copy of it under a non-ASCII name; x4plus has never
    # been loaded there, so its first load (conversion and engine measurement) is a long one
    weights = Path(tempfile.mkdtemp(prefix="probe-weights-"))
    core.Upscaler.load(args.model, device="cpu", weights_dir=weights, engine="torch")  # converts it there
    converted = next(weights.glob(f"{args.model}*.safetensors"))
    (weights / f"{ODD_NAME}.safetensors").write_bytes(converted.read_bytes())
    env = os.environ | {"STUDIO_API_MODEL": args.model, "STUDIO_API_DEVICE": "cpu", "STUDIO_WEIGHTS_DIR": str(weights),
                        "STUDIO_API_REQUEST_TIMEOUT": str(args.timeout), "STUDIO_API_BODY_TIMEOUT": "5"}
    log = Path(tempfile.mkdtemp()) / "server.log"
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--api-only", "--port", str(port)], cwd=ROOT,
                                env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while _request(port, "GET", "/readyz", timeout=2)[0] != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                print(log.read_text()[-2000:])
                return 1
            time.sleep(0.3)
        report: dict[str, object] = {"model": args.model, "rss_ready_mb": _peak_rss_mb(proc.pid)}
        report["startup_settings"] = settings_cases = startup_settings(env)
        report["first_load_beside"] = first_load_beside(port, "realesr-animevideov3-x2", "RealESRGAN_x4plus")
        cases = probes(port)
        report["probes"] = [{"case": n, "expected": e, "got": g} for n, e, g in cases]
        report["peak_rss_after_probes_mb"] = _peak_rss_mb(proc.pid)
        for concurrency in (8, 16):
            start = time.perf_counter()
            counts = load(port, concurrency, args.requests)
            report[f"load_{concurrency}"] = {"statuses": dict(counts), "seconds": round(time.perf_counter() - start, 1),
                                             "peak_rss_mb": _peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report, indent=2))
    unexpected = [c for c in cases if c[1] != c[2]]
    bad_5xx = [s for phase in ("load_8", "load_16") for s in report[phase]["statuses"]  # type: ignore[index]
               if (s >= 500 and s != 503) or s in (0, -503)]
    bad_5xx += [g for _, e, g in cases if g >= 500 or (g == 0 and e != 0)]
    print(f"{len(cases) - len(unexpected)} of {len(cases)} probes as expected; "
          f"5xx other than 503 busy (or no answer): {len(bad_5xx)}; traceback in log: {'Traceback' in log.read_text()}")
    for name, expected, got in unexpected:
        print(f"  unexpected: {name}: expected {expected}, got {got}")
    refused = [c for c in settings_cases if not c["held"]]
    print(f"{len(settings_cases) - len(refused)} of {len(settings_cases)} wrong settings stopped the server at "
          "start-up with one line")
    return 1 if bad_5xx or unexpected or refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
