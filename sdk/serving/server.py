"""The FaceCraft gRPC server: ``facecraft.v1.FaceCraft`` over the :class:`FaceCraft` pipeline.

:func:`create_server` builds a :class:`FaceCraftServer` from :class:`ServerSettings`:

* the ``facecraft.v1.FaceCraft`` service (:class:`FaceCraftService`, a thin servicer: validate the
  request, convert it, run the pipeline, convert the result; conversions live in
  :mod:`facecraft.sdk.serving.wire`), the standard health service (``grpc.health.v1.Health``,
  SERVING
  while up, NOT_SERVING during shutdown) and server reflection;
* the rig calls (``RegisterRig``, ``ListRigs``, ``FitRig``) over a rig folder
  (``ServerSettings.rigs_dir``, else a temporary folder of the server's own, removed when it
  stops) and one :class:`~facecraft.sdk.rigs.create.FaceRigger` per rig, built once;
* a bounded worker pool: ``workers`` pipelines (one reconstruction each at a time), at most
  ``max_queue`` further calls waiting for one (``queue_timeout_s`` at most, never past the
  call's deadline), and past that RESOURCE_EXHAUSTED at once (the server's own admission,
  :class:`~facecraft.sdk.serving.calls.Admission`: health and reflection never count, never
  wait behind work);
* deadlines honoured between stages (waiting for a worker, decoding, detecting, regressing,
  sampling, texturing, baking, fitting a rig, each batch chunk) with DEADLINE_EXCEEDED; a call
  cut when the shutdown grace period ends is CANCELLED (logged and counted as such);
* registered rigs bounded (:class:`~facecraft.sdk.serving.rig_store.RigLimits`: count, bytes,
  rigs loaded in memory, correspondence cache), and registration open, token-scoped or off
  (``rig_registration``);
* request and response sizes bounded by ``max_message_bytes`` (RESOURCE_EXHAUSTED, with a
  message saying which limit and how to stay under it);
* a request id per call (the client's ``x-request-id`` metadata, or a new one) in the logs
  (logger ``facecraft.server``, one line per call with ``extra`` fields for JSON logging), in
  the trailing metadata and in the response;
* Prometheus metrics (:mod:`facecraft.sdk.serving.metrics`) on ``http://host:metrics_port/metrics``;
* optional TLS (server certificate) and mutual TLS (client certificates signed by a CA), and an
  optional bearer token (``authorization: Bearer <token>`` metadata, checked by a server
  interceptor; the health service stays open for load balancers);
* graceful shutdown: :meth:`FaceCraftServer.stop` turns health to NOT_SERVING, refuses new
  calls and gives running ones ``grace_s`` seconds to finish.

Errors map to status codes by type only, in one table:
:data:`~facecraft.sdk.serving.status.STATUS_CODES` (see :mod:`facecraft.sdk.serving.status`).

Zero faces is an error (FAILED_PRECONDITION) for ``Reconstruct``, and a per-item status in
``ReconstructBatch``: a response always holds at least one face.

The pipeline's torch work runs in the calling thread: the ``facecraft serve`` command sets
torch's intra-op threads (``ServerSettings.threads``); a program embedding the server should
call ``torch.set_num_threads`` itself (library code never changes process-wide state).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection

from .._proto import facecraft_pb2 as pb
from .._proto import facecraft_pb2_grpc as pb_grpc
from ..errors import FaceCraftError, InvalidInputError, PhotoTooLargeError
from ..photo.image_io import DecodedImage
from ..pipeline.package import ModelPackage
from ..pipeline.pipeline import FaceCraft, PipelineSettings
from ..rigs.registry import STARTER_RIG
from . import wire as _wire
from .calls import Admission, Call, observed, observed_stream
from .metrics import MetricsHTTPServer, ServerMetrics
from .plumbing import (
    SERVICE_NAME,
    TokenAuth,
    add_health,
    add_service,
    bearer_matches,
)
from .rig_store import RigLimits, RigStore
from .status import (
    STATUS_CODES,
    BatchTooLargeError,
    DeadlineError,
    LimitExceededError,
    RegistrationDeniedError,
    ResponseTooLargeError,
    RigExistsError,
    RigQuotaError,
    ServerBusyError,
    ShutdownCancelledError,
    UnknownRigError,
    code_name,
    status_for,
)

__all__ = [
    "SERVICE_NAME",
    "ServerSettings",
    "FaceCraftService",
    "FaceCraftServer",
    "create_server",
    "STATUS_CODES",
    "status_for",
    "LimitExceededError",
    "PhotoTooLargeError",
    "BatchTooLargeError",
    "ResponseTooLargeError",
    "ServerBusyError",
    "RigQuotaError",
    "DeadlineError",
    "ShutdownCancelledError",
    "UnknownRigError",
    "RigExistsError",
    "RegistrationDeniedError",
    "REGISTRATION_MODES",
]

_LOG = logging.getLogger("facecraft.server")
_MiB = 2 ** 20
#: ``ServerSettings.rig_registration`` values: anyone may register (and overwrite) rigs, only
#: calls with the registration token may, or nobody (the rigs folder is read-only).
REGISTRATION_MODES = ("open", "token", "off")
#: Threads beyond the admitted calls: health, reflection and refusals always find one.
_SPARE_THREADS = 8


@dataclass(frozen=True)
class ServerSettings:
    """How :func:`create_server` serves.

    Attributes:
        host: interface to bind; ``"127.0.0.1"`` (loopback only) by default, ``"0.0.0.0"`` or
            ``"[::]"`` for every interface.
        port: TCP port; 0 picks a free one (:attr:`FaceCraftServer.port` tells which).
        workers: reconstruction pipelines, i.e. photos reconstructed at once (each holds its own
            ONNX Runtime sessions; about 1 per 1-2 CPU cores).
        threads: intra-op threads of each pipeline's ONNX Runtime sessions (and of torch, set by
            the ``facecraft serve`` command).
        providers: ONNX Runtime provider order (``"cpu"``, ``"cuda"``, ``"tensorrt"``); None =
            the best available.
        max_queue: calls that may wait for a worker beyond the running ones; more concurrent
            FaceCraft calls get RESOURCE_EXHAUSTED at once (health checks never count).
        queue_timeout_s: longest wait for a free worker (seconds), within the call's deadline.
        max_message_bytes: largest request and response in bytes (photo uploads and meshes with
            textures); larger ones get RESOURCE_EXHAUSTED.
        max_pixels: largest photo (width x height), checked from its header before decoding.
            Default 16 MP (a 4900 x 3300 photo; the pipeline needs far less). Worst-case decode
            memory is about 40 bytes per pixel at once (a 16-bit RGBA decode, the float32 RGB
            and alpha, a uint8 copy for detection): about 640 MB per worker at 16 MP (1.6 GB
            at 40 MP), so ``workers x max_pixels x 40 B`` bounds the decoders' memory.
        max_batch: most photos in one ReconstructBatch call.
        batch_chunk: photos a worker reconstructs together in ReconstructBatch (the networks run
            once per chunk; the deadline is checked between chunks).
        default_texture_size: texture side (texels) when a request asks for a texture without a
            size.
        front_end: the photo front-end of the pipelines the server builds (``"mediapipe"``:
            detection, 468-point mesh and iris, sent as ``Face.photo_landmarks``; or
            ``"mtcnn"``).
        grace_s: seconds running calls get to finish on shutdown (those still running then are
            cancelled, logged and counted as cancelled by shutdown).
        token: bearer token every call (except health) must carry; None = no authentication.
        tls_cert, tls_key: PEM files of the server's certificate chain and key; both or neither.
        tls_client_ca: PEM file of the CA that signs client certificates: mutual TLS (clients
            without a valid certificate cannot connect). Needs tls_cert.
        metrics_port: port of the Prometheus ``/metrics`` endpoint on ``host``; None = off, 0 =
            any free port.
        reflection: register server reflection (``grpcurl`` and friends list the API).
        rigs_dir: the folder of rigs ``RegisterRig`` stores and ``FitRig`` reads (a rig
            registry, as ``facecraft rigs import`` writes); None = a temporary folder of the
            server's own, removed when it stops (registrations then last one run).
        rig_registration: who may call ``RegisterRig`` (see :data:`REGISTRATION_MODES`):
            ``"open"`` any client (who may also overwrite any registered rig), ``"token"``
            only calls carrying ``authorization: Bearer <rig_token>``, ``"off"`` nobody (the
            rigs folder is read-only; PERMISSION_DENIED).
        rig_token: the registration token of ``rig_registration="token"`` (with ``token`` set,
            it also authenticates every other call).
        max_rigs: registered rigs at most (RESOURCE_EXHAUSTED beyond; overwriting is allowed).
        max_rig_bytes: one rig's GLB + sidecar at most, bytes.
        max_rigs_bytes: all registered rigs' files at most, bytes.
        max_loaded_rigs: rigs (with their fitters) kept in memory; the least recently used are
            dropped and reloaded from disk when fitted again.
        rig_cache_bytes: the correspondence cache's size at most, bytes (oldest files removed;
            the cache is a temporary folder of the server's own, removed when it stops).
    """

    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    threads: int | None = 1
    providers: tuple[str, ...] | None = None
    max_queue: int = 32
    queue_timeout_s: float = 30.0
    max_message_bytes: int = 32 * _MiB
    max_pixels: int = 16_000_000
    max_batch: int = 32
    batch_chunk: int = 4
    default_texture_size: int = 1024
    front_end: str = "mediapipe"
    grace_s: float = 10.0
    token: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    metrics_port: int | None = None
    reflection: bool = True
    rigs_dir: Path | None = None
    rig_registration: str = "open"
    rig_token: str | None = field(default=None, repr=False)
    max_rigs: int = 32
    max_rig_bytes: int = 16 * _MiB
    max_rigs_bytes: int = 256 * _MiB
    max_loaded_rigs: int = 4
    rig_cache_bytes: int = 64 * _MiB

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise InvalidInputError(msg)

        need(0 <= self.port <= 65535, f"port must be in [0, 65535], got {self.port}")
        for name in ("workers", "max_batch", "batch_chunk"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an int >= 1, got {v!r}")
        need(self.max_queue >= 0, f"max_queue must be >= 0, got {self.max_queue}")
        need(self.threads is None or self.threads >= 1,
             f"threads must be >= 1 or None, got {self.threads}")
        need(self.queue_timeout_s > 0 and self.grace_s >= 0,
             "queue_timeout_s must be > 0 and grace_s >= 0 seconds")
        need(64 * 1024 <= self.max_message_bytes <= 2 ** 31 - 1,
             f"max_message_bytes must be in [64 KiB, 2 GiB), got {self.max_message_bytes}")
        need(self.max_pixels >= 16 * 16, f"max_pixels must be >= 256, got {self.max_pixels}")
        need(_wire.MIN_TEXTURE_SIZE <= self.default_texture_size <= _wire.MAX_TEXTURE_SIZE,
             f"default_texture_size must be in [{_wire.MIN_TEXTURE_SIZE}, "
             f"{_wire.MAX_TEXTURE_SIZE}], got {self.default_texture_size}")
        need((self.tls_cert is None) == (self.tls_key is None),
             "tls_cert and tls_key go together: give both or neither")
        need(self.tls_client_ca is None or self.tls_cert is not None,
             "tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        for name in ("token", "rig_token"):
            v = getattr(self, name)
            need(v is None or (bool(v) and v.isprintable() and " " not in v),
                 f"{name} must be a non-empty printable string without spaces")
        need(self.metrics_port is None or 0 <= self.metrics_port <= 65535,
             f"metrics_port must be None or in [0, 65535], got {self.metrics_port}")
        need(self.rig_registration in REGISTRATION_MODES,
             f"rig_registration must be one of {REGISTRATION_MODES}, got "
             f"{self.rig_registration!r}")
        need((self.rig_registration == "token") == (self.rig_token is not None),
             "rig_token goes with rig_registration='token' (and only with it)")
        self.rig_limits  # noqa: B018 - checks the rig limits

    @property
    def rig_limits(self) -> RigLimits:
        """The rig store's :class:`~facecraft.sdk.serving.rig_store.RigLimits`."""
        return RigLimits(max_rigs=self.max_rigs, max_rig_bytes=self.max_rig_bytes,
                         max_total_bytes=self.max_rigs_bytes, max_loaded=self.max_loaded_rigs,
                         cache_bytes=self.rig_cache_bytes)

    @property
    def address(self) -> str:
        """``host:port`` as gRPC binds it."""
        return f"{self.host}:{self.port}"

    def limits(self, workers: int | None = None) -> pb.Limits:
        """The limits advertised in ModelInfo (``workers``: the pool's size, default the
        settings')."""
        return pb.Limits(max_message_bytes=self.max_message_bytes, max_pixels=self.max_pixels,
                         max_batch=self.max_batch, min_texture_size=_wire.MIN_TEXTURE_SIZE,
                         max_texture_size=_wire.MAX_TEXTURE_SIZE,
                         default_texture_size=self.default_texture_size,
                         workers=self.workers if workers is None else workers)


# --------------------------------------------------------------------------- worker pool
class _PipelinePool:
    """``workers`` pipelines handed out one call at a time (a FaceCraft serves one thread)."""

    def __init__(self, pipelines: Sequence[FaceCraft], timeout_s: float,
                 metrics: ServerMetrics) -> None:
        self._free: queue.Queue[FaceCraft] = queue.Queue()
        for p in pipelines:
            self._free.put(p)
        self.size = len(pipelines)
        self.any = pipelines[0]
        self._timeout = timeout_s
        self._metrics = metrics

    @contextlib.contextmanager
    def acquire(self, context: grpc.ServicerContext) -> Iterator[FaceCraft]:
        remaining = context.time_remaining()
        wait = self._timeout if remaining is None else min(self._timeout, remaining)
        try:
            craft = self._free.get(timeout=max(wait, 0.0))
        except queue.Empty:
            if remaining is not None and remaining <= self._timeout:
                raise DeadlineError("the deadline passed while waiting for a free worker "
                                    f"({self.size} busy); allow more time") from None
            raise ServerBusyError(f"all {self.size} workers stayed busy for "
                                  f"{self._timeout:g} s; retry later") from None
        self._metrics.add("workers_busy")
        try:
            yield craft
        finally:
            self._metrics.add("workers_busy", -1)
            self._free.put(craft)


def _check_size(msg: Message, limit: int, what: str,
                advice: str = "ask for a smaller texture_size, set omit_topology, select the "
                              "largest face only") -> None:
    n = msg.ByteSize()
    if n > limit:
        raise ResponseTooLargeError(
            f"the {what} would be {n / _MiB:.1f} MiB, above the server's "
            f"{limit / _MiB:.1f} MiB message limit; {advice}, or raise --max-message-mb")


def _source(name: str) -> str:
    return name[:200] or "<bytes>"


# --------------------------------------------------------------------------- the servicer
class FaceCraftService(pb_grpc.FaceCraftServicer):
    """The ``facecraft.v1.FaceCraft`` servicer: validation and conversion around the pool
    (each method wrapped by :func:`~facecraft.sdk.serving.calls.observed`)."""

    def __init__(self, pool: _PipelinePool, settings: ServerSettings,
                 metrics: ServerMetrics, rigs: RigStore) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.rigs = rigs
        self.admission = Admission(pool.size + settings.max_queue)
        self.stopping = threading.Event()

    def _reconstruct(self, craft: FaceCraft, data: bytes, source: str,
                     opts: _wire.CallOptions, call: Call) -> pb.ReconstructResponse:
        photo = craft.decode(data, source=source)
        faces = craft.reconstruct(photo, all_faces=opts.all_faces, check=call.check)
        messages = []
        for face in faces:
            call.check("baking" if opts.texture_size else "encoding the result")
            messages.append(_wire.face_message(craft, face, opts))
        return pb.ReconstructResponse(request_id=call.request_id,
                                      photo=_wire.photo_info(photo, source), faces=messages)

    @observed("Reconstruct")
    def Reconstruct(self, request: pb.ReconstructRequest, context: grpc.ServicerContext,  # noqa: N802
                    call: Call) -> pb.ReconstructResponse:
        opts = _wire.call_options(request.options, self.settings.default_texture_size)
        with self.pool.acquire(context) as craft:
            call.check("decoding")
            resp = self._reconstruct(craft, request.photo, _source(request.source), opts, call)
        _check_size(resp, self.settings.max_message_bytes, "response")
        call.faces = len(resp.faces)
        return resp

    @observed_stream("ReconstructBatch")
    def ReconstructBatch(self, request: pb.ReconstructBatchRequest,  # noqa: N802
                         context: grpc.ServicerContext, call: Call
                         ) -> Iterator[pb.ReconstructBatchItem]:
        st = self.settings
        opts = _wire.call_options(request.options, st.default_texture_size)
        n = len(request.photos)
        if n == 0:
            raise InvalidInputError("photos is empty; send at least one photo")
        if n > st.max_batch:
            raise BatchTooLargeError(f"{n} photos in one batch, above the server's max_batch "
                                     f"{st.max_batch}; split the batch")
        for start in range(0, n, st.batch_chunk):
            call.check(f"photo {start}")
            chunk = list(enumerate(request.photos[start:start + st.batch_chunk], start))
            with self.pool.acquire(context) as craft:
                items = self._batch_chunk(craft, chunk, opts, call)
            for item in items:
                self.metrics.batch_item(code_name(item.status.code))
                call.faces += len(item.result.faces)
                yield item

    def _batch_chunk(self, craft: FaceCraft, chunk: list[tuple[int, pb.Photo]],
                     opts: _wire.CallOptions, call: Call) -> list[pb.ReconstructBatchItem]:
        items = {i: pb.ReconstructBatchItem(index=i, id=p.id, status=pb.Status(code=0))
                 for i, p in chunk}
        for item in items.values():
            item.status.SetInParent()  # sent even when OK (all defaults), for every client
        decoded: list[tuple[int, DecodedImage]] = []
        for i, p in chunk:
            try:
                decoded.append((i, craft.decode(p.data, source=p.id or f"photo {i}")))
            except FaceCraftError as e:
                _fail_item(items[i], e)
        results = craft.reconstruct_batch([d for _, d in decoded], all_faces=opts.all_faces,
                                          errors="return", check=call.check) if decoded else []
        for (i, photo), res in zip(decoded, results, strict=True):
            if isinstance(res, BaseException):
                _fail_item(items[i], res)
                continue
            item = items[i]
            try:
                call.check("encoding the result")
                item.result.CopyFrom(pb.ReconstructResponse(
                    request_id=call.request_id, photo=_wire.photo_info(photo, photo.source),
                    faces=[_wire.face_message(craft, f, opts) for f in res]))
                _check_size(item, self.settings.max_message_bytes, f"item {i}")
            except (DeadlineError, ShutdownCancelledError):
                raise
            except FaceCraftError as e:
                item.ClearField("result")
                _fail_item(item, e)
        return [items[i] for i, _ in chunk]

    # RIG CALLS: the rig store (rig_store) holds the rigs and their fitters; fitting runs on a
    # worker, like a reconstruction (it is CPU work of the same size).
    def _may_register(self, context: grpc.ServicerContext) -> None:
        st = self.settings
        if st.rig_registration == "off":
            raise RegistrationDeniedError("rig registration is off on this server (its rigs "
                                          "are read-only); ListRigs lists what it fits")
        if st.rig_registration == "token" and not (
                st.rig_token is not None
                and bearer_matches(context.invocation_metadata(), st.rig_token)):
            raise RegistrationDeniedError("registering rigs on this server needs its "
                                          "registration token: send 'authorization: Bearer "
                                          "<rig token>'")

    @observed("RegisterRig")
    def RegisterRig(self, request: pb.RegisterRigRequest,  # noqa: N802
                    context: grpc.ServicerContext, call: Call) -> pb.RigInfo:
        self._may_register(context)
        with self.pool.acquire(context):
            call.check("registering the rig")
            rig = self.rigs.register(request.glb, request.sidecar_json, name=request.name,
                                     overwrite=request.overwrite)
        return _wire.rig_info(rig, builtin=False, sliders=True)

    @observed("ListRigs")
    def ListRigs(self, request: pb.ListRigsRequest,  # noqa: N802
                 context: grpc.ServicerContext, call: Call) -> pb.ListRigsResponse:
        return pb.ListRigsResponse(rigs=[
            _wire.rig_info(rig, builtin=rig.name == STARTER_RIG,
                           sliders=request.include_sliders) for rig in self.rigs.rigs()])

    @observed("FitRig")
    def FitRig(self, request: pb.FitRigRequest, context: grpc.ServicerContext,  # noqa: N802
               call: Call) -> pb.FitRigResponse:
        st = self.settings
        size = _wire.rig_texture_size(request, st.default_texture_size)
        which = request.WhichOneof("face")
        if not request.rig:
            raise InvalidInputError("rig is empty; name a rig (\"starter\" or one ListRigs "
                                    "lists)")
        if which is None:
            raise InvalidInputError("no face: send photo (a photo's bytes) or reconstruction "
                                    "(a Face of an earlier Reconstruct)")
        rigger = self.rigs.get(request.rig)
        source = _source(request.source)
        with self.pool.acquire(context) as craft:
            if which == "photo":
                call.check("decoding")
                photo = craft.decode(request.photo, source=source)
                face = craft.reconstruct(photo, all_faces=False, check=call.check)[0]
                call.check("fitting the rig")
                rigged = rigger.fit_result(face, texture_size=size)
            else:
                neutral, colors, expr = _wire.face_shape(request.reconstruction,
                                                         rigger.model.num_vertices)
                call.check("fitting the rig")
                rigged = rigger.fit(neutral, vertex_colors=colors, expression=expr,
                                    texture_size=size)
            call.check("encoding the result")
            resp = _wire.fit_rig_response(rigged, request_id=call.request_id,
                                          glb=request.include_glb)
        if which == "photo":
            resp.photo.CopyFrom(_wire.photo_info(photo, source))
            resp.detection.CopyFrom(_wire.detection(face.detection))
        _check_size(resp, st.max_message_bytes, "response",
                    "ask for a smaller texture_size or omit_texture, leave out include_glb")
        call.faces = 1
        return resp

    @observed("GetModelInfo")
    def GetModelInfo(self, request: pb.GetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext, call: Call) -> pb.ModelInfo:
        return _wire.model_info(self.pool.any, limits=self.settings.limits(self.pool.size),
                                include_topology=request.include_topology)


def _fail_item(item: pb.ReconstructBatchItem, exc: BaseException) -> None:
    code, message = status_for(exc)
    item.status.code = code.value[0]
    item.status.message = message


# --------------------------------------------------------------------------- the server
def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read the {what} {path}: {e.strerror or e}") from None


class FaceCraftServer:
    """A configured gRPC server (use :func:`create_server`); a context manager that starts on
    entry and stops (gracefully) on exit.

    Attributes:
        port: the bound gRPC port. metrics_port: the ``/metrics`` port, or None.
        settings, metrics: the server's settings and counters.
        rigs: the rig store (its ``folder`` is where registered rigs are).
    """

    def __init__(self, settings: ServerSettings, pipelines: Sequence[FaceCraft]) -> None:
        if not pipelines:
            raise InvalidInputError("a server needs at least one pipeline")
        self.settings = settings
        self.metrics = ServerMetrics(workers=len(pipelines))
        self._pool = _PipelinePool(pipelines, settings.queue_timeout_s, self.metrics)
        n_conc = len(pipelines) + settings.max_queue
        opts = [("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0)]
        # no maximum_concurrent_rpcs: gRPC's cap counts health checks too; the service admits
        # n_conc calls itself, and the spare threads keep health and refusals answered
        self._executor = futures.ThreadPoolExecutor(max_workers=n_conc + _SPARE_THREADS,
                                                    thread_name_prefix="facecraft-rpc")
        tokens = [t for t in (settings.token, settings.rig_token) if t is not None]
        interceptors = [TokenAuth(tokens, self.metrics)] if settings.token else []
        self._server = grpc.server(self._executor, interceptors=interceptors, options=opts)
        self._tmp = tempfile.TemporaryDirectory(prefix="facecraft-serve-")
        own = Path(self._tmp.name)
        rigs_dir = Path(settings.rigs_dir) if settings.rigs_dir is not None else own / "rigs"
        self.rigs = RigStore(rigs_dir, self._pool.any.face_model, cache_dir=own / "cache",
                             limits=settings.rig_limits)
        self.service = FaceCraftService(self._pool, settings, self.metrics, self.rigs)
        add_service(self.service, self._server)
        self.health = health.HealthServicer()
        add_health(self.health, self._server)
        if settings.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME), self._server)
        if settings.tls_cert is not None:
            ca = (_read(settings.tls_client_ca, "client CA")
                  if settings.tls_client_ca is not None else None)
            creds = grpc.ssl_server_credentials(
                [(_read(settings.tls_key, "TLS key"), _read(settings.tls_cert, "TLS certificate"))],
                root_certificates=ca, require_client_auth=ca is not None)
            self.port = self._server.add_secure_port(settings.address, creds)
        else:
            self.port = self._server.add_insecure_port(settings.address)
        if self.port == 0:
            raise InvalidInputError(f"cannot bind {settings.address} (in use, or not an address "
                                    "of this machine)")
        self._metrics_http = (MetricsHTTPServer(self.metrics, settings.host.strip("[]"),
                                                settings.metrics_port)
                              if settings.metrics_port is not None else None)
        self.metrics_port = self._metrics_http.port if self._metrics_http else None
        self._stopped = threading.Event()

    def start(self) -> FaceCraftServer:
        """Start serving (returns self)."""
        self._server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self._metrics_http is not None:
            self._metrics_http.start()
        _LOG.info("serving %s on %s:%d (%s%s, %d workers)%s", SERVICE_NAME,
                  self.settings.host, self.port,
                  "TLS" if self.settings.tls_cert else "plaintext",
                  " + client certificates" if self.settings.tls_client_ca else "",
                  self._pool.size,
                  f", metrics on :{self.metrics_port}/metrics" if self.metrics_port else "")
        return self

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: health NOT_SERVING, new calls refused, running calls get
        ``grace_s`` (default the settings') seconds, then are cancelled. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_s if grace_s is None else grace_s
        self.health.enter_graceful_shutdown()
        _LOG.info("shutting down (grace %.1f s)", grace)
        self.service.stopping.set()  # calls that end now were cut by the shutdown
        self._server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.stop()
        self._executor.shutdown(wait=False)
        self._tmp.cleanup()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server stops (True) or ``timeout_s`` passes (False)."""
        return not self._server.wait_for_termination(timeout_s)

    def __enter__(self) -> FaceCraftServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_server(settings: ServerSettings = ServerSettings(), *,
                  package: ModelPackage | str | Path | None = None,
                  pipelines: Sequence[FaceCraft] | None = None) -> tuple[FaceCraftServer, int]:
    """Build a server (not started; call ``start()`` or use it as a context manager).

    Args:
        settings: see :class:`ServerSettings`.
        package: the model package (a loaded one, a ``.fcpkg`` folder, or None for the
            built-in); ``settings.workers`` pipelines are built over it.
        pipelines: ready :class:`~facecraft.sdk.pipeline.pipeline.FaceCraft` objects to serve
        instead
            (one worker each; ``package`` must then be None).

    Returns:
        ``(server, port)``: the port actually bound (useful with ``settings.port = 0``).

    Raises:
        ModelFileError: an invalid package. InvalidInputError: bad settings, unreadable TLS
            files, or an address that cannot be bound.
    """
    if pipelines is not None and package is not None:
        raise InvalidInputError("give package or pipelines, not both")
    if pipelines is None:
        from ..pipeline.package import load_package

        pkg = package if isinstance(package, ModelPackage) else load_package(package)
        ps = PipelineSettings(texture_size=0, max_pixels=settings.max_pixels,
                              front_end=settings.front_end)
        pipelines = [FaceCraft(pkg, providers=settings.providers, threads=settings.threads,
                               settings=ps) for _ in range(settings.workers)]
    else:
        pipelines = list(pipelines)
        bad = [p for p in pipelines if p.settings.max_pixels != settings.max_pixels]
        if bad:
            raise InvalidInputError(f"the pipelines' max_pixels ({bad[0].settings.max_pixels}) "
                                    f"differs from the server's ({settings.max_pixels}); build "
                                    "them with PipelineSettings(max_pixels=...)")
    server = FaceCraftServer(settings, pipelines)
    return server, server.port
