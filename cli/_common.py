"""What every command shares: output that survives odd file names, usage errors, columns, tables and
progress, and where the work runs (this process or a Ray cluster)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tqdm import tqdm

from core.engines import ENGINES
from core.pipeline import ClusterSettings, Executor, executor_for


def _safe(stream, text: str) -> str:
    """``text`` as ``stream`` can print it: a file name that is not valid UTF-8 (or not valid in the
    terminal's encoding) shows its odd bytes as escapes instead of aborting the batch."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


def emit(text: str) -> None:
    sys.stdout.write(_safe(sys.stdout, text) + "\n")


def emit_err(text: str) -> None:
    sys.stderr.write(_safe(sys.stderr, text) + "\n")


def status_line(text: str) -> None:
    """A line about a running job (a cluster run's plan, what it waits for), printed above its progress bar."""
    tqdm.write(_safe(sys.stderr, text), file=sys.stderr)


def bytes_progress(name: str):  # -> a (done, total) callback that prints every 10 %
    shown = [-1]

    def report(done: int, total: int | None) -> None:
        if total:
            step = int(10 * done / total)
            if step != shown[0]:
                shown[0] = step
                emit_err(f"{name}: {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    return report


def text_columns(rows: Sequence[tuple[str, ...]]) -> None:
    """Text rows as left-aligned columns; the last column is not padded (numbers: :func:`_table`)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        emit("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1])


class UsageError(Exception):
    """A command-line mistake: the message is printed and the command exits with 2."""


def executor_of(args: argparse.Namespace, *, download: bool = False) -> Executor:
    """Where the work runs: this process, or the Ray cluster of ``--ray`` (Ray imported only then)."""
    cluster = None
    if args.ray is not None:
        cluster = ClusterSettings(address=args.ray or None, workers=args.workers, threads=args.threads,
                                  gpus_per_worker=args.gpus_per_worker, engine=args.engine)
    return executor_for(cluster, args.engine, allow_download=download and args.download,
                        download_progress=download_bar() if download else None)


def download_bar() -> Callable[[int, int | None], None]:
    """A progress bar for a model's download, made on its first bytes."""
    bar = None

    def on_download(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="download", leave=False)
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return on_download


def ray_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run on a Ray cluster: 'auto' (RAY_ADDRESS), host:6379, or nothing "
                             "to start a local Ray on this machine")
    parser.add_argument("--workers", type=int, default=None,
                        help="with --ray: actors at most (default: CPU workers, CPUs / --threads; GPU workers, as "
                             "many as the work can use, started as GPU nodes join)")
    parser.add_argument("--threads", type=int, default=1, help="with --ray: CPU threads per CPU worker")
    parser.add_argument("--gpus-per-worker", type=float, default=None, metavar="N",
                        help="with --ray: GPUs each worker asks the cluster for, so an autoscaler starts GPU nodes "
                             "(default: 1 with --device cuda, or with auto where the cluster has GPUs; 0: CPU workers)")
    parser.add_argument("--engine", default=None, choices=ENGINES.choices(),
                        help="the network engine (default: $STUDIO_ENGINE, else auto: the one measured fastest "
                             "here; with --ray, auto is torch, so every node computes the same numbers)")


def number_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        emit("  ".join(cells))
