"""``python -m cli``: the command-line interface (see :mod:`cli.main`)."""

from __future__ import annotations

import sys

from cli.main import main

sys.exit(main())
