"""Request counts and latencies in the Prometheus text format, served over plain HTTP.

A deliberately small registry (no client library): counters, gauges and one latency histogram
per method, all guarded by one lock, rendered as the text exposition format version 0.0.4
(``# HELP`` / ``# TYPE`` lines, ``name{label="value"} number``). :class:`MetricsHTTPServer`
serves it at ``GET /metrics`` from a daemon thread (:mod:`http.server`).
"""

from __future__ import annotations

import os
import socket
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LATENCY_BUCKETS_S", "ServerMetrics", "MetricsHTTPServer", "resident_memory_bytes"]

#: Upper bounds (seconds) of the latency histogram's buckets (``+Inf`` is added).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def resident_memory_bytes(pid: int | None = None) -> int:
    """Resident set size of a process in bytes (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _labels(**kv: str) -> str:
    esc = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
           for k, v in kv.items())
    return "{" + ",".join(esc) + "}"


class ServerMetrics:
    """Thread-safe counters of one server.

    Exposed series (``method`` is the RPC's short name, ``code`` its status name):

    * ``facecraft_rpc_requests_total{method, code}``: finished calls.
    * ``facecraft_rpc_latency_seconds{method}``: histogram of call latency (seconds).
    * ``facecraft_rpc_in_flight{method}``: calls running now.
    * ``facecraft_rpc_shutdown_cancelled_total{method}``: calls cut at the end of the shutdown
      grace period (also counted with ``code="CANCELLED"`` above, never as a deadline).
    * ``facecraft_faces_total``: faces reconstructed.
    * ``facecraft_batch_items_total{code}``: batch items by outcome.
    * ``facecraft_unauthenticated_total``: calls refused for a missing or wrong token.
    * ``facecraft_workers_busy`` / ``facecraft_workers``: pipelines in use / in the pool.
    * ``process_resident_memory_bytes``: the server's RSS.
    """

    def __init__(self, workers: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self._in_flight: dict[str, int] = defaultdict(int)
        self._batch_items: dict[str, int] = defaultdict(int)
        self._shutdown_cancelled: dict[str, int] = defaultdict(int)
        self.faces = 0
        self.unauthenticated = 0
        self.workers = workers
        self.workers_busy = 0

    def started(self, method: str) -> None:
        with self._lock:
            self._in_flight[method] += 1

    def finished(self, method: str, code: str, seconds: float, *,
                 shutdown: bool = False) -> None:
        """Record a finished call (``code``: the status name, e.g. ``"OK"``; ``shutdown``:
        cut by the end of the shutdown grace period)."""
        with self._lock:
            self._in_flight[method] -= 1
            if shutdown:
                self._shutdown_cancelled[method] += 1
            self._requests[(method, code)] += 1
            b = self._buckets.setdefault(method, [0] * len(LATENCY_BUCKETS_S))
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    b[i] += 1
            self._sum[method] += seconds
            self._count[method] += 1

    def add(self, name: str, n: int = 1) -> None:
        """Increase ``faces``, ``unauthenticated`` or ``workers_busy`` by ``n``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def batch_item(self, code: str) -> None:
        with self._lock:
            self._batch_items[code] += 1

    def requests(self, method: str, code: str) -> int:
        """Finished calls of ``method`` with status ``code`` so far."""
        with self._lock:
            return self._requests.get((method, code), 0)

    def shutdown_cancelled(self, method: str) -> int:
        """Calls of ``method`` cut by the end of a shutdown grace period so far."""
        with self._lock:
            return self._shutdown_cancelled.get(method, 0)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        out: list[str] = []
        with self._lock:
            out += ["# HELP facecraft_rpc_requests_total Finished RPCs by method and status.",
                    "# TYPE facecraft_rpc_requests_total counter"]
            for (m, c), n in sorted(self._requests.items()):
                out.append(f"facecraft_rpc_requests_total{_labels(method=m, code=c)} {n}")
            out += ["# HELP facecraft_rpc_latency_seconds RPC latency in seconds.",
                    "# TYPE facecraft_rpc_latency_seconds histogram"]
            for m, b in sorted(self._buckets.items()):
                for bound, n in zip(LATENCY_BUCKETS_S, b, strict=True):
                    out.append(f"facecraft_rpc_latency_seconds_bucket"
                               f"{_labels(method=m, le=repr(bound))} {n}")
                out.append(f"facecraft_rpc_latency_seconds_bucket{_labels(method=m, le='+Inf')}"
                           f" {self._count[m]}")
                out.append(f"facecraft_rpc_latency_seconds_sum{_labels(method=m)} "
                           f"{self._sum[m]:.6f}")
                out.append(f"facecraft_rpc_latency_seconds_count{_labels(method=m)} "
                           f"{self._count[m]}")
            out += ["# HELP facecraft_rpc_in_flight RPCs running now.",
                    "# TYPE facecraft_rpc_in_flight gauge"]
            for m, n in sorted(self._in_flight.items()):
                out.append(f"facecraft_rpc_in_flight{_labels(method=m)} {n}")
            out += ["# HELP facecraft_rpc_shutdown_cancelled_total RPCs cut at the end of the "
                    "shutdown grace period.",
                    "# TYPE facecraft_rpc_shutdown_cancelled_total counter"]
            for m, n in sorted(self._shutdown_cancelled.items()):
                out.append(f"facecraft_rpc_shutdown_cancelled_total{_labels(method=m)} {n}")
            out += ["# HELP facecraft_batch_items_total ReconstructBatch items by status.",
                    "# TYPE facecraft_batch_items_total counter"]
            for c, n in sorted(self._batch_items.items()):
                out.append(f"facecraft_batch_items_total{_labels(code=c)} {n}")
            out += ["# HELP facecraft_faces_total Faces reconstructed.",
                    "# TYPE facecraft_faces_total counter", f"facecraft_faces_total {self.faces}",
                    "# HELP facecraft_unauthenticated_total Calls refused: no or wrong token.",
                    "# TYPE facecraft_unauthenticated_total counter",
                    f"facecraft_unauthenticated_total {self.unauthenticated}",
                    "# HELP facecraft_workers Reconstruction pipelines in the pool.",
                    "# TYPE facecraft_workers gauge", f"facecraft_workers {self.workers}",
                    "# HELP facecraft_workers_busy Pipelines reconstructing now.",
                    "# TYPE facecraft_workers_busy gauge",
                    f"facecraft_workers_busy {self.workers_busy}"]
        out += ["# HELP process_resident_memory_bytes Resident memory size in bytes.",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {resident_memory_bytes()}"]
        return "\n".join(out) + "\n"


class _HTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsHTTPServer:
    """``GET /metrics`` on ``host:port`` (0: any free port) from a daemon thread.

    Attributes:
        port: the bound port.
    """

    def __init__(self, metrics: ServerMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", _CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # scrapes are not worth a log line each

        server_class = _HTTPServer6 if ":" in host else ThreadingHTTPServer
        self._httpd = server_class((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="facecraft-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
