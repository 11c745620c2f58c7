"""Every endpoint and error code, through TestClient with the lifespan and the real core."""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import core
from api import ApiSettings, create_app

MODEL = "realesr-animevideov3"  # tiny and fast on the CPU


@pytest.fixture(scope="module")
def client(weights_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(model=MODEL, device="cpu", max_body_bytes=2_000_000))) as test_client:
        yield test_client


def _png(image: np.ndarray) -> bytes:
    return core.encode_png(image)


def test_legacy_contract_round_trip(client: TestClient) -> None:
    """A request shaped exactly like the original sample_request.py."""
    image = core.load_sample("rocket")[:24, :20]
    body = {"img_str": base64.b64encode(_png(image)).decode("utf-8"), "tile": 0, "half": False,
            "output_dir": "results"}
    response = client.post("/inference", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    out = core.decode_image(base64.b64decode(response.json()))
    assert out.shape == (96, 80, 3)
    direct = core.shared_upscaler(MODEL, "cpu").upscale(image, core.UpscaleSettings(tile=0)).image
    np.testing.assert_array_equal(out, direct)
    tiled = client.post("/inference", json=body | {"tile": 16, "half": True})  # half is ignored on the CPU
    assert tiled.status_code == 200  # a tile under the minimum is raised to it, as the original service took any
    assert not Path("results").joinpath("output.png").exists()  # output_dir is never written
    wrapped = base64.encodebytes(_png(image)).decode()  # 76-char lines, as `base64` and encodebytes print it
    assert "\n" in wrapped
    response = client.post("/inference", json=body | {"img_str": wrapped.replace("\n", "\r\n")})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(core.decode_image(base64.b64decode(response.json())), direct)


def test_v1_upscale_keeps_depth_and_alpha_and_reports_headers(client: TestClient) -> None:
    rgba = np.concatenate([core.load_sample("chelsea")[:16, :20], np.full((16, 20, 1), 200, np.uint8)], axis=2)
    rgba16 = rgba.astype(np.uint16) * 257
    response = client.post("/v1/upscale", files={"file": ("a.png", _png(rgba16), "image/png")},
                           data={"outscale": "2", "alpha": "bicubic"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    out = core.decode_image(response.content)
    assert out.shape == (32, 40, 4) and out.dtype == np.uint16
    headers = response.headers
    assert headers["x-model"] == MODEL and headers["x-device"] == "cpu" and headers["x-precision"] == "fp32"
    assert headers["x-input-size"] == "20x16" and headers["x-output-size"] == "40x32"
    assert float(headers["x-elapsed-seconds"]) >= 0
    assert headers["x-tile"] == "0"  # 20x16 px: the server's auto tile covers it, so it ran untiled
    by_query = client.post("/v1/upscale?outscale=3&alpha=drop", files={"file": ("a.png", _png(rgba), "image/png")})
    assert core.decode_image(by_query.content).shape == (48, 60, 3)
    both = client.post("/v1/upscale?outscale=3&alpha=drop", files={"file": ("a.png", _png(rgba), "image/png")},
                       data={"outscale": "2"})  # a form field wins over the query; unset ones fall back to it
    assert core.decode_image(both.content).shape == (32, 40, 3)
    other = client.post("/v1/upscale", files={"file": ("g.png", _png(core.load_sample("camera")[:8, :8]),
                                                      "image/png")}, data={"model": "realesr-animevideov3-x2"})
    assert other.headers["x-model"] == "realesr-animevideov3-x2" and other.headers["x-output-size"] == "16x16"


@pytest.mark.parametrize(("request_kwargs", "status", "kind"), [
    ({"json": {"img_str": "###"}}, 400, "image_decode"),
    ({"json": {"img_str": base64.b64encode(b"plain text").decode()}}, 400, "image_decode"),
    ({"json": {"tile": 0}}, 422, "validation"),
    ({"json": {"img_str": "", "tile": -1}}, 422, "validation"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "validation"),
])
def test_legacy_errors(client: TestClient, request_kwargs: dict, status: int, kind: str) -> None:
    response = client.post("/inference", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == kind and body["message"]
    assert "Traceback" not in response.text and "/work/" not in response.text and "site-packages" not in response.text


def test_v1_errors(client: TestClient) -> None:
    def post(**kw):
        return client.post("/v1/upscale", **kw)

    bad = post(files={"file": ("x.png", b"garbage", "image/png")})
    assert bad.status_code == 400 and bad.json()["error"] == "image_decode"
    text = post(files={"file": ("x.txt", b"hello", "text/plain")})
    assert text.status_code == 415 and text.json()["error"] == "unsupported_image"
    assert post(files={"file": ("x.png", _png(np.zeros((4, 4, 3), np.uint8)), "image/png")},
                data={"outscale": "99"}).status_code == 422
    assert post().status_code == 422
    tiny = post(files={"file": ("x.png", _png(np.zeros((4, 4, 3), np.uint8)), "image/png")}, data={"tile": "1"})
    assert tiny.status_code == 422 and "tile must be 0" in tiny.json()["message"]  # not a minutes-long job
    unknown = post(files={"file": ("x.png", _png(np.zeros((4, 4, 3), np.uint8)), "image/png")},
                   data={"model": "nope"})
    assert unknown.status_code == 404 and "No model named" in unknown.json()["message"]
    missing = post(files={"file": ("x.png", _png(np.zeros((4, 4, 3), np.uint8)), "image/png")},
                   data={"model": "RealESRNet_x4plus"})
    # retrying will not help: 409 with how to get the weights, not 503 + Retry-After
    assert missing.status_code == 409 and "retry-after" not in missing.headers
    assert "RealESRNet_x4plus.pth" in missing.text and "Download it from" in missing.text
    big_body = post(files={"file": ("x.png", b"\0" * 2_100_000, "image/png")})
    assert big_body.status_code == 413
    boundary = b"b0undary"
    multipart = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
                 b"Content-Type: image/png\r\n\r\n" + b"\0" * 2_100_000 + b"\r\n--" + boundary + b"--\r\n")
    chunked = post(content=(multipart[i:i + 65536] for i in range(0, len(multipart), 65536)),  # no Content-Length
                   headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"})
    assert chunked.status_code == 413 and chunked.json()["error"] == "too_large"
    huge = _png(np.zeros((5000, 5000), np.uint8))  # small file, too many pixels
    too_many = post(files={"file": ("x.png", huge, "image/png")})
    assert too_many.status_code == 413 and "limit" in too_many.json()["message"]


def test_models_health_ready_metrics_and_openapi(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models["RealESRGAN_x4plus"]["available"] and not models["RealESRNet_x4plus"]["available"]
    assert models["RealESRNet_x4plus"]["url"].endswith("RealESRNet_x4plus.pth")
    assert client.get("/healthz").json() == {"status": "ok"}
    _loaded(client)
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["model"] == MODEL and ready["device"] == "cpu"
    assert ready["fingerprint"] == core.model_info(MODEL).fingerprint and "sha256:" in ready["fingerprint"]
    metrics = client.get("/metrics").text
    assert 'studio_requests_total{method="POST",route="/v1/upscale",status="200"}' in metrics
    assert "studio_queue_depth 0" in metrics and "studio_request_seconds_bucket" in metrics
    spec = client.get("/openapi.json").json()
    assert "image/png" in spec["paths"]["/v1/upscale"]["post"]["responses"]["200"]["content"]
    assert "/inference" in spec["paths"]


def test_busy_server_answers_503_with_retry_after(weights_dir: Path) -> None:
    settings = ApiSettings(model=MODEL, device="cpu", max_running=1, max_waiting=0, retry_after=7)
    app = create_app(settings)
    with TestClient(app) as test_client:
        gate = app.state.server.gate
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with gate.slot(timeout=5):
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        entered.wait(5)
        response = test_client.post("/v1/upscale", files={"file": ("x.png", _png(np.zeros((8, 8, 3), np.uint8)),
                                                                   "image/png")})
        release.set()
        holder.join()
        assert response.status_code == 503 and response.headers["retry-after"] == "7"
        assert response.json()["error"] == "busy"
        assert test_client.post("/v1/upscale", files={"file": ("x.png", _png(np.zeros((8, 8, 3), np.uint8)),
                                                              "image/png")}).status_code == 200


def test_request_timeout_is_a_503(weights_dir: Path) -> None:
    app = create_app(dataclasses.replace(ApiSettings(model=MODEL, device="cpu"), request_timeout=1e-6))
    with TestClient(app) as test_client:
        response = test_client.post("/v1/upscale", files={"file": ("x.png", _png(np.zeros((64, 64, 3), np.uint8)),
                                                                   "image/png")})
        assert response.status_code == 503 and "longer than" in response.json()["message"]


def test_the_server_answers_while_the_default_model_loads(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The port opens at once: /healthz answers, /readyz says "loading", and a request for the default model
    waits for it within its time limit (a first load used to hold the port closed for minutes)."""
    release, real = threading.Event(), core.shared_upscaler

    def slow(*args, **kwargs) -> core.Upscaler:
        assert release.wait(60), "never released"
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "shared_upscaler", slow)
    start = time.monotonic()
    try:
        with TestClient(create_app(ApiSettings(model=MODEL, device="cpu"))) as test_client:
            assert time.monotonic() - start < 15
            assert test_client.get("/healthz").status_code == 200
            ready = test_client.get("/readyz")
            assert ready.status_code == 503 and "loading" in ready.json()["message"]
            threading.Timer(1.0, release.set).start()
            response = test_client.post("/v1/upscale", files={"file": ("x.png", _png(np.zeros((8, 8, 3), np.uint8)),
                                                                       "image/png")})
            assert response.status_code == 200, response.text
            assert test_client.get("/readyz").json()["ready"]
    finally:
        release.set()


def _loaded(client: TestClient, timeout: float = 60) -> None:
    """Wait for the default model's load (it runs beside the server) to end, loaded or not."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").json().get("message") == "The model is still loading.":
        assert time.monotonic() < deadline, "the default model is still loading"
        time.sleep(0.1)


def test_not_ready_when_the_default_model_is_missing(weights_dir: Path) -> None:
    with TestClient(create_app(ApiSettings(model="RealESRNet_x4plus", device="cpu"))) as test_client:
        assert test_client.get("/healthz").status_code == 200
        _loaded(test_client)
        ready = test_client.get("/readyz")
        assert ready.status_code == 503 and "RealESRNet_x4plus" in ready.json()["message"]
        response = test_client.post("/inference", json={"img_str": base64.b64encode(
            _png(np.zeros((8, 8, 3), np.uint8))).decode()})
        assert response.status_code == 409 and "RealESRNet_x4plus" in response.json()["message"]



def test_every_core_error_has_its_own_code_and_an_http_status() -> None:
    """A new error class must say its machine-readable code and get a status in api/ (not in the core)."""
    from api.app import STATUS, status_of

    classes = [getattr(core.errors, name) for name in core.errors.__all__]
    errors = [cls for cls in classes
              if isinstance(cls, type) and issubclass(cls, core.StudioError) and cls is not core.StudioError]
    assert len(errors) >= 12
    codes = [cls.code for cls in errors]
    assert len(set(codes)) == len(codes) and "studio" not in codes, codes
    assert set(errors) == set(STATUS), set(errors) ^ set(STATUS)
    assert status_of(core.errors.WeightsMissingError("x")) == 409 and status_of(core.CancelledError("x")) == 503
    assert not hasattr(core.StudioError, "http_status")


def test_api_settings_come_from_the_dataclass_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.settings import ApiSettings

    monkeypatch.setenv("STUDIO_API_MAX_WAITING", "3")
    monkeypatch.setenv("STUDIO_API_RETRY_AFTER", "9")  # every scalar field, not a hand-kept list
    monkeypatch.setenv("STUDIO_API_MODEL", "realesr-animevideov3")
    settings = ApiSettings.from_env()
    assert (settings.max_waiting, settings.retry_after, settings.model) == (3, 9, "realesr-animevideov3")
    assert settings.request_timeout == ApiSettings().request_timeout  # unset: the dataclass default
    monkeypatch.setenv("STUDIO_API_MAX_RUNNING", "two")
    with pytest.raises(ValueError, match="STUDIO_API_MAX_RUNNING='two' is not a whole number"):
        ApiSettings.from_env()


def test_the_redoc_bundle_names_no_outside_server(client: TestClient) -> None:
    """The packaged ReDoc bundle loads its footer logo from cdn.redoc.ly; the one we serve does not."""
    from importlib import resources

    packaged = (resources.files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    assert b"cdn.redoc.ly" in packaged  # what the package ships
    page = client.get("/redoc")
    assert page.status_code == 200 and "/static-offline-docs/redoc.standalone.js" in page.text
    served = client.get("/static-offline-docs/redoc.standalone.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" not in served.content and b'src:"data:,"' in served.content
    assert len(served.content) == len(packaged) - len(b"https://cdn.redoc.ly/redoc/logo-mini.svg") + len(b"data:,")
    assert client.get("/static-offline-docs/swagger-ui.css").status_code == 200  # the rest as packaged
