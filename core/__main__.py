"""``python -m core``: the command-line interface (see :mod:`core._cli`)."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
