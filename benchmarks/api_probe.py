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


def _multipart(png: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "probe-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
                 "Content-Type: image/png\r\n\r\n".encode() + png + b"\r\n")
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


def probes(port: int) -> list[tuple[str, int, int]]:
    """(name, expected status, got) for each hostile or broken request."""
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
    return cases


def load(port: int, concurrency: int, requests: int) -> Counter:
    images = [core.encode_png(core.load_sample(n)[:32, :32]) for n in ("chelsea", "coffee", "rocket")]

    def one(index: int) -> int:
        body, kind = _multipart(images[index % 3], {})
        status, headers = _request(port, "POST", "/v1/upscale", body, {"Content-Type": kind}, timeout=120)
        return -503 if status == 503 and not headers.get("retry-after") else status

    with ThreadPoolExecutor(concurrency) as pool:
        return Counter(pool.map(one, range(requests)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--requests", type=int, default=120, help="requests per load phase")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {"STUDIO_API_MODEL": args.model, "STUDIO_API_DEVICE": "cpu"}
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
    bad_5xx += [g for _, _, g in cases if g >= 500 or g == 0]
    print(f"{len(cases) - len(unexpected)} of {len(cases)} probes as expected; "
          f"5xx other than 503 busy (or no answer): {len(bad_5xx)}; traceback in log: {'Traceback' in log.read_text()}")
    for name, expected, got in unexpected:
        print(f"  unexpected: {name}: expected {expected}, got {got}")
    return 1 if bad_5xx or unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
