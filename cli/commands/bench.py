"""``realesrgan-studio bench``: our upscaler against plain PyTorch and ncnn (the measuring is :mod:`cli.bench`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cli._common import emit, emit_err
from core import StudioError, default_results_dir, resolve_device, write_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    bn = sub.add_parser("bench", help="benchmark our upscaler against plain PyTorch and ncnn")
    bn.add_argument("--models", default="RealESRGAN_x4plus,realesr-animevideov3")
    bn.add_argument("--sizes", default=None,
                    help="LR sizes (square); default 64,128 (CPU) or 256,512,1024 (--device cuda)")
    bn.add_argument("--engines", default="ours,pytorch,ncnn",
                    help="ours, pytorch, ncnn, ncnn-vulkan, openvino; variants of ours with colon options, e.g. "
                         "ours:batch=4, ours:tile=256, ours:compile=reduce-overhead, ours:nchw, ours:torch, "
                         "ours:openvino, ours:bf16")
    bn.add_argument("--repeats", type=int, default=3, help="timed runs per engine process, after a warm-up")
    bn.add_argument("--rounds", type=int, default=1,
                    help="engines take turns this many times (fresh processes); times are pooled")
    bn.add_argument("--device", default="auto")
    bn.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test)")
    bn.add_argument("--in-process", action="store_true", help="no subprocess per engine (peak RSS is shared)")
    bn.add_argument("--out", default=None, help="JSON file (default: $STUDIO_RESULTS_DIR/bench-<time>.json, "
                    "else results/ in the repository)")
    bn.add_argument("-q", "--quiet", action="store_true")
    bn.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.bench import BenchPlan, format_table, rows_to_json, run_bench

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        device = resolve_device(args.device).device
        sizes_text = args.sizes or ("256,512,1024" if device.startswith("cuda") else "64,128")
        sizes = [int(s) for s in sizes_text.split(",") if s.strip()]
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        repeats = args.repeats
        if repeats < 1 or args.rounds < 1:
            raise ValueError("--repeats and --rounds must be at least 1")
        if args.quick:
            sizes, repeats = [24], 1
        plan = BenchPlan(models, sizes, engines, device=device, repeats=repeats,
                         rounds=1 if args.quick else args.rounds, subprocesses=not args.in_process,
                         weights_dir=args.weights_dir)
        rows, info = run_bench(plan, log=None if args.quiet else emit_err)
    except (StudioError, ValueError) as exc:
        emit_err(f"error: {exc}")
        return 2
    emit(f"# {info['cpu']} · {info['threads']} threads · torch {info['torch']} · ncnn {info['ncnn']} · "
         f"device {info['device']}" + (f" · {info['gpu']}" if "gpu" in info else "")
         + (f" · rough CPU peak {info['rough_cpu_peak_gflops']:.0f} GFLOP/s" if info["rough_cpu_peak_gflops"] else ""))
    emit(format_table(rows))
    out = Path(args.out) if args.out else default_results_dir() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_file(out, rows_to_json(rows, info))
    emit_err(f"wrote {out}")
    return 0 if rows else 1
