"""A small client for the API: ``python -m api.client IMAGE -o OUT [--url URL] [--legacy]``.

Usable as a library: :func:`upscale_bytes` (modern multipart route) and
:func:`upscale_legacy` (the original JSON + base64 route). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8501"


def _write_atomically(target: Path, data: bytes) -> None:
    """A temporary file of our own beside ``target``, synced, then renamed over it: never half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:120]}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ApiError(Exception):
    """The server answered with an error; ``status`` and the server's message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _open(request: urllib.request.Request, timeout: float) -> tuple[bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace")[:300]
        raise ApiError(exc.code, message) from exc


def upscale_bytes(data: bytes, filename: str = "image.png", *, url: str = DEFAULT_URL, timeout: float = 600,
                  **fields: object) -> tuple[bytes, dict[str, str]]:
    """POST ``data`` to ``/v1/upscale``; returns ``(png bytes, response headers in lower case)``.

    ``fields`` are the form fields: model, outscale, tile, precision, alpha.
    """
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items() if v is not None]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/upscale", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return _open(request, timeout)


def upscale_legacy(data: bytes, *, url: str = DEFAULT_URL, tile: int = 0, half: bool = False,
                   timeout: float = 600) -> bytes:
    """The original contract: JSON with a base64 image in, a base64 PNG string out; returns PNG bytes."""
    payload = json.dumps({"img_str": base64.b64encode(data).decode(), "tile": tile, "half": half,
                          "output_dir": "results"}).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/inference", data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    body, _ = _open(request, timeout)
    return base64.b64decode(json.loads(body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.client", description="Upscale an image with the API.")
    parser.add_argument("image", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output PNG file or folder")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--legacy", action="store_true", help="use the original POST /inference contract")
    parser.add_argument("--model")
    parser.add_argument("--outscale", type=float)
    parser.add_argument("--tile", type=int)
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--alpha", choices=["model", "bicubic", "drop"])
    args = parser.parse_args(argv)
    target = args.output / f"{args.image.stem}.png" if args.output.is_dir() else args.output
    try:
        data = args.image.read_bytes()
        if args.legacy:
            png = upscale_legacy(data, url=args.url, tile=args.tile or 0, half=args.precision == "fp16")
            info = "legacy /inference"
        else:
            png, headers = upscale_bytes(data, args.image.name, url=args.url, model=args.model,
                                         outscale=args.outscale, tile=args.tile, precision=args.precision,
                                         alpha=args.alpha)
            info = f"{headers.get('x-model')} on {headers.get('x-device')}, {headers.get('x-output-size')}"
    except (ApiError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    _write_atomically(target, png)
    sys.stdout.write(f"{args.image} -> {target} ({info})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
