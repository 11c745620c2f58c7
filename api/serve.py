"""``python -m api.serve``: the dashboard and the API in one process (default), or the API alone.

One process keeps one copy of the model in GPU memory for both (``core.shared_upscaler``):
the dashboard at ``/``, the API at ``/inference``, ``/v1/*``, ``/healthz``, ``/readyz``,
``/metrics`` and ``/docs``. ``--api-only`` serves just the API (run ``streamlit run
dashboard/app.py`` beside it for the two-process layout).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from core.errors import SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m api.serve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Serve the dashboard (at /) and the HTTP API (/inference, /v1/*, /docs) from one process, "
                    "sharing one copy of the model. Limits and the default model come from STUDIO_API_* "
                    "variables (see api/settings.py).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on")
    parser.add_argument("--api-only", action="store_true",
                        help="serve the API without the dashboard (run `streamlit run dashboard/app.py` beside it)")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    for name in ("studio", "core"):  # the API's own lines, and the core's: model loads, engine measurements
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").addFilter(QuietAssets())
    if not args.api_only:
        os.environ["STUDIO_API_DOCS"] = "/docs"  # the dashboard links to the API's docs (dashboard/frame.py)
    try:
        settings = ApiSettings.from_env()
    except SettingsError as exc:  # a wrong STUDIO_* variable: one line, before anything listens
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    app = create_app(settings, dashboard=not args.api_only)
    # With the dashboard, Streamlit already gives uvicorn's loggers a console handler (on import and
    # again when it starts): uvicorn's own logging config would add a second one, and every request
    # would be logged twice. Without it, uvicorn's default config is the only one.
    log_config = None if not args.api_only else uvicorn.config.LOGGING_CONFIG
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info", log_config=log_config,
                            timeout_graceful_shutdown=GRACE)
    _Server(config, app).run()


GRACE = 10  # seconds between SIGTERM and closing the connections that are still open
# the dashboard's own files and its health checks: thousands of access lines an hour that say nothing
ASSET_PREFIXES = ("/static/", "/_stcore/", "/favicon", "/component/")
# A page opened directly (/benchmark) makes Streamlit's client probe /benchmark/_stcore/health and host-config
# for its base path before it tries /_stcore/...: two expected 404s per load (streamlit/streamlit#7074).
PAGE_PROBE = re.compile(r"^/[^/]+/_stcore/(health|host-config)$")


class QuietAssets(logging.Filter):
    """Keeps uvicorn's access log for the API and the pages; drops the lines of the dashboard's static files."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        path = str(args[2]) if len(args) > 2 else ""  # uvicorn: (client, method, path, http version, status)
        return not path.startswith(ASSET_PREFIXES) and not PAGE_PROBE.match(path.split("?", 1)[0])


class _Server(uvicorn.Server):
    """uvicorn that tells the app when a SIGTERM / SIGINT starts the graceful shutdown.

    In-flight jobs that can finish within the grace period finish; the others (and requests
    still waiting for the device) are stopped 2 s before it ends and answered 503 with
    Retry-After, instead of having their connection dropped unanswered.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.app.state.server.stop_at = time.monotonic() + GRACE - 2
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
