"""A small HTTP server on 127.0.0.1 for download tests (no test touches the internet)."""

from __future__ import annotations

import http.server
import re
import threading


class LoopbackServer:
    """Serves ``files`` (path -> bytes) on an ephemeral loopback port.

    Honours ``Range: bytes=N-`` with 206 responses; paths in ``lie`` announce 1000 more
    bytes than they send (a truncated transfer). ``requests`` records (path, Range header).
    """

    def __init__(self, files: dict[str, bytes], lie: set[str] | None = None) -> None:
        files_, lie_ = files, lie or set()
        self.requests: list[tuple[str, str | None]] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                requests.append((self.path, self.headers.get("Range")))
                body = files_.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match.group(1)) if match else 0
                self.send_response(206 if match else 200)
                extra = 1000 if self.path in lie_ else 0
                self.send_header("Content-Length", str(len(body) - start + extra))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
