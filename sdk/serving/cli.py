"""``facecraft serve``: run the gRPC server (registered through the ``facecraft.cli`` entry
points, see :mod:`facecraft.sdk.cli`; grpc is imported only when the command runs).

::

    facecraft serve [--host 127.0.0.1] [--port 50051] [--package PKG] [--workers N]
                    [--threads N] [--provider cpu|cuda|tensorrt] [--max-message-mb N]
                    [--max-pixels N] [--max-batch N] [--max-queue N] [--grace S]
                    [--token-file F | env FACECRAFT_TOKEN]
                    [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
                    [--metrics-port N] [--log-format text|json] [--no-reflection]
                    [--rigs-dir DIR] [--rig-registration open|token|off]
                    [--rig-token-file F] [--max-rigs N] [--max-rig-mb N] [--max-rigs-mb N]
                    [--max-loaded-rigs N] [--rig-cache-mb N]

It configures the process (an entry point may): logging on stderr, torch's intra-op threads
(``--threads``, default 1 per worker), and SIGTERM / SIGINT handlers that stop the server
gracefully (running calls get ``--grace`` seconds). Rigs registered over gRPC (``RegisterRig``)
are stored in ``--rigs-dir``, by default the rig registry that ``facecraft rigs import`` fills,
so ``FitRig`` finds rigs registered either way; ``--rig-registration token`` (with
``--rig-token-file``) lets only holders of the registration token register or overwrite rigs,
``off`` makes the rigs read-only, and the ``--max-rig*`` flags bound what registrations may
store and keep in memory. It prints ``listening on HOST:PORT`` once serving, then blocks until
stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import FaceCraftError

__all__ = ["register", "JsonLogFormatter"]

_EXTRA_KEYS = ("request_id", "method", "code", "latency_ms", "faces", "peer")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        out.update({k: getattr(record, k) for k in _EXTRA_KEYS if hasattr(record, k)})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _read_token(path: Path, flag: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise FaceCraftError(f"cannot read {flag} {path}: {e.strerror or e}") from None
    if not token:
        raise FaceCraftError(f"{flag} {path} is empty")
    return token


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        return _read_token(args.token_file, "--token-file")
    return os.environ.get("FACECRAFT_TOKEN") or None


def _rig_token(args: argparse.Namespace) -> str | None:
    if args.rig_token_file is not None:
        return _read_token(args.rig_token_file, "--rig-token-file")
    if args.rig_registration == "token":
        token = os.environ.get("FACECRAFT_RIG_TOKEN")
        if not token:
            raise FaceCraftError("--rig-registration token needs --rig-token-file or "
                                 "$FACECRAFT_RIG_TOKEN")
        return token
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    import torch

    from ..pipeline.runtime import require_provider
    from .server import ServerSettings, create_server

    if args.provider in ("cuda", "tensorrt"):  # never fall back to the CPU unasked
        require_provider(args.provider)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if args.log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("facecraft")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)  # the CLI owns the process: one thread per pipeline
    if args.rigs_dir is None:
        from ..rigs.registry import default_rigs_dir

        args.rigs_dir = default_rigs_dir()
    settings = ServerSettings(
        host=args.host, port=args.port, workers=args.workers, threads=args.threads,
        front_end=args.detector,
        providers=(args.provider,) if args.provider else None, max_queue=args.max_queue,
        max_message_bytes=int(args.max_message_mb * 2 ** 20), max_pixels=args.max_pixels,
        max_batch=args.max_batch, grace_s=args.grace, token=_token(args),
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
        metrics_port=args.metrics_port, reflection=not args.no_reflection,
        rigs_dir=args.rigs_dir, rig_registration=args.rig_registration,
        rig_token=_rig_token(args), max_rigs=args.max_rigs,
        max_rig_bytes=int(args.max_rig_mb * 2 ** 20),
        max_rigs_bytes=int(args.max_rigs_mb * 2 ** 20), max_loaded_rigs=args.max_loaded_rigs,
        rig_cache_bytes=int(args.rig_cache_mb * 2 ** 20))
    server, port = create_server(settings, package=args.package)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(f"listening on {args.host}:{port}"
              + (f", metrics on http://{args.host}:{server.metrics_port}/metrics"
                 if server.metrics_port is not None else ""), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    print("stopped", flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``facecraft`` command line."""
    p = subparsers.add_parser(
        "serve", help="run the gRPC server (facecraft.v1.FaceCraft, health, reflection)",
        description="Serve photo-to-face reconstruction over gRPC (proto/facecraft/v1). Binds "
                    "localhost unless --host says otherwise. SIGTERM stops it gracefully.")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; 0.0.0.0 or [::] for all)")
    p.add_argument("--port", type=int, default=50051, help="TCP port (0: any free one)")
    p.add_argument("--package", type=Path, metavar="PKG",
                   help="a .fcpkg model package (default: the built-in one)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="photos reconstructed at once (one pipeline each; default 1)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="inference threads per worker (default 1)")
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt"),
                   help="ONNX Runtime provider to prefer (default: the best available)")
    p.add_argument("--detector", choices=("mediapipe", "mtcnn"), default="mediapipe",
                   help="photo front-end: MediaPipe's detector + 468-point mesh + iris (sent as "
                        "Face.photo_landmarks; default), or MTCNN's 5 points")
    p.add_argument("--max-message-mb", type=float, default=32.0, metavar="N",
                   help="largest request / response in MiB (default 32)")
    p.add_argument("--max-pixels", type=int, default=16_000_000, metavar="N",
                   help="largest photo in pixels, width x height (default 16000000); decoding "
                        "takes up to ~40 bytes per pixel at once, ~640 MB per worker at 16 MP")
    p.add_argument("--max-batch", type=int, default=32, metavar="N",
                   help="most photos per ReconstructBatch call (default 32)")
    p.add_argument("--max-queue", type=int, default=32, metavar="N",
                   help="calls that may wait for a worker (default 32)")
    p.add_argument("--grace", type=float, default=10.0, metavar="S",
                   help="seconds running calls get to finish on shutdown (default 10)")
    p.add_argument("--token-file", type=Path, metavar="F",
                   help="require 'authorization: Bearer <token>' with the token in F "
                        "(default: $FACECRAFT_TOKEN if set, else no token)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    p.add_argument("--tls-client-ca", type=Path, metavar="PEM",
                   help="CA of client certificates: require them (mutual TLS)")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics at http://HOST:N/metrics (0: any free port)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="log lines as text or one JSON object each (default text)")
    p.add_argument("--no-reflection", action="store_true", help="no server reflection")
    p.add_argument("--rigs-dir", type=Path, metavar="DIR",
                   help="folder of the rigs RegisterRig stores and FitRig fits (default: the "
                        "rig registry, $FACECRAFT_RIGS, $FACECRAFT_HOME/rigs, "
                        "~/.local/share/facecraft/rigs)")
    p.add_argument("--rig-registration", choices=("open", "token", "off"), default="open",
                   help="who may register rigs: any client (open, the default; it may also "
                        "overwrite them), only with the registration token (token), nobody "
                        "(off: read-only rigs)")
    p.add_argument("--rig-token-file", type=Path, metavar="F",
                   help="the registration token for --rig-registration token (default: "
                        "$FACECRAFT_RIG_TOKEN); clients send 'authorization: Bearer <it>'")
    p.add_argument("--max-rigs", type=int, default=32, metavar="N",
                   help="registered rigs at most (default 32)")
    p.add_argument("--max-rig-mb", type=float, default=16.0, metavar="N",
                   help="one rig's GLB + sidecar at most, MiB (default 16)")
    p.add_argument("--max-rigs-mb", type=float, default=256.0, metavar="N",
                   help="all registered rigs' files at most, MiB (default 256)")
    p.add_argument("--max-loaded-rigs", type=int, default=4, metavar="N",
                   help="rigs kept loaded in memory, least recently used dropped (default 4)")
    p.add_argument("--rig-cache-mb", type=float, default=64.0, metavar="N",
                   help="correspondence cache size, MiB; oldest files removed (default 64)")
    p.set_defaults(handler=_cmd_serve)
