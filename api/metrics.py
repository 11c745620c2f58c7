"""Prometheus-style counters and a latency histogram, rendered as text at ``GET /metrics``."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

CLIENT_CLOSED = 499  # a request whose client left before the answer (api.middleware records it)

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.buckets: Counter[tuple[str, float]] = Counter()
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.sums[route] += seconds
            self.counts[route] += 1
            for bound in BUCKETS:
                if seconds <= bound:
                    self.buckets[(route, bound)] += 1

    def render(self, queue_depth: int, running: int) -> str:
        lines = ["# HELP studio_requests_total Requests by method, route and status.",
                 "# TYPE studio_requests_total counter"]
        with self._lock:
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'studio_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
            errors = sum(c for (_, _, status), c in self.requests.items()
                         if status >= 400 and status != CLIENT_CLOSED)
            gone = sum(c for (_, _, status), c in self.requests.items() if status == CLIENT_CLOSED)
            lines += ["# HELP studio_errors_total Responses with status >= 400 (not clients that left).",
                      "# TYPE studio_errors_total counter", f"studio_errors_total {errors}",
                      "# HELP studio_disconnects_total Requests whose client left before the answer (status 499 "
                      "above).", "# TYPE studio_disconnects_total counter", f"studio_disconnects_total {gone}",
                      "# HELP studio_request_seconds Request latency.", "# TYPE studio_request_seconds histogram"]
            for route in sorted(self.counts):
                for bound in BUCKETS:
                    label = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(f'studio_request_seconds_bucket{{route="{route}",le="{label}"}} '
                                 f"{self.buckets[(route, bound)]}")
                lines.append(f'studio_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                lines.append(f'studio_request_seconds_count{{route="{route}"}} {self.counts[route]}')
        lines += ["# HELP studio_queue_depth Requests running or waiting for the device.",
                  "# TYPE studio_queue_depth gauge", f"studio_queue_depth {queue_depth}",
                  "# HELP studio_inflight Inference calls running.", "# TYPE studio_inflight gauge",
                  f"studio_inflight {running}"]
        return "\n".join(lines) + "\n"
