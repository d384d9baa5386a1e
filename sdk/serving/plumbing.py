"""gRPC plumbing of :mod:`facecraft.sdk.serving.server`: the services' registration with lenient
request parsing (FaceCraft and health), the bearer-token interceptor, and :func:`shown`, the one
way user input is echoed in a message."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2

from .._proto import facecraft_pb2 as pb
from .metrics import ServerMetrics

__all__ = ["SERVICE_NAME", "HEALTH_PREFIX", "Malformed", "lenient", "add_service", "add_health",
           "TokenAuth", "bearer_matches", "shown"]

#: Characters of user input a message echoes at most (:func:`shown`).
SHOWN_CHARS = 64


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was: the one way
    user input (a rig name, a source) is echoed into a status message, which must stay far
    below gRPC's 8 KiB metadata limit."""
    text = repr(value)
    if len(text) <= limit:
        return text
    n = len(value) if isinstance(value, (str, bytes)) else len(text)
    return f"{text[:limit]}... ({n} characters)"

#: The service's full name.
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FaceCraft"].full_name
#: Method-path prefix of the health service (open without a token).
HEALTH_PREFIX = "/grpc.health.v1.Health/"


@dataclass(frozen=True)
class Malformed:
    """What a request that is not a valid protobuf message deserializes to."""

    message_type: str
    error: str


def lenient(cls: type[Message]) -> Callable[[bytes], Message | Malformed]:
    """``cls.FromString`` returning :class:`Malformed` instead of raising (gRPC would answer
    INTERNAL for a deserializer's exception; bad bytes from a client are INVALID_ARGUMENT)."""

    def parse(data: bytes) -> Message | Malformed:
        try:
            return cls.FromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            return Malformed(cls.DESCRIPTOR.full_name, str(e) or type(e).__name__)

    return parse


def add_service(servicer: object, server: grpc.Server) -> None:
    """Register the servicer like the generated ``add_FaceCraftServicer_to_server``, from the
    service descriptor, with lenient deserializers (methods the servicer lacks answer
    UNIMPLEMENTED through the generated base class)."""
    handlers = {}
    for m in pb.DESCRIPTOR.services_by_name["FaceCraft"].methods:
        make = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler}[
            (m.client_streaming, m.server_streaming)]
        handlers[m.name] = make(getattr(servicer, m.name),
                                request_deserializer=lenient(getattr(pb, m.input_type.name)),
                                response_serializer=getattr(pb, m.output_type.name)
                                .SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _refuse(request: Message | Malformed, context: grpc.ServicerContext) -> None:
    if isinstance(request, Malformed):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"the request is not a valid {request.message_type} message "
                      f"({request.error})")


def add_health(servicer: health.HealthServicer, server: grpc.Server) -> None:
    """Register the standard health service like ``add_HealthServicer_to_server``, with
    lenient deserializers: malformed bytes get INVALID_ARGUMENT, not INTERNAL."""
    name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    parse = lenient(health_pb2.HealthCheckRequest)
    out = health_pb2.HealthCheckResponse.SerializeToString

    def check(request: health_pb2.HealthCheckRequest | Malformed,
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        _refuse(request, context)
        return servicer.Check(request, context)

    def watch(request: health_pb2.HealthCheckRequest | Malformed,
              context: grpc.ServicerContext) -> Iterator[health_pb2.HealthCheckResponse]:
        _refuse(request, context)
        yield from servicer.Watch(request, context)

    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=parse,
                                                     response_serializer=out),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, request_deserializer=parse,
                                                      response_serializer=out),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)


def bearer_matches(metadata: Sequence[tuple[str, str | bytes]] | None, token: str) -> bool:
    """True when the metadata carries ``authorization: Bearer <token>`` (constant time)."""
    expected = f"Bearer {token}".encode()
    for key, value in metadata or ():
        if key == "authorization":
            got = value.encode() if isinstance(value, str) else bytes(value)
            return hmac.compare_digest(got, expected)
    return False


class TokenAuth(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` for one of ``tokens``
    (UNAUTHENTICATED); health checks pass."""

    def __init__(self, tokens: Iterable[str], metrics: ServerMetrics) -> None:
        self._tokens = tuple(tokens)
        self._metrics = metrics

        def deny(request: object, context: grpc.ServicerContext) -> None:
            self._metrics.add("unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong bearer token: send the metadata "
                          "'authorization: Bearer <token>'")

        self._deny = {
            "unary_unary": grpc.unary_unary_rpc_method_handler(deny),
            "unary_stream": grpc.unary_stream_rpc_method_handler(deny),
            "stream_unary": grpc.stream_unary_rpc_method_handler(deny),
            "stream_stream": grpc.stream_stream_rpc_method_handler(deny),
        }

    def _authorised(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        return any(bearer_matches(metadata, t) for t in self._tokens)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                       grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method.startswith(HEALTH_PREFIX) or \
                self._authorised(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = ("stream" if handler.request_streaming else "unary") + "_" + \
               ("stream" if handler.response_streaming else "unary")
        return self._deny[kind]
