"""Command-line interface: ``realesrgan-studio models | metrics | table | engines | upscale | evaluate | degrade |
bench | div2k | compare``
(also ``python -m cli``, and ``python -m core`` as an alias).

Exit codes: 0 all succeeded, 1 some inputs failed (each reported), 2 usage error or
nothing could run (unknown model, missing weights, bad device).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from cli._common import UsageError, emit_err
from cli.commands import COMMANDS
from core import StudioError, check_environment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realesrgan-studio",
                                     description="Real-ESRGAN studio: models, upscale, evaluate, degrade, bench.")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="weights folder (default: $STUDIO_WEIGHTS_DIR or ./weights)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # progress bars print file names too
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        check_environment()  # a wrong STUDIO_* variable is one line before anything runs
        return int(args.func(args))
    except UsageError as exc:
        emit_err(f"error: {exc}")
        return 2
    except StudioError as exc:  # one no command handled (a corrupt result store): nothing could run
        emit_err(f"error: {exc}")
        return 2
    except sqlite3.Error as exc:
        emit_err(f"error: the result store cannot be used ({exc}); pass --db with a writable path.")
        return 2
    except OSError as exc:  # a file system failure no command handled: say what and where
        emit_err(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        emit_err("interrupted; finished outputs are kept.")
        return 130
