"""gRPC plumbing of :mod:`facecraft.sdk.serving.server`: the service's registration with lenient
request parsing, and the bearer-token interceptor."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk.serving.metrics import ServerMetrics

__all__ = ["SERVICE_NAME", "HEALTH_PREFIX", "Malformed", "lenient", "add_service", "TokenAuth"]

#: The service's full name.
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FaceCraft"].full_name
#: Method-path prefix of the health service (open without a token).
HEALTH_PREFIX = "/grpc.health.v1.Health/"


@dataclass(frozen=True)
class Malformed:
    """What a request that is not a valid protobuf message deserializes to."""

    message_type: str
    error: str


def lenient(cls: type) -> Callable[[bytes], Any]:
    """``cls.FromString`` returning :class:`Malformed` instead of raising (gRPC would answer
    INTERNAL for a deserializer's exception; bad bytes from a client are INVALID_ARGUMENT)."""

    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            return Malformed(cls.DESCRIPTOR.full_name, str(e) or type(e).__name__)

    return parse


def add_service(servicer: Any, server: grpc.Server) -> None:
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



class TokenAuth(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED); health
    checks pass."""

    def __init__(self, token: str, metrics: ServerMetrics) -> None:
        self._expected = f"Bearer {token}".encode()
        self._metrics = metrics

        def deny(request: Any, context: grpc.ServicerContext) -> None:
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

    def _authorised(self, metadata: Sequence[tuple[str, Any]]) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(HEALTH_PREFIX) or \
                self._authorised(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = ("stream" if handler.request_streaming else "unary") + "_" + \
               ("stream" if handler.response_streaming else "unary")
        return self._deny[kind]
