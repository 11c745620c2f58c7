"""``python -m api.serve``: the dashboard and the API in one process (default), or the API alone.

One process keeps one copy of the model in GPU memory for both (``core.shared_upscaler``):
the dashboard at ``/``, the API at ``/inference``, ``/v1/*``, ``/healthz``, ``/readyz``,
``/metrics`` and ``/docs``. ``--api-only`` serves just the API (run ``streamlit run
dashboard/app.py`` beside it for the two-process layout).
"""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from api.settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--api-only", action="store_true", help="serve the API without the dashboard")
    args = parser.parse_args(argv)
    app = create_app(ApiSettings.from_env(), dashboard=not args.api_only)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
