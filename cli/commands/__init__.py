"""One module per command, each with ``add_parser(sub)`` (its arguments; ``func`` set to its ``run``) and
``run(args) -> exit code``. Adding a command is one module here and one entry in :data:`COMMANDS`."""

from __future__ import annotations

from cli.commands import bench, compare, degrade, div2k, engines, evaluate, metrics, models, study, table, upscale

# in --help's order
COMMANDS = (models, metrics, table, compare, engines, upscale, evaluate, degrade, bench, div2k, study)
