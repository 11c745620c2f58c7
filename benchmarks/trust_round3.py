"""Hostile cases of trust round 3 (issue 38), beyond the issue's own: each says whether the studio held.

    .venv/bin/python benchmarks/trust_round3.py [--root CHECKOUT]   (also part of benchmarks/trust_probe.py)

``--root`` (or ``$TRUST_ROOT``) runs the cases against another checkout (a ``git worktree`` of an older commit).

A case holds when the studio refuses or copes the way the issue asks: nothing lost, one clear line naming the
file or setting, the same number everywhere. Prints one line per case and the totals; exits 1 if any failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if "--root" in sys.argv:
    os.environ["TRUST_ROOT"] = sys.argv[sys.argv.index("--root") + 1]
ROOT = Path(os.environ.get("TRUST_ROOT") or Path(__file__).resolve().parent.parent).resolve()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import core  # noqa: E402
from cli.main import main as cli  # noqa: E402

MODEL = "realesr-animevideov3"
CASES: list[tuple[str, Callable[[Path], bool]]] = []


def case(name: str) -> Callable[[Callable[[Path], bool]], Callable[[Path], bool]]:
    def register(function: Callable[[Path], bool]) -> Callable[[Path], bool]:
        CASES.append((name, function))
        return function
    return register


def _run(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def _image(path: Path, side: int = 24) -> Path:
    return core.write_png(path, core.load_sample("chelsea")[:side, :side])


@contextlib.contextmanager
def _env(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- files the studio did not write -------------------------------------------------------------------------
@case("a user's own NAME_out.png beside NAME.png survives `upscale . -o .`")
def _(tmp: Path) -> bool:
    _image(tmp / "b.png")
    mine = _image(tmp / "b_out.png", 16).read_bytes()
    code, _ = _run("upscale", str(tmp), "-o", str(tmp), "--model", MODEL, "-q")
    return code == 2 and (tmp / "b_out.png").read_bytes() == mine


for _suffix in ("/../../src/a_b", "..", ".hidden", "a\x00b", " _x", "_x\n", "a\\b"):
    def _suffix_case(tmp: Path, suffix: str = _suffix) -> bool:
        _image(tmp / "in" / "a.png")
        code, _ = _run("upscale", str(tmp / "in"), "-o", str(tmp / "out"), "--suffix", suffix, "--model", MODEL, "-q")
        return code == 2 and not (tmp / "out").exists() or (code == 2 and not any((tmp / "out").iterdir()))
    case(f"--suffix {_suffix!r} is refused and nothing is written")(_suffix_case)


@case("--skip-existing remakes a 0-byte output")
def _(tmp: Path) -> bool:
    _image(tmp / "in" / "a.png")
    (tmp / "out").mkdir()
    (tmp / "out" / "a.png").write_bytes(b"")
    code, _ = _run("upscale", str(tmp / "in"), "-o", str(tmp / "out"), "--model", MODEL, "--skip-existing", "-q")
    return code == 0 and core.read_image(tmp / "out" / "a.png").shape == (96, 96, 3)


@case("a foreign file at an output path stops the run before any work")
def _(tmp: Path) -> bool:
    _image(tmp / "in" / "a.png")
    _image(tmp / "in" / "b.png")
    (tmp / "out").mkdir()
    (tmp / "out" / "b.png").write_bytes(b"my notes")
    code, _ = _run("upscale", str(tmp / "in"), "-o", str(tmp / "out"), "--model", MODEL, "--overwrite", "-q")
    return code == 2 and (tmp / "out" / "b.png").read_bytes() == b"my notes" and not (tmp / "out" / "a.png").exists()


@case("compare -o INPUT --overwrite never replaces the input")
def _(tmp: Path) -> bool:
    image = _image(tmp / "a.png", 32)
    before = image.read_bytes()
    code, _ = _run("compare", str(image), "--methods", "bicubic", "-o", str(image), "--overwrite")
    return code == 2 and image.read_bytes() == before


@case("table -o RUN/results.json never replaces its input")
def _(tmp: Path) -> bool:
    result = core.evaluate(core.open_dataset("samples", 4), ["bicubic"], ["psnr"])
    _, path = core.write_results(result, tmp / "run")
    before = path.read_bytes()
    code, _ = _run("table", str(tmp / "run"), "-o", str(path), "--overwrite")
    return code == 2 and path.read_bytes() == before


# --- weights identified by content --------------------------------------------------------------------------
def _epoch(path: Path, seed: int) -> str:
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    save_file(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@case("next epoch's checkpoint under the old name (same size) is scored again, not reused")
def _(tmp: Path) -> bool:
    core.write_png(tmp / "hr" / "a.png", core.load_sample("coffee")[:64, :64])
    dataset, db = core.open_dataset(tmp / "hr", 4), core.ResultDB(tmp / "r.sqlite")
    factory = lambda name: core.Upscaler.load(name, device="cpu", weights_dir=tmp / "w")  # noqa: E731
    _epoch(tmp / "w" / "mine.safetensors", 1)
    first = core.evaluate(dataset, ["mine"], ["psnr"], db=db, upscaler_factory=factory).rows[0]
    digest = _epoch(tmp / "w" / "mine.safetensors", 2)
    second = core.evaluate(dataset, ["mine"], ["psnr"], db=db, upscaler_factory=factory).rows[0]
    return not second.reused and second.weights.endswith(digest) and first.metrics != second.metrics


@case("a model's fingerprint is its file's SHA-256")
def _(tmp: Path) -> bool:
    digest = _epoch(tmp / "mine.safetensors", 3)
    return core.model_info("mine", tmp).fingerprint == f"mine@sha256:{digest}"


@case("a weights link that leads out of the folder is listed, unusable, with why")
def _(tmp: Path) -> bool:
    _epoch(tmp / "elsewhere" / "x.safetensors", 4)
    (tmp / "w").mkdir()
    (tmp / "w" / "x.safetensors").symlink_to(tmp / "elsewhere" / "x.safetensors")
    info = core.model_info("x", tmp / "w")
    return not info.available and "outside the weights folder" in info.reason


@case("a dangling weights link is listed, unusable, with why")
def _(tmp: Path) -> bool:
    (tmp / "w").mkdir()
    (tmp / "w" / "gone.pth").symlink_to(tmp / "nowhere.pth")
    return "broken link" in core.model_info("gone", tmp / "w").reason


# --- learned metrics' weight files --------------------------------------------------------------------------
def _bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


_BAD = {"empty": b"", "text": b"<html>404</html>", "list": _bytes([torch.zeros(2)]),
        "cut": _bytes({"x": torch.zeros(999)})[:300], "wrong shape": _bytes({"lin0.model.1.weight": torch.zeros(2),
                                                                             "alpha": torch.zeros(3)})}
for _metric, _file in (("lpips-alex", "lpips_v0.1_alex.pth"), ("dists", "dists_weights.pt"),
                       ("musiq", "musiq_koniq_ckpt-e95806b9.pth")):
    for _kind, _data in _BAD.items():
        def _metric_case(tmp: Path, metric: str = _metric, file: str = _file, data: bytes = _data) -> bool:
            from core.metrics import _dists, _lpips, _musiq

            for module in (_dists, _lpips, _musiq):
                module._networks.clear()
            (tmp / "w" / "metrics").mkdir(parents=True)
            (tmp / "w" / "metrics" / file).write_bytes(data)
            torch_home = tmp / "torch" / "hub" / "checkpoints"
            torch_home.mkdir(parents=True)
            with _env(STUDIO_WEIGHTS_DIR=str(tmp / "w"), TORCH_HOME=str(tmp / "torch")):
                import torchvision
                net = "alexnet-owt-7be5be79.pth" if metric == "lpips-alex" else "vgg16-397923af.pth"
                build = torchvision.models.alexnet if metric == "lpips-alex" else torchvision.models.vgg16
                if metric != "musiq":
                    torch.save(build(weights=None).state_dict(), torch_home / net)
                image = core.load_sample("chelsea")[:64, :64]
                try:
                    core.compute_metric(metric, image, None if metric == "musiq" else image)
                except core.errors.WeightsMissingError as exc:
                    return str(tmp / "w" / "metrics" / file) in str(exc) and "\n" not in str(exc)
                except Exception:  # noqa: BLE001 - a traceback is what the case looks for
                    return False
            return False
        case(f"{_metric}: a {_kind} {_file} is refused in one line with its path")(_metric_case)


# --- results files, means, one number -------------------------------------------------------------------------
for _key, _value in (("scale", "4"), ("methods", "bicubic"), ("cancelled", "no"), ("rows", {"a": 1}),
                     ("means", {"bicubic": {"psnr": "28"}}), ("settings", None)):
    def _results_case(tmp: Path, key: str = _key, value: object = _value) -> bool:
        result = core.evaluate(core.open_dataset("samples", 4), ["bicubic"], ["psnr"])
        _, path = core.write_results(result, tmp / "run")
        payload = json.loads(path.read_text())
        payload[key] = value
        path.write_text(json.dumps(payload))
        code, text = _run("table", str(tmp / "run"))
        return code == 2 and str(path) in text and "Traceback" not in text
    case(f"results.json with {_key} = {_value!r}: table refuses it with its path")(_results_case)


@case("a PSNR of +inf is counted and named, not dropped from the mean silently")
def _(tmp: Path) -> bool:
    core.write_png(tmp / "hr" / "flat.png", np.full((32, 32, 3), 100, np.uint8))
    core.write_png(tmp / "hr" / "cat.png", core.load_sample("chelsea")[:32, :32])
    result = core.evaluate(core.open_dataset(tmp / "hr", 4), ["bicubic"], ["psnr"])
    payload = json.loads(core.write_results(result, tmp / "run")[1].read_text())
    flat = next(r for r in payload["rows"] if r["image"] == "flat")
    return payload["counts"]["bicubic"]["psnr"]["+inf"] == 1 and flat["nonfinite"] == {"psnr": "+inf"}


@case("the SSIM map's mean is the SSIM shown beside it")
def _(tmp: Path) -> bool:
    hr = core.load_sample("coffee")[:96, :96]
    lr = core.imresize(hr, 0.25)
    compared = core.compare.score_outputs(lr, {"bicubic": core.imresize(lr, 4)}, hr, ("ssim",))
    return compared.maps["bicubic"]["ssim"].summary == compared.scores["bicubic"]["ssim"]


@case("grey with alpha (LA) is written grey with alpha")
def _(tmp: Path) -> bool:
    from PIL import Image

    grey = core.load_sample("camera")[:20, :20, 0]
    Image.fromarray(np.stack([grey, np.full_like(grey, 200)], axis=2), "LA").save(tmp / "g.png")
    code, _ = _run("upscale", str(tmp / "g.png"), "-o", str(tmp / "out"), "--model", MODEL, "-q")
    return code == 0 and (tmp / "out" / "g.png").read_bytes()[25] == 4


@case("a size-limit message never advises the output scale already chosen")
def _(tmp: Path) -> bool:
    limits = core.ImageLimits(max_output_pixels=48 * 48 * 4)
    upscaler = core.Upscaler.load(MODEL, device="cpu")
    try:
        upscaler.upscale(core.load_sample("chelsea")[:48, :48], core.UpscaleSettings(outscale=2, limits=limits))
    except core.errors.ImageTooLargeError as exc:
        return "Choose a smaller output scale" not in str(exc) and "downscale it to at most 50 %" in str(exc)
    return False


# --- settings ---------------------------------------------------------------------------------------------------
for _name, _value in (("STUDIO_API_MAX_RUNNING", "0"), ("STUDIO_API_REQUEST_TIMEOUT", "nan"),
                      ("STUDIO_API_BODY_TIMEOUT", "-1"), ("STUDIO_API_MAX_WAITING", "-1"),
                      ("STUDIO_API_MAX_BODY_BYTES", "0"), ("STUDIO_API_DEVICE", "tpu"),
                      ("STUDIO_API_PRECISION", "fp8"), ("STUDIO_API_MODEL", "nope"),
                      ("STUDIO_API_MAX_RUNING", "2"), ("STUDIO_MAX_MODELS", "-3")):
    def _settings_case(tmp: Path, name: str = _name, value: str = _value) -> bool:
        from api.settings import ApiSettings

        with _env(**{name: value}):
            try:
                ApiSettings.from_env()
            except core.errors.SettingsError as exc:
                return name in str(exc) and "\n" not in str(exc)
        return False
    case(f"{_name}={_value!r} stops the API at start-up with one line")(_settings_case)


@case("STUDIO_WEIGHTS_DIR=/dev/null: the CLI names the setting, not 'File exists'")
def _(tmp: Path) -> bool:
    with _env(STUDIO_WEIGHTS_DIR="/dev/null"):
        code, text = _run("models")
    return code == 2 and "STUDIO_WEIGHTS_DIR=/dev/null is not a folder" in text


@case("a misspelt STUDIO_ variable is named at start-up, not ignored")
def _(tmp: Path) -> bool:
    with _env(STUDIO_RESULT_DIR=str(tmp)):
        code, text = _run("models")
    return code == 2 and "STUDIO_RESULT_DIR is not a studio setting" in text


# --- Ray ----------------------------------------------------------------------------------------------------------
@case("a ray:// address is refused in one line, in seconds")
def _(tmp: Path) -> bool:
    start = time.monotonic()
    code, text = _run("evaluate", "--dataset", "samples", "--methods", "bicubic", "--out", str(tmp / "r"), "-q",
                      "--ray", "ray://127.0.0.1:10001")
    return code == 2 and "Ray Client address" in text and time.monotonic() - start < 30


@case("--ray auto with RAY_ADDRESS at a dead head fails in seconds")
def _(tmp: Path) -> bool:
    start = time.monotonic()
    with _env(RAY_ADDRESS="127.0.0.1:9"):
        code, text = _run("evaluate", "--dataset", "samples", "--methods", "bicubic", "--out", str(tmp / "r"), "-q",
                          "--ray", "auto")
    return code == 2 and "RAY_ADDRESS=127.0.0.1:9" in text and time.monotonic() - start < 30


def run_all(skip: str = "", on_case: Callable[[dict], None] | None = None) -> dict:
    """Every case (but those whose name holds ``skip``), each in a fresh folder; ``on_case`` hears each as done."""
    results = []
    for name, check in CASES:
        if skip and skip in name:
            continue
        with tempfile.TemporaryDirectory(prefix="round3-") as folder:
            try:
                held = bool(check(Path(folder)))
            except Exception as exc:  # noqa: BLE001 - an exception is a case that did not hold
                held, name = False, f"{name} (raised {type(exc).__name__}: {str(exc)[:120]})"
        results.append({"case": name, "held": held})
        if on_case is not None:
            on_case(results[-1])
    return {"cases": len(results), "held": sum(r["held"] for r in results), "results": results}


if __name__ == "__main__":
    skip = sys.argv[sys.argv.index("--skip") + 1] if "--skip" in sys.argv else ""
    report = run_all(skip, lambda row: print(("held   " if row["held"] else "FAILED ") + row["case"], flush=True))
    print(f"{report['held']} of {report['cases']} held")
    raise SystemExit(0 if report["held"] == report["cases"] else 1)
