"""One RPC's life on the server: admission, request id, deadline and shutdown checks, the
mapping of errors to a status, one log line and the metrics.

:func:`observed` wraps each method of :class:`~facecraft.sdk.serving.server.FaceCraftService`.
Admission is the server's own (:class:`Admission`), not gRPC's ``maximum_concurrent_rpcs``:
that one counts every RPC, so health checks and reflection were refused under load; here only
``facecraft.v1.FaceCraft`` calls count, and a call over the limit is refused at once with
RESOURCE_EXHAUSTED (it never waits), so health always finds a free thread.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from ..errors import InvalidInputError
from .metrics import ServerMetrics
from .plumbing import Malformed
from .status import (
    DeadlineError,
    ServerBusyError,
    ShutdownCancelledError,
    status_for,
)

__all__ = ["Admission", "Call", "observed", "check_time"]

_LOG = logging.getLogger("facecraft.server")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Admission:
    """At most ``limit`` FaceCraft calls in the server at once (running or waiting for a
    worker); one more is refused at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)

    def enter(self) -> None:
        """Take a place, or raise :class:`ServerBusyError` (RESOURCE_EXHAUSTED) at once."""
        if not self._sem.acquire(blocking=False):
            raise ServerBusyError(f"the server holds its limit of {self.limit} calls (workers "
                                  "+ max_queue); retry later")

    def leave(self) -> None:
        self._sem.release()


@dataclass
class Call:
    """One call's state: its request id, faces returned, and its checks."""

    request_id: str
    context: grpc.ServicerContext
    stopping: threading.Event
    faces: int = 0

    def check(self, before: str) -> None:
        """Raise if the call cannot go on before the stage ``before``.

        Raises:
            ShutdownCancelledError: the server's shutdown grace period ended.
            DeadlineError: the deadline passed or the client cancelled.
        """
        check_time(self.context, before, self.stopping)


def check_time(context: grpc.ServicerContext, before: str,
               stopping: threading.Event | None = None) -> None:
    """Raise :class:`DeadlineError` (or :class:`ShutdownCancelledError` when the server is
    stopping) if the call ended or its deadline passed before the stage ``before``."""
    if not context.is_active():
        if stopping is not None and stopping.is_set():
            raise ShutdownCancelledError(f"the server shut down (its grace period ended) "
                                         f"before {before}; retry on another server")
        raise DeadlineError(f"the call ended (cancelled or past its deadline) before {before}")
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineError(f"the deadline passed before {before}; allow more time")


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex[:16]


class Observed(Protocol):
    """What :func:`observed` needs of the servicer."""

    metrics: ServerMetrics
    admission: Admission
    stopping: threading.Event


_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_S = TypeVar("_S", bound=Observed)


def _log_end(method: str, code: str, seconds: float, call: Call, peer: str,
             reason: str = "") -> None:
    _LOG.info("rpc %s code=%s%s ms=%.1f faces=%d request_id=%s peer=%s", method, code,
              f" reason={reason}" if reason else "", seconds * 1e3, call.faces,
              call.request_id, peer,
              extra={"request_id": call.request_id, "method": method, "code": code,
                     "latency_ms": round(seconds * 1e3, 2), "faces": call.faces, "peer": peer,
                     **({"reason": reason} if reason else {})})


def _finish(svc: Observed, method: str, call: Call, t0: float,
            exc: BaseException | None) -> None:
    """Record the call; abort with its status when it failed."""
    code, message = grpc.StatusCode.OK, ""
    if exc is not None:
        code, message = status_for(exc, call.request_id)
        if code is grpc.StatusCode.INTERNAL:
            _LOG.error("rpc %s request_id=%s failed", method, call.request_id, exc_info=exc,
                       extra={"request_id": call.request_id, "method": method})
    shutdown = isinstance(exc, ShutdownCancelledError)
    seconds = time.perf_counter() - t0
    svc.metrics.finished(method, code.name, seconds, shutdown=shutdown)
    svc.metrics.add("faces", call.faces)
    _log_end(method, code.name, seconds, call, call.context.peer(),
             "shutdown" if shutdown else "")
    if exc is not None:
        call.context.abort(code, message)


def _cancelled(svc: Observed, method: str, call: Call, t0: float) -> None:
    """A stream the client (or the deadline, or the shutdown) cut."""
    shutdown = svc.stopping.is_set()
    seconds = time.perf_counter() - t0
    svc.metrics.finished(method, grpc.StatusCode.CANCELLED.name, seconds, shutdown=shutdown)
    _log_end(method, "CANCELLED", seconds, call, call.context.peer(),
             "shutdown" if shutdown else "")


def _check_request(request: Message | Malformed) -> None:
    if isinstance(request, Malformed):
        raise InvalidInputError(f"the request is not a valid {request.message_type} "
                                f"message ({request.error})")


def _start(svc: Observed, method: str, context: grpc.ServicerContext) -> tuple[Call, float]:
    call = Call(_request_id(context), context, svc.stopping)
    context.set_trailing_metadata((("x-request-id", call.request_id),))
    svc.metrics.started(method)
    return call, time.perf_counter()


def observed(method: str) -> Callable[[Callable[[_S, _Req, grpc.ServicerContext, Call], _Resp]],
                                      Callable[[_S, _Req, grpc.ServicerContext], _Resp]]:
    """Wrap a unary RPC: admission, request id, error mapping, one log line, metrics."""

    def decorate(fn: Callable[[_S, _Req, grpc.ServicerContext, Call], _Resp]
                 ) -> Callable[[_S, _Req, grpc.ServicerContext], _Resp]:
        @functools.wraps(fn)
        def unary(self: _S, request: _Req, context: grpc.ServicerContext) -> _Resp:
            call, t0 = _start(self, method, context)
            try:
                self.admission.enter()
            except ServerBusyError as e:
                _finish(self, method, call, t0, e)
            try:
                _check_request(request)
                out = fn(self, request, context, call)
            except Exception as e:  # noqa: BLE001 - mapped to a status in _finish()
                self.admission.leave()
                _finish(self, method, call, t0, e)
                raise AssertionError("unreachable: abort raises") from None
            self.admission.leave()
            _finish(self, method, call, t0, None)
            return out

        return unary

    return decorate


def observed_stream(method: str) -> Callable[
        [Callable[[_S, _Req, grpc.ServicerContext, Call], Iterator[_Resp]]],
        Callable[[_S, _Req, grpc.ServicerContext], Iterator[_Resp]]]:
    """:func:`observed` for a server-streaming RPC (a cut stream is counted CANCELLED)."""

    def decorate(fn: Callable[[_S, _Req, grpc.ServicerContext, Call], Iterator[_Resp]]
                 ) -> Callable[[_S, _Req, grpc.ServicerContext], Iterator[_Resp]]:
        @functools.wraps(fn)
        def stream(self: _S, request: _Req, context: grpc.ServicerContext) -> Iterator[_Resp]:
            call, t0 = _start(self, method, context)
            try:
                self.admission.enter()
            except ServerBusyError as e:
                _finish(self, method, call, t0, e)
            try:
                _check_request(request)
                yield from fn(self, request, context, call)
            except GeneratorExit:  # the client cancelled, the deadline passed, or shutdown
                _cancelled(self, method, call, t0)
                raise
            except Exception as e:  # noqa: BLE001 - mapped to a status in _finish()
                _finish(self, method, call, t0, e)
                return
            finally:
                self.admission.leave()
            _finish(self, method, call, t0, None)

        return stream

    return decorate
