"""gRPC server throughput: requests per second and p50/p95/p99 latency at 1, 4 and 16
concurrent clients, and the server's resident memory before and after N requests.

Usage::

    python benchmarks/serve.py [--requests 5000] [--package PKG] [--workers 2] [--photo P]
        [--side 256] [--texture-size 0] [--concurrency 1 4 16]

The server is ``facecraft serve`` in a second process (``--threads 1`` per worker, as the
command sets torch and ONNX Runtime); the clients are threads of this process, each with its own
channel, sending ``Reconstruct`` with one photo (a CelebA portrait from ../shared/assets scaled
to ``--side`` px, or ``--photo``), ``omit_topology`` (engines fetch the topology once) and a
texture only with ``--texture-size``. The N requests are split evenly over the concurrency
levels, after 20 warm-up calls. Without ``--package`` a random-weights package is built in a
temporary folder (speed does not depend on the weights). Resident memory is read from
``/proc/PID/status`` (VmRSS) before the first level and after each. Prints a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from facecraft.sdk.client import FaceCraftClient, ReconstructOptions, RetryPolicy
from facecraft.sdk.errors import FaceCraftError

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
DEFAULT_PHOTO = ASSETS / "photos" / "celeba-5pt" / "000002.jpg"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _photo_bytes(path: Path, side: int) -> bytes:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    s = side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _start_server(package: Path, workers: int, detector: str = "mediapipe"
                  ) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "facecraft.sdk.cli", "serve", "--port", "0",
                             "--package", str(package), "--workers", str(workers),
                             "--threads", "1", "--max-queue", "64", "--detector", detector],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split()[2].rstrip(",")


def _level(target: str, photo: bytes, options: ReconstructOptions, clients: int,
           requests: int) -> tuple[float, np.ndarray, int]:
    """Run ``requests`` calls over ``clients`` threads: (seconds, latencies in s, errors)."""
    counts = [requests // clients + (i < requests % clients) for i in range(clients)]
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        with FaceCraftClient(target, timeout_s=120, retry=RetryPolicy(max_attempts=1)) as c:
            c.model_info()  # connect before the clock starts
            start.wait()
            for _ in range(counts[i]):
                t = time.perf_counter()
                try:
                    c.reconstruct(photo, options)
                    lat[i].append(time.perf_counter() - t)
                except FaceCraftError:
                    errors[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, np.array([x for xs in lat for x in xs]), sum(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="total requests (all levels)")
    ap.add_argument("--package", type=Path, help="a .fcpkg (default: build a random one)")
    ap.add_argument("--workers", type=int, default=2, help="server workers (pipelines)")
    ap.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    ap.add_argument("--side", type=int, default=256, help="photo's longer side in px")
    ap.add_argument("--texture-size", type=int, default=0, help="0: no texture")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--detector", choices=("mediapipe", "mtcnn"), default="mediapipe",
                    help="the server's photo front-end")
    args = ap.parse_args()
    photo = _photo_bytes(args.photo, args.side)
    options = ReconstructOptions(omit_topology=True, texture=args.texture_size > 0,
                                 texture_size=args.texture_size)
    with tempfile.TemporaryDirectory() as td:
        package = args.package
        if package is None:
            from facecraft.export.build_default import build_random_package

            print("building a random-weights package ...", flush=True)
            package = build_random_package(Path(td) / "bench.fcpkg").path
        proc, target = _start_server(package, args.workers, args.detector)
        try:
            with FaceCraftClient(target, timeout_s=120) as c:
                for _ in range(20):
                    c.reconstruct(photo, options)
            rss0 = _rss_mib(proc.pid)
            per_level = max(1, args.requests // len(args.concurrency))
            rows = []
            for n in args.concurrency:
                secs, lat, err = _level(target, photo, options, n, per_level)
                p50, p95, p99 = (np.percentile(lat, q) * 1e3 for q in (50, 95, 99))
                rows.append((n, len(lat) + err, len(lat) / secs, p50, p95, p99, err,
                             _rss_mib(proc.pid)))
            rss1 = _rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"\nphoto {args.photo.name} at {args.side} px ({len(photo)} bytes), "
          f"{args.workers} workers, texture {args.texture_size or 'off'}, omit_topology")
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'errors':>6} {'RSS MiB':>8}")
    for n, req, rps, p50, p95, p99, err, rss in rows:
        print(f"{n:>7} {req:>8} {rps:>7.1f} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f} {err:>6} "
              f"{rss:>8.1f}")
    total = sum(r[1] for r in rows)
    print(f"server RSS: {rss0:.1f} MiB after warm-up, {rss1:.1f} MiB after {total} requests "
          f"({rss1 - rss0:+.1f} MiB)")


if __name__ == "__main__":
    main()
