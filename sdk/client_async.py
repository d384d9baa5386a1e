"""The asyncio client of the FaceCraft gRPC service (``grpc.aio``); re-exported by
:mod:`facecraft.sdk.client`."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._proto import facecraft_pb2 as pb
from ._proto import facecraft_pb2_grpc as pb_grpc
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
    Face,
    FittedRig,
    ModelInfo,
    Reconstruction,
    ReconstructOptions,
    RetryPolicy,
    RigInfo,
    _batch_item,
    _fitted_rig,
    _model_info,
    _reconstruction,
    _rig_info,
)

_R = TypeVar("_R")
_DEFAULT_OPTIONS = ReconstructOptions()
_DEFAULT_RETRY = RetryPolicy()

__all__ = ["AsyncFaceCraftClient"]


class AsyncFaceCraftClient:
    """The asyncio twin of :class:`FaceCraftClient` (same arguments; ``grpc.aio``); use it as
    ``async with``. Create it inside the running event loop."""

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None,
                 tls: bool = False, root_certificates: PemInput = None,
                 client_cert: PemInput = None,
                 client_key: PemInput = None, timeout_s: float = 60.0,
                 retry: RetryPolicy = _DEFAULT_RETRY, max_message_mb: float = 64.0) -> None:
        self._cfg = _config(target, token, tls, root_certificates, client_cert, client_key,
                            timeout_s, retry, max_message_mb)
        creds = self._cfg.credentials()
        opts = self._cfg.channel_options()
        self._channel = (grpc.aio.secure_channel(target, creds, options=opts)
                         if creds is not None else grpc.aio.insecure_channel(target, options=opts))
        self._stub = pb_grpc.FaceCraftStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"AsyncFaceCraftClient({self._cfg.target!r})"

    async def _call(self, fn: Callable[..., Awaitable[_R]], request: Message,
                    timeout_s: float | None, request_id: str | None) -> _R:
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            try:
                return await fn(request, timeout=max(deadline - time.monotonic(), 0.001),
                                metadata=self._cfg.metadata(request_id))
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def reconstruct(self, photo: PhotoInput,
                          options: ReconstructOptions = _DEFAULT_OPTIONS, *,
                          source: str | None = None, timeout_s: float | None = None,
                          request_id: str | None = None) -> Reconstruction:
        """See :meth:`FaceCraftClient.reconstruct`."""
        data, name = _photo_bytes(photo)
        req = pb.ReconstructRequest(photo=data, options=options.to_proto(),
                                    source=source if source is not None else name)
        return _reconstruction(await self._call(self._stub.Reconstruct, req, timeout_s,
                                                request_id))

    async def reconstruct_batch(self, photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                                options: ReconstructOptions = _DEFAULT_OPTIONS, *,
                                timeout_s: float | None = None, request_id: str | None = None
                                ) -> AsyncIterator[BatchItem]:
        """See :meth:`FaceCraftClient.reconstruct_batch` (an async iterator)."""
        req = _batch_request(photos, options)
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            got_any = False
            try:
                call = self._stub.ReconstructBatch(
                    req, timeout=max(deadline - time.monotonic(), 0.001),
                    metadata=self._cfg.metadata(request_id))
                async for m in call:
                    got_any = True
                    yield _batch_item(m)
                return
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if got_any or not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                await asyncio.sleep(wait)

    async def model_info(self, include_topology: bool = False, *,
                         timeout_s: float | None = None) -> ModelInfo:
        """See :meth:`FaceCraftClient.model_info`."""
        req = pb.GetModelInfoRequest(include_topology=include_topology)
        return _model_info(await self._call(self._stub.GetModelInfo, req, timeout_s, None))

    async def register_rig(self, glb: bytes | str | os.PathLike, sidecar: SidecarInput = None, *,
                           name: str | None = None, overwrite: bool = False,
                           timeout_s: float | None = None) -> RigInfo:
        """See :meth:`FaceCraftClient.register_rig`."""
        req = _register_request(glb, sidecar, name, overwrite)
        return _rig_info(await self._call(self._stub.RegisterRig, req, timeout_s, None))

    async def list_rigs(self, include_sliders: bool = False, *,
                        timeout_s: float | None = None) -> tuple[RigInfo, ...]:
        """See :meth:`FaceCraftClient.list_rigs`."""
        req = pb.ListRigsRequest(include_sliders=include_sliders)
        resp = await self._call(self._stub.ListRigs, req, timeout_s, None)
        return tuple(_rig_info(r) for r in resp.rigs)

    async def fit_rig(self, rig: str, photo: PhotoInput | None = None, *,
                      face: Face | None = None, texture: bool = True, texture_size: int = 1024,
                      include_glb: bool = False, source: str | None = None,
                      timeout_s: float | None = None, request_id: str | None = None
                      ) -> FittedRig:
        """See :meth:`FaceCraftClient.fit_rig`."""
        req = _fit_request(rig, photo, face, texture, texture_size, include_glb, source)
        return _fitted_rig(await self._call(self._stub.FitRig, req, timeout_s, request_id))

    async def health(self, service: str = "", *, timeout_s: float = 5.0) -> str:
        """See :meth:`FaceCraftClient.health`."""
        resp = await self._call(self._health.Check,
                                health_pb2.HealthCheckRequest(service=service), timeout_s, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncFaceCraftClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

