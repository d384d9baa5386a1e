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
  call's deadline), and past that gRPC's own RESOURCE_EXHAUSTED;
* deadlines honoured between stages (``context.time_remaining()``: waiting for a worker,
  decoding, reconstructing, each batch chunk) with DEADLINE_EXCEEDED;
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

Errors map to status codes in one table, :data:`STATUS_CODES` (first matching class wins):

=========================  =====================  ==========================================
exception                  status                 when
=========================  =====================  ==========================================
NoFaceError                FAILED_PRECONDITION    a readable photo without a face
PhotoTooLargeError         RESOURCE_EXHAUSTED     more pixels than ``max_pixels`` (header)
ResponseTooLargeError      RESOURCE_EXHAUSTED     the answer would exceed the message limit
BatchTooLargeError         RESOURCE_EXHAUSTED     more photos than ``max_batch``
ServerBusyError            RESOURCE_EXHAUSTED     no worker free within ``queue_timeout_s``
(gRPC itself)              RESOURCE_EXHAUSTED     a request above ``max_message_bytes``, or
                                                  more than ``workers + max_queue`` calls
DeadlineError              DEADLINE_EXCEEDED      the call's deadline passed
UnknownRigError            NOT_FOUND              FitRig names a rig the server does not have
RigExistsError             ALREADY_EXISTS         RegisterRig of a taken name, no overwrite
InvalidInputError          INVALID_ARGUMENT       not an image, truncated, bad option value,
  (and ImageDecodeError)                          a request that is not valid protobuf
DetectorUnavailableError,  INTERNAL               the server's models are broken
ModelFileError, ...
FaceCraftError             INTERNAL
anything else              INTERNAL               logged with its traceback; the message only
                                                  names the request id
=========================  =====================  ==========================================

Zero faces is an error (FAILED_PRECONDITION) for ``Reconstruct``, and a per-item status in
``ReconstructBatch``: a response always holds at least one face.

The pipeline's torch work runs in the calling thread: the ``facecraft serve`` command sets
torch's intra-op threads (``ServerSettings.threads``); a program embedding the server should
call ``torch.set_num_threads`` itself (library code never changes process-wide state).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk._proto import facecraft_pb2_grpc as pb_grpc
from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFileError, ModelFormatError
from facecraft.sdk.photo.detect import DetectorUnavailableError
from facecraft.sdk.photo.image_io import DecodedImage, ImageDecodeError
from facecraft.sdk.photo.ingest import NoFaceError
from facecraft.sdk.pipeline.package import ModelPackage
from facecraft.sdk.pipeline.pipeline import FaceCraft, PipelineSettings
from facecraft.sdk.rigs.registry import STARTER_RIG
from facecraft.sdk.serving import wire as _wire
from facecraft.sdk.serving.metrics import MetricsHTTPServer, ServerMetrics
from facecraft.sdk.serving.plumbing import SERVICE_NAME, Malformed, TokenAuth, add_service
from facecraft.sdk.serving.rig_store import RigExistsError, RigStore, UnknownRigError

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
    "DeadlineError",
    "UnknownRigError",
    "RigExistsError",
]

_LOG = logging.getLogger("facecraft.server")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class LimitExceededError(FaceCraftError):
    """A request is above one of the server's limits (RESOURCE_EXHAUSTED)."""


class PhotoTooLargeError(LimitExceededError):
    """The photo has more pixels than the server accepts (from its header, before decoding)."""


class ResponseTooLargeError(LimitExceededError):
    """The answer would be larger than the server's message limit."""


class BatchTooLargeError(LimitExceededError):
    """More photos in one ReconstructBatch than the server's ``max_batch``."""


class ServerBusyError(LimitExceededError):
    """No worker became free in time."""


class DeadlineError(FaceCraftError):
    """The call's deadline passed (or the client went away) before the work was done."""


#: Exception class -> status code; the first ``isinstance`` match wins (most specific first).
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NoFaceError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnknownRigError, grpc.StatusCode.NOT_FOUND),
    (RigExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),  # photo, response, batch, busy
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),  # ImageDecodeError included
    (DetectorUnavailableError, grpc.StatusCode.INTERNAL),
    (ModelFileError, grpc.StatusCode.INTERNAL),
    (ModelFormatError, grpc.StatusCode.INTERNAL),
    (FaceCraftError, grpc.StatusCode.INTERNAL),
)


def status_for(exc: BaseException, request_id: str = "") -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for ``exc`` (see :data:`STATUS_CODES`).

    Unexpected exceptions (not :class:`~facecraft.sdk.errors.FaceCraftError`) give INTERNAL with
    a message naming only the request id: their text may hold server internals.
    """
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, (f"internal server error (request id {request_id}); "
                                      "the server log has the details")


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
            calls get RESOURCE_EXHAUSTED at once.
        queue_timeout_s: longest wait for a free worker (seconds), within the call's deadline.
        max_message_bytes: largest request and response in bytes (photo uploads and meshes with
            textures); larger ones get RESOURCE_EXHAUSTED.
        max_pixels: largest photo (width x height), checked from its header before decoding.
        max_batch: most photos in one ReconstructBatch call.
        batch_chunk: photos a worker reconstructs together in ReconstructBatch (the networks run
            once per chunk; the deadline is checked between chunks).
        default_texture_size: texture side (texels) when a request asks for a texture without a
            size.
        grace_s: seconds running calls get to finish on shutdown.
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
    """

    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    threads: int | None = 1
    providers: tuple[str, ...] | None = None
    max_queue: int = 32
    queue_timeout_s: float = 30.0
    max_message_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_batch: int = 32
    batch_chunk: int = 4
    default_texture_size: int = 1024
    grace_s: float = 10.0
    token: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    metrics_port: int | None = None
    reflection: bool = True
    rigs_dir: Path | None = None

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
        need(self.token is None or (bool(self.token) and self.token.isprintable()
                                    and " " not in self.token),
             "token must be a non-empty printable string without spaces")
        need(self.metrics_port is None or 0 <= self.metrics_port <= 65535,
             f"metrics_port must be None or in [0, 65535], got {self.metrics_port}")

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


def _check_time(context: grpc.ServicerContext, before: str) -> None:
    if not context.is_active():
        raise DeadlineError(f"the call ended (cancelled or past its deadline) before {before}")
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineError(f"the deadline passed before {before}; allow more time")


def _decode(craft: FaceCraft, data: bytes, source: str) -> DecodedImage:
    try:
        return craft.decode(data, source=source)
    except ImageDecodeError as e:
        if "max_pixels=" in str(e):  # image_io's decompression-bomb guard
            raise PhotoTooLargeError(str(e)) from None
        raise


def _check_size(msg: Any, limit: int, what: str,
                advice: str = "ask for a smaller texture_size, set omit_topology, select the "
                              "largest face only") -> None:
    n = msg.ByteSize()
    if n > limit:
        raise ResponseTooLargeError(
            f"the {what} would be {n / 2 ** 20:.1f} MiB, above the server's "
            f"{limit / 2 ** 20:.1f} MiB message limit; {advice}, or raise --max-message-mb")


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.match(value):
            return value
    return uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------- the servicer
@dataclass
class _Call:
    request_id: str
    faces: int = 0


def _observed(method: str, streaming: bool = False) -> Callable:
    """Wrap an RPC: request id, deadline and error mapping, one log line, metrics."""

    def decorate(fn: Callable) -> Callable:
        def finish(self: FaceCraftService, context: grpc.ServicerContext, call: _Call,
                   t0: float, exc: BaseException | None) -> None:
            code = grpc.StatusCode.OK
            if exc is not None:
                code, message = status_for(exc, call.request_id)
                if code is grpc.StatusCode.INTERNAL:
                    _LOG.error("rpc %s request_id=%s failed", method, call.request_id,
                               exc_info=exc, extra={"request_id": call.request_id,
                                                    "method": method})
            seconds = time.perf_counter() - t0
            self.metrics.finished(method, code.name, seconds)
            self.metrics.add("faces", call.faces)
            _LOG.info("rpc %s code=%s ms=%.1f faces=%d request_id=%s peer=%s", method,
                      code.name, seconds * 1e3, call.faces, call.request_id, context.peer(),
                      extra={"request_id": call.request_id, "method": method,
                             "code": code.name, "latency_ms": round(seconds * 1e3, 2),
                             "faces": call.faces, "peer": context.peer()})
            if exc is not None:
                context.abort(code, message)

        def cancelled(self: FaceCraftService, call: _Call, t0: float) -> None:
            seconds = time.perf_counter() - t0
            self.metrics.finished(method, grpc.StatusCode.CANCELLED.name, seconds)
            _LOG.info("rpc %s code=CANCELLED ms=%.1f faces=%d request_id=%s", method,
                      seconds * 1e3, call.faces, call.request_id,
                      extra={"request_id": call.request_id, "method": method,
                             "code": "CANCELLED", "latency_ms": round(seconds * 1e3, 2),
                             "faces": call.faces})

        def check(request: Any) -> None:
            if isinstance(request, Malformed):
                raise InvalidInputError(f"the request is not a valid {request.message_type} "
                                        f"message ({request.error})")

        def start(self: FaceCraftService, context: grpc.ServicerContext) -> tuple[_Call, float]:
            call = _Call(_request_id(context))
            context.set_trailing_metadata((("x-request-id", call.request_id),))
            self.metrics.started(method)
            return call, time.perf_counter()

        if streaming:
            @functools.wraps(fn)
            def stream(self, request, context):
                call, t0 = start(self, context)
                try:
                    check(request)
                    yield from fn(self, request, context, call)
                except GeneratorExit:  # the client cancelled or the deadline passed
                    cancelled(self, call, t0)
                    raise
                except Exception as e:  # noqa: BLE001 - mapped to a status in finish()
                    finish(self, context, call, t0, e)
                    return
                finish(self, context, call, t0, None)

            return stream

        @functools.wraps(fn)
        def unary(self, request, context):
            call, t0 = start(self, context)
            try:
                check(request)
                out = fn(self, request, context, call)
            except Exception as e:  # noqa: BLE001 - mapped to a status in finish()
                finish(self, context, call, t0, e)
                raise AssertionError("unreachable: abort raises") from None
            finish(self, context, call, t0, None)
            return out

        return unary

    return decorate


class FaceCraftService(pb_grpc.FaceCraftServicer):
    """The ``facecraft.v1.FaceCraft`` servicer: validation and conversion around the pool."""

    def __init__(self, pool: _PipelinePool, settings: ServerSettings,
                 metrics: ServerMetrics, rigs: RigStore) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.rigs = rigs

    def _reconstruct(self, craft: FaceCraft, data: bytes, source: str,
                     opts: _wire.CallOptions, context: grpc.ServicerContext,
                     request_id: str) -> pb.ReconstructResponse:
        photo = _decode(craft, data, source)
        _check_time(context, "reconstructing")
        faces = craft.reconstruct(photo, all_faces=opts.all_faces)
        _check_time(context, "encoding the result")
        return pb.ReconstructResponse(request_id=request_id, photo=_wire.photo_info(photo, source),
                                      faces=[_wire.face_message(craft, f, opts) for f in faces])

    @_observed("Reconstruct")
    def Reconstruct(self, request: pb.ReconstructRequest, context: grpc.ServicerContext,  # noqa: N802
                    call: _Call) -> pb.ReconstructResponse:
        opts = _wire.call_options(request.options, self.settings.default_texture_size)
        source = request.source[:200] or "<bytes>"
        with self.pool.acquire(context) as craft:
            _check_time(context, "decoding")
            resp = self._reconstruct(craft, request.photo, source, opts, context,
                                     call.request_id)
        _check_size(resp, self.settings.max_message_bytes, "response")
        call.faces = len(resp.faces)
        return resp

    @_observed("ReconstructBatch", streaming=True)
    def ReconstructBatch(self, request: pb.ReconstructBatchRequest,  # noqa: N802
                         context: grpc.ServicerContext, call: _Call
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
            _check_time(context, f"photo {start}")
            chunk = list(enumerate(request.photos[start:start + st.batch_chunk], start))
            with self.pool.acquire(context) as craft:
                items = self._batch_chunk(craft, chunk, opts, call.request_id)
            for item in items:
                self.metrics.batch_item(grpc.StatusCode.OK.name if item.status.code == 0 else
                                        _code_name(item.status.code))
                call.faces += len(item.result.faces)
                yield item

    def _batch_chunk(self, craft: FaceCraft, chunk: list[tuple[int, pb.Photo]],
                     opts: _wire.CallOptions, request_id: str) -> list[pb.ReconstructBatchItem]:
        items = {i: pb.ReconstructBatchItem(index=i, id=p.id, status=pb.Status(code=0))
                 for i, p in chunk}
        for item in items.values():
            item.status.SetInParent()  # sent even when OK (all defaults), for every client
        decoded: list[tuple[int, DecodedImage]] = []
        for i, p in chunk:
            try:
                decoded.append((i, _decode(craft, p.data, p.id or f"photo {i}")))
            except FaceCraftError as e:
                _fail_item(items[i], e)
        results = craft.reconstruct_batch([d for _, d in decoded], all_faces=opts.all_faces,
                                          errors="return") if decoded else []
        for (i, photo), res in zip(decoded, results, strict=True):
            if isinstance(res, BaseException):
                _fail_item(items[i], res)
                continue
            item = items[i]
            try:
                item.result.CopyFrom(pb.ReconstructResponse(
                    request_id=request_id, photo=_wire.photo_info(photo, photo.source),
                    faces=[_wire.face_message(craft, f, opts) for f in res]))
                _check_size(item, self.settings.max_message_bytes, f"item {i}")
            except FaceCraftError as e:
                item.ClearField("result")
                _fail_item(item, e)
        return [items[i] for i, _ in chunk]

    # RIG CALLS: the rig store (_rig_store) holds the rigs and their fitters; fitting runs on a
    # worker, like a reconstruction (it is CPU work of the same size).
    @_observed("RegisterRig")
    def RegisterRig(self, request: pb.RegisterRigRequest,  # noqa: N802
                    context: grpc.ServicerContext, call: _Call) -> pb.RigInfo:
        with self.pool.acquire(context):
            _check_time(context, "registering the rig")
            rig = self.rigs.register(request.glb, request.sidecar_json, name=request.name,
                                     overwrite=request.overwrite)
        _LOG.info("registered rig %r (%d vertices) request_id=%s", rig.name, rig.num_vertices,
                  call.request_id, extra={"request_id": call.request_id})
        return _wire.rig_info(rig, builtin=False, sliders=True)

    @_observed("ListRigs")
    def ListRigs(self, request: pb.ListRigsRequest,  # noqa: N802
                 context: grpc.ServicerContext, call: _Call) -> pb.ListRigsResponse:
        return pb.ListRigsResponse(rigs=[
            _wire.rig_info(rig, builtin=rig.name == STARTER_RIG,
                           sliders=request.include_sliders) for rig in self.rigs.rigs()])

    @_observed("FitRig")
    def FitRig(self, request: pb.FitRigRequest, context: grpc.ServicerContext,  # noqa: N802
               call: _Call) -> pb.FitRigResponse:
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
        source = request.source[:200] or "<bytes>"
        with self.pool.acquire(context) as craft:
            if which == "photo":
                _check_time(context, "decoding")
                photo = _decode(craft, request.photo, source)
                _check_time(context, "reconstructing")
                face = craft.reconstruct(photo, all_faces=False)[0]
                _check_time(context, "fitting the rig")
                rigged = rigger.fit_result(face, texture_size=size)
            else:
                neutral, colors, expr = _wire.face_shape(request.reconstruction,
                                                         rigger.model.num_vertices)
                _check_time(context, "fitting the rig")
                rigged = rigger.fit(neutral, vertex_colors=colors, expression=expr,
                                    texture_size=size)
            _check_time(context, "encoding the result")
            resp = _wire.fit_rig_response(rigged, request_id=call.request_id,
                                          glb=request.include_glb)
        if which == "photo":
            resp.photo.CopyFrom(_wire.photo_info(photo, source))
            resp.detection.CopyFrom(_wire.detection(face.detection))
        _check_size(resp, st.max_message_bytes, "response",
                    "ask for a smaller texture_size or omit_texture, leave out include_glb")
        call.faces = 1
        return resp

    @_observed("GetModelInfo")
    def GetModelInfo(self, request: pb.GetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext, call: _Call) -> pb.ModelInfo:
        return _wire.model_info(self.pool.any, limits=self.settings.limits(self.pool.size),
                                include_topology=request.include_topology)


def _code_name(number: int) -> str:
    for c in grpc.StatusCode:
        if c.value[0] == number:
            return c.name
    return str(number)


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
        self._executor = futures.ThreadPoolExecutor(max_workers=n_conc + 2,
                                                    thread_name_prefix="facecraft-rpc")
        interceptors = [TokenAuth(settings.token, self.metrics)] if settings.token else []
        self._server = grpc.server(self._executor, interceptors=interceptors, options=opts,
                                   maximum_concurrent_rpcs=n_conc)
        if settings.rigs_dir is not None:
            self._rigs_tmp = None
            rigs_dir = Path(settings.rigs_dir)
        else:  # the server's own, removed in stop()
            self._rigs_tmp = tempfile.TemporaryDirectory(prefix="facecraft-serve-rigs-")
            rigs_dir = Path(self._rigs_tmp.name)
        self.rigs = RigStore(rigs_dir, self._pool.any.face_model)
        self.service = FaceCraftService(self._pool, settings, self.metrics, self.rigs)
        add_service(self.service, self._server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
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
        self._server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.stop()
        self._executor.shutdown(wait=False)
        if self._rigs_tmp is not None:
            self._rigs_tmp.cleanup()

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
        from facecraft.sdk.pipeline.package import load_package

        pkg = package if isinstance(package, ModelPackage) else load_package(package)
        ps = PipelineSettings(texture_size=0, max_pixels=settings.max_pixels)
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
