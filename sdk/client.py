"""Python clients of the FaceCraft gRPC service: :class:`FaceCraftClient` (blocking) and
:class:`AsyncFaceCraftClient` (asyncio, ``grpc.aio``).

Both own their channel (use them as context managers), set a deadline on every call
(``timeout_s``), retry UNAVAILABLE with exponential backoff (:class:`RetryPolicy`; a stream is
retried only before its first item), and return typed, frozen results holding NumPy arrays
(:class:`Reconstruction`, :class:`Face`, :class:`BatchItem`, :class:`ModelInfo`; the
detection is :class:`facecraft.sdk.photo.detection.Face`, also named :data:`Detection` here, a
deprecated alias). Failures
raise :class:`FaceCraftRpcError` (a :class:`~facecraft.sdk.errors.FaceCraftError`) with the
status name, the server's message and the request id; callers never import grpc.

Frames and units are the proto's (``proto/facecraft/v1/facecraft.proto``): metres, model frame
right-handed with +Y up and the face looking down +Z, triangles counter-clockwise from outside,
UV origin bottom-left, colours in the photo's (sRGB) encoding. Importing this module loads
neither torch nor OpenCV nor SciPy. The results live in :mod:`facecraft.sdk.client_types`, the
request building in :mod:`facecraft.sdk.client_requests`, the asyncio client in
:mod:`facecraft.sdk.client_async`.

Example::

    from .client import FaceCraftClient, ReconstructOptions

    with FaceCraftClient("127.0.0.1:50051") as client:
        rec = client.reconstruct("photo.jpg", ReconstructOptions(texture=True))
        face = rec.faces[0]
        face.vertices      # (V, 3) float32 metres
        face.texture_png   # PNG bytes
        fitted = client.fit_rig("starter", photo="photo.jpg")  # a character rig's sliders
        fitted.values      # slider name -> value (identity and expression)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._proto import facecraft_pb2 as pb
from ._proto import facecraft_pb2_grpc as pb_grpc
from .client_async import AsyncFaceCraftClient
from .client_requests import (
    PemInput,
    PhotoInput,
    SidecarInput,
    _batch_request,
    _config,
    _fit_request,
    _photo_bytes,
    _register_request,
    _rpc_error,
    _unavailable,
)
from .client_types import (
    BatchItem,
    Coefficients,
    Detection,
    Face,
    FaceCraftRpcError,
    FittedRig,
    ModelInfo,
    PhotoInfo,
    PhotoLandmarks,
    Pose,
    Reconstruction,
    ReconstructOptions,
    RetryPolicy,
    RigInfo,
    SliderInfo,
    SliderValue,
    _batch_item,
    _fitted_rig,
    _model_info,
    _reconstruction,
    _rig_info,
)

_R = TypeVar("_R")
_DEFAULT_OPTIONS = ReconstructOptions()
_DEFAULT_RETRY = RetryPolicy()

__all__ = [
    "RetryPolicy",
    "ReconstructOptions",
    "FaceCraftRpcError",
    "PhotoInfo",
    "PhotoLandmarks",
    "Detection",
    "Coefficients",
    "Pose",
    "Face",
    "Reconstruction",
    "BatchItem",
    "ModelInfo",
    "SliderInfo",
    "RigInfo",
    "SliderValue",
    "FittedRig",
    "FaceCraftClient",
    "AsyncFaceCraftClient",
]


# --------------------------------------------------------------------------- sync client
class FaceCraftClient:
    """A blocking client of a FaceCraft server.

    Args:
        target: ``host:port`` of the server.
        token: bearer token, when the server requires one.
        tls: connect with TLS (the system's roots unless ``root_certificates``).
        root_certificates: PEM bytes or file of the CA that signed the server's certificate.
        client_cert, client_key: PEM bytes or files for mutual TLS.
        timeout_s: deadline of each call, seconds (per call overridable).
        retry: retries of UNAVAILABLE.
        max_message_mb: largest message sent or received, MiB (a textured answer can be a
            few MiB).
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None,
                 tls: bool = False, root_certificates: PemInput = None,
                 client_cert: PemInput = None,
                 client_key: PemInput = None, timeout_s: float = 60.0,
                 retry: RetryPolicy = _DEFAULT_RETRY, max_message_mb: float = 64.0) -> None:
        self._cfg = _config(target, token, tls, root_certificates, client_cert, client_key,
                            timeout_s, retry, max_message_mb)
        creds = self._cfg.credentials()
        opts = self._cfg.channel_options()
        self._channel = (grpc.secure_channel(target, creds, options=opts) if creds is not None
                         else grpc.insecure_channel(target, options=opts))
        self._stub = pb_grpc.FaceCraftStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"FaceCraftClient({self._cfg.target!r})"

    def _call(self, fn: Callable[..., _R], request: Message, timeout_s: float | None,
              request_id: str | None) -> _R:
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            remaining = deadline - time.monotonic()
            try:
                return fn(request, timeout=max(remaining, 0.001),
                          metadata=self._cfg.metadata(request_id))
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                time.sleep(wait)
        raise AssertionError("unreachable")

    def reconstruct(self, photo: PhotoInput, options: ReconstructOptions = _DEFAULT_OPTIONS,
                    *, source: str | None = None, timeout_s: float | None = None,
                    request_id: str | None = None) -> Reconstruction:
        """Reconstruct the face(s) of one photo (a path or the file's bytes).

        Raises:
            FaceCraftRpcError: ``FAILED_PRECONDITION`` (no face), ``INVALID_ARGUMENT`` (not a
                usable image, bad options), ``RESOURCE_EXHAUSTED`` (too large), ...
        """
        data, name = _photo_bytes(photo)
        req = pb.ReconstructRequest(photo=data, options=options.to_proto(),
                                    source=source if source is not None else name)
        return _reconstruction(self._call(self._stub.Reconstruct, req, timeout_s, request_id))

    def reconstruct_batch(self, photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                          options: ReconstructOptions = _DEFAULT_OPTIONS, *,
                          timeout_s: float | None = None, request_id: str | None = None
                          ) -> Iterator[BatchItem]:
        """Reconstruct many photos (paths, bytes, or ``(id, photo)`` pairs); yields one
        :class:`BatchItem` per photo, in order, as the server finishes them."""
        req = _batch_request(photos, options)
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            got_any = False
            try:
                stream = self._stub.ReconstructBatch(
                    req, timeout=max(deadline - time.monotonic(), 0.001),
                    metadata=self._cfg.metadata(request_id))
                try:
                    for m in stream:
                        got_any = True
                        yield _batch_item(m)
                finally:
                    stream.cancel()  # no-op when finished; frees the call if we stop early
                return
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if got_any or not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                time.sleep(wait)

    def model_info(self, include_topology: bool = False, *, timeout_s: float | None = None
                   ) -> ModelInfo:
        """The server's package, face model, layout, camera, providers and limits."""
        req = pb.GetModelInfoRequest(include_topology=include_topology)
        return _model_info(self._call(self._stub.GetModelInfo, req, timeout_s, None))

    def register_rig(self, glb: bytes | str | os.PathLike, sidecar: SidecarInput = None, *,
                     name: str | None = None, overwrite: bool = False,
                     timeout_s: float | None = None) -> RigInfo:
        """Register a character rig on the server (validated there, against its face model).

        Args:
            glb: the rig's ``.glb`` (a path or its bytes).
            sidecar: its sidecar: a path, the JSON text, bytes or a dict (default with a GLB
                path: ``NAME.rig.json`` next to it).
            name: the name to register it under (default: the sidecar's).
            overwrite: replace a rig of that name.

        Raises:
            FaceCraftRpcError: ``INVALID_ARGUMENT`` (an invalid rig, with what is wrong),
                ``ALREADY_EXISTS`` (the name is taken), ...
        """
        req = _register_request(glb, sidecar, name, overwrite)
        return _rig_info(self._call(self._stub.RegisterRig, req, timeout_s, None))

    def list_rigs(self, include_sliders: bool = False, *, timeout_s: float | None = None
                  ) -> tuple[RigInfo, ...]:
        """The rigs the server fits: ``"starter"`` first, then the registered ones."""
        req = pb.ListRigsRequest(include_sliders=include_sliders)
        return tuple(_rig_info(r) for r in
                     self._call(self._stub.ListRigs, req, timeout_s, None).rigs)

    def fit_rig(self, rig: str, photo: PhotoInput | None = None, *, face: Face | None = None,
                texture: bool = True, texture_size: int = 1024, include_glb: bool = False,
                source: str | None = None, timeout_s: float | None = None,
                request_id: str | None = None) -> FittedRig:
        """Fit a rig to a face: a photo's largest face, or a :class:`Face` of an earlier
        :meth:`reconstruct` (its neutral shape, expression and, when it was asked for with
        ``vertex_colors=True``, its colours for the texture and materials).

        Args:
            rig: ``"starter"`` or a registered rig's name.
            photo: a photo path or bytes; or
            face: a reconstructed face.
            texture: bake the texture into the rig's UV layout.
            texture_size: its side in texels (256..2048; default 1024, like ``facecraft
                create``); 0 = the server's default.
            include_glb: also return the fitted rig as GLB bytes.

        Raises:
            FaceCraftRpcError: ``NOT_FOUND`` (no such rig), ``FAILED_PRECONDITION`` (no face
                in the photo), ``INVALID_ARGUMENT``, ...
        """
        req = _fit_request(rig, photo, face, texture, texture_size, include_glb, source)
        return _fitted_rig(self._call(self._stub.FitRig, req, timeout_s, request_id))

    def health(self, service: str = "", *, timeout_s: float = 5.0) -> str:
        """The health service's answer: ``"SERVING"``, ``"NOT_SERVING"``, ..."""
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service),
                          timeout_s, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FaceCraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


