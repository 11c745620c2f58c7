"""``realesrgan-studio bench``: our upscaler vs plain PyTorch vs the ncnn runtime, side by side.

Engines: ``ours`` (the :class:`Upscaler` with its defaults), ``pytorch`` (the spandrel
model on the whole image: fp32 on the CPU, fp16 on CUDA, as the official script runs),
``ncnn`` (the ncnn runtime on the CPU, fp32, Winograd), ``ncnn-vulkan`` (the ncnn
runtime on the GPU through Vulkan, fp16 storage: what realesrgan-ncnn-vulkan and Upscayl
run) and ``openvino`` (OpenVINO on the CPU, fp32, the whole image). Variants of ``ours``
take colon-separated options, to measure each speed path on its own: ``ours:batch=4``,
``ours:tile=256``, ``ours:compile=reduce-overhead``, ``ours:nchw`` (no channels-last),
``ours:torch``, ``ours:ncnn``, ``ours:openvino`` (that engine forced; plain ``ours`` runs the
one measured fastest for the model here), ``ours:bf16``.

For each model and input size, every engine runs in its own subprocess (so peak memory is
its own), warms up once, then runs ``repeats`` times. Reported: median and spread of wall
time, LR megapixels per second, peak RSS (and peak CUDA memory), achieved GFLOP/s against
a rough peak of this machine, and the PSNR of each engine's output against the plain
PyTorch reference. A table is printed and JSON written, with machine and version details.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core import Upscaler, UpscaleSettings, default_weights_dir, load_model, load_sample, resolve_device
from core.engines import (
    ENGINES as RUNTIMES,
)
from core.engines import (
    EngineOptions,
    NcnnForward,
    OpenVinoForward,
    conv_flops_per_pixel,
    cpu_name,
    ncnn_available,
    openvino_available,
)
from core.errors import SettingsError
from core.models import ncnn_model_files

__all__ = ["BenchPlan", "BenchRow", "conv_flops_per_pixel", "machine_info", "run_bench"]

ENGINES = ("ours", "pytorch", "ncnn", "ncnn-vulkan", "openvino")


def parse_engine(spec: str) -> tuple[str, dict[str, str]]:
    """``"ours:batch=4:nchw"`` -> ``("ours", {"batch": "4", "nchw": ""})``; validates names."""
    base, *parts = spec.split(":")
    if base not in ENGINES:
        raise SettingsError(f"unknown engine {base!r}; use one of {', '.join(ENGINES)}")
    options = dict((part.split("=", 1) + [""])[:2] for part in parts)
    known = {"batch", "tile", "compile", "nchw", "bf16", *RUNTIMES.names()}  # ours:ENGINE forces a registered engine
    if options and (base != "ours" or not set(options) <= known):
        raise SettingsError(f"bad options in {spec!r}: only ours takes {', '.join(sorted(known))}")
    return base, options


@dataclass
class BenchRow:
    engine: str
    model: str
    size: int
    device: str
    median_s: float
    min_s: float
    max_s: float
    lr_mp_per_s: float
    peak_rss_mb: float
    peak_cuda_mb: float | None
    gflops: float
    percent_of_peak: float | None
    psnr_vs_pytorch: float | None = None
    note: str = ""
    runs: int = 0


def _cpu_peak_gflops(threads: int) -> float | None:
    """Rough fp32 peak: threads x clock x FLOPs per cycle (AVX-512: 64, AVX2+FMA: 32, else 8)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags and "avx2" in flags else 8
    return threads * (max(mhz) if mhz else 2000.0) / 1000.0 * per_cycle if mhz else None


def machine_info(device: str) -> dict[str, object]:
    info: dict[str, object] = {
        "cpu": cpu_name(), "threads": torch.get_num_threads(), "python": platform.python_version(), "device": device,
        "rough_cpu_peak_gflops": _cpu_peak_gflops(torch.get_num_threads()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    info |= {engine.name: engine.version() for engine in RUNTIMES}  # torch, ncnn, openvino, …: None if absent
    return info


def _image(size: int) -> np.ndarray:
    sample = load_sample("astronaut")
    reps = (size + sample.shape[0] - 1) // sample.shape[0]
    return np.tile(sample, (reps, reps, 1))[:size, :size]


def _engine_callable(spec: str, model: str, device: str, weights_dir: Path | None = None):
    """A function image -> output (float32 CHW in [0, 1]; ours: the 16-bit HWC image), its FLOPs per
    LR pixel, and a note."""
    engine, options = parse_engine(spec)
    loaded = load_model(model, weights_dir)
    flops = conv_flops_per_pixel(loaded.descriptor.model, loaded.descriptor.scale)
    if engine == "ours":
        upscaler = Upscaler.load(
            model, device=device, precision="bf16" if "bf16" in options else "auto", weights_dir=weights_dir,
            engine=EngineOptions(engine=next((e for e in RUNTIMES.names() if e in options), "auto"),
                                 compile_mode=options.get("compile") or None,
                                 channels_last=False if "nchw" in options else None),
        )
        settings = UpscaleSettings(
            outscale=upscaler.net_scale, batch=int(options.get("batch") or 1),
            tile=int(options["tile"]) if options.get("tile") else None,
        )

        def run(image: np.ndarray) -> np.ndarray:
            # 16-bit in and out: the same input values (x * 257 / 65535 = x / 255), and an output
            # quantised finely enough that the PSNR measures the engine, not 8-bit rounding. The
            # timed call ends with the 16-bit image a user gets; _as_float makes the PSNR's copy.
            wide = image.astype(np.uint16) * 257
            return upscaler.upscale(wide, settings).image

        tile, batch = upscaler.tile_for(settings)
        layout = "NCHW" if "nchw" in options else "channels-last"
        compiled = f", compiled ({upscaler.compile_mode})" if upscaler.compile_mode else ""
        return run, flops, (f"engine {upscaler.engine}, {upscaler.choice.precision}, tile {tile}, batch {batch}"
                            + (f", {layout}" if upscaler.engine == "torch" else "") + compiled)
    if engine == "pytorch":
        choice = resolve_device(device, "fp16" if device.startswith("cuda") else "fp32")
        descriptor = loaded.descriptor.to(choice.torch_device).to(choice.dtype).eval()

        def run(image: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            with torch.inference_mode():
                out = descriptor(tensor.to(choice.torch_device, choice.dtype))
            return out.float().cpu().numpy()[0]

        return run, flops, f"spandrel, whole image, {choice.precision}"
    if engine in ("ncnn", "ncnn-vulkan"):
        if not ncnn_available() or loaded.info.spec is None or not loaded.info.spec.ncnn:
            raise RuntimeError(f"no ncnn model for {model}")
        files = ncnn_model_files(loaded.info.spec.ncnn)
        if files is None:
            raise RuntimeError(f"no ncnn files for {model}")
        vulkan = engine == "ncnn-vulkan"
        net: NcnnForward | OpenVinoForward = NcnnForward(*files, vulkan=vulkan)

        def run(image: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            return net(tensor).numpy()[0]

        return run, flops, ("ncnn runtime, whole image, " + ("Vulkan GPU, fp16 storage" if vulkan
                                                             else "fp32, Winograd"))
    if engine == "openvino":
        if not openvino_available():
            raise RuntimeError("openvino is not installed")
        descriptor = loaded.descriptor
        folder = (weights_dir or default_weights_dir()) / "openvino"
        net = OpenVinoForward(
            descriptor.model, descriptor.input_channels, loaded.info.fingerprint, folder,
            threads=torch.get_num_threads())

        def run(image: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            return net(tensor).numpy()[0]

        return run, flops, "OpenVINO runtime, whole image, fp32 (latency hint)"
    raise SettingsError(f"unknown engine {engine!r}")


def _as_float(result: np.ndarray) -> np.ndarray:
    """An engine's output as float32 CHW in [0, 1]: ours returns the edge convention (16-bit HWC)."""
    if result.dtype == np.uint16:
        return result.transpose(2, 0, 1).astype(np.float32) / 65535.0
    return result.astype(np.float32)


def _measure(engine: str, model: str, size: int, device: str, repeats: int, output: Path | None,
             weights_dir: Path | None = None) -> dict:
    run, flops, note = _engine_callable(engine, model, device, weights_dir)
    image = _image(size)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2 if device.startswith("cuda") else 1):  # warm-up (CUDA: cuDNN autotune, CUDA graphs record)
        result = run(image)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = run(image)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if output is not None:
        np.save(output, _as_float(result))
    return {
        "times": times, "flops": flops * size * size, "note": note,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
    }


def _child_main(argv: list[str]) -> None:
    engine, model, size, device, repeats, output = argv
    sys.stdout.write(json.dumps(_measure(engine, model, int(size), device, int(repeats), Path(output))))


def _measure_once(engine: str, model: str, size: int, device: str, repeats: int, target: Path,
                  subprocesses: bool, weights_dir: Path | None) -> dict:
    """One engine process (or an in-process run): its times and peaks; the output goes to ``target``.

    Raises ``RuntimeError`` with the reason when the engine cannot run here.
    """
    if not subprocesses:
        return _measure(engine, model, size, device, repeats, target, weights_dir)
    folder = {"STUDIO_WEIGHTS_DIR": str(weights_dir)} if weights_dir is not None else {}  # the child's default
    proc = subprocess.run(
        [sys.executable, "-m", "cli.bench", engine, model, str(size), device, str(repeats), str(target)],
        capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"} | folder)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit code {proc.returncode}")
    return json.loads(proc.stdout)


def _pool(first: dict, later: dict) -> dict:
    """Two measurements of one engine as one: all times, the larger peaks."""
    cuda = [m["peak_cuda_mb"] for m in (first, later) if m["peak_cuda_mb"] is not None]
    return first | {"times": first["times"] + later["times"],
                    "peak_rss_mb": max(first["peak_rss_mb"], later["peak_rss_mb"]),
                    "peak_cuda_mb": max(cuda) if cuda else None}


@dataclass(frozen=True)
class BenchPlan:
    """What a bench run measures: every (model, size, engine).

    Attributes:
        repeats: timed calls per engine and round, after a warm-up.
        rounds: the engines run in turn this many times (each a fresh process with its own warm-up and
            ``repeats``); times are pooled, so the medians compare like with like.
        subprocesses: one process per engine and round (peak memory per engine); else in this process.
        weights_dir: where the models are (default: ``$STUDIO_WEIGHTS_DIR``, else ``weights/``).
    """

    models: list[str]
    sizes: list[int]
    engines: list[str]
    device: str = "auto"
    repeats: int = 3
    rounds: int = 1
    subprocesses: bool = True
    weights_dir: Path | None = None


def run_bench(plan: BenchPlan, *, log=None) -> tuple[list[BenchRow], dict]:
    """Run every (model, size, engine) of ``plan``; returns the rows and the machine info. ``log`` is told
    what was skipped and each row as it is measured."""
    models, sizes, engines, repeats, rounds = plan.models, plan.sizes, plan.engines, plan.repeats, plan.rounds
    subprocesses, weights_dir = plan.subprocesses, plan.weights_dir
    device = resolve_device(plan.device).device
    info = machine_info(device)
    peak = info["rough_cpu_peak_gflops"] if device == "cpu" else None
    for engine in engines:
        parse_engine(engine)  # unknown engines and options fail before anything runs
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for size in sizes:
                outputs: dict[str, np.ndarray] = {}
                measured: dict[str, dict] = {}
                for round_index in range(rounds):  # engines take turns: drift on a noisy machine hits all alike
                    for number, engine in enumerate(engines):
                        if round_index and engine not in measured:
                            continue  # skipped in the first round
                        target = Path(tmp) / f"engine{number}.npy"
                        try:
                            result = _measure_once(engine, model, size, device, repeats, target, subprocesses,
                                                   weights_dir)
                        except RuntimeError as exc:
                            if log:
                                log(f"{engine} {model} {size}: skipped ({exc})")
                            continue
                        outputs[engine] = np.load(target)
                        measured[engine] = _pool(measured[engine], result) if engine in measured else result
                for engine, m in measured.items():
                    reference = outputs.get("pytorch")
                    psnr = None
                    if reference is not None and engine in outputs and outputs[engine].shape == reference.shape:
                        mse = float(np.mean((outputs[engine].astype(np.float64) - reference) ** 2))
                        psnr = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
                    median = statistics.median(m["times"])
                    gflops = m["flops"] / median / 1e9
                    rows.append(BenchRow(engine, model, size, device, median, min(m["times"]), max(m["times"]),
                                         size * size / 1e6 / median, m["peak_rss_mb"], m["peak_cuda_mb"],
                                         gflops, 100 * gflops / peak if peak else None, psnr, m["note"],
                                         len(m["times"])))
                    if log:
                        log(f"{engine:8s} {model} {size}x{size}: {median:.3f} s ({len(m['times'])} runs)")
    return rows, info


def format_table(rows: list[BenchRow]) -> str:
    cuda = any(r.peak_cuda_mb is not None for r in rows)
    header = (f"{'model':28s} {'size':>5s} {'engine':22s} {'median s':>9s} {'spread s':>15s} {'LR MP/s':>8s} "
              f"{'RSS MB':>7s}" + (f" {'GPU MB':>7s}" if cuda else "")
              + f" {'GFLOP/s':>8s} {'%peak':>6s} {'PSNR vs pytorch':>15s}  note")
    lines = [header, "-" * len(header)]
    for r in rows:
        psnr = "-" if r.psnr_vs_pytorch is None else ("inf" if r.psnr_vs_pytorch == float("inf")
                                                      else f"{r.psnr_vs_pytorch:.1f} dB")
        pct = "-" if r.percent_of_peak is None else f"{r.percent_of_peak:.0f}"
        gpu = "" if not cuda else f" {r.peak_cuda_mb:7.0f}" if r.peak_cuda_mb is not None else f" {'-':>7s}"
        lines.append(f"{r.model:28s} {r.size:5d} {r.engine:22s} {r.median_s:9.3f} {r.min_s:7.3f}-{r.max_s:<7.3f} "
                     f"{r.lr_mp_per_s:8.4f} {r.peak_rss_mb:7.0f}{gpu} {r.gflops:8.1f} {pct:>6s} {psnr:>15s}  "
                     f"{r.note}")
    ratios = []
    for model, size in sorted({(r.model, r.size) for r in rows}):
        by = {r.engine: r for r in rows if r.model == model and r.size == size}
        for name in (e for e in by if e.startswith("ours")):
            parts = [f"{name}/{e} time {by[name].median_s / by[e].median_s:.2f}x"
                     for e in ("ncnn", "ncnn-vulkan", "pytorch") if e in by]
            if parts:
                ratios.append(f"{model} {size}: " + ", ".join(parts))
    return "\n".join(lines + ["", *ratios])


def rows_to_json(rows: list[BenchRow], info: dict) -> str:
    def clean(value: object) -> object:
        return None if isinstance(value, float) and not np.isfinite(value) else value

    return json.dumps({"machine": info, "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in rows]},
                      indent=2)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
