"""``python -m core``: an alias of the command-line front end (:mod:`cli`), kept so that existing
commands and scripts work. The library's own modules never import a front end."""

from __future__ import annotations

import sys

from cli.main import main

sys.exit(main())
