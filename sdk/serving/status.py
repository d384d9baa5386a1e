"""The server's own errors and the one table that maps every error to a gRPC status.

Errors map to status codes by type only (:data:`STATUS_CODES`, first ``isinstance`` match
wins; no message is ever parsed):

==============================  =====================  =======================================
exception                       status                 when
==============================  =====================  =======================================
NoFaceError                     FAILED_PRECONDITION    a readable photo without a face
UnknownRigError                 NOT_FOUND              FitRig names a rig the server lacks
RigExistsError                  ALREADY_EXISTS         RegisterRig of a taken name
RegistrationDeniedError         PERMISSION_DENIED      registration off, or without its token
PhotoTooLargeError              RESOURCE_EXHAUSTED     more pixels / bytes than the limit
LimitExceededError              RESOURCE_EXHAUSTED     response, batch, busy pool, rig quotas
ShutdownCancelledError          CANCELLED              cut at the end of the shutdown grace
DeadlineError                   DEADLINE_EXCEEDED      the call's deadline passed
InvalidInputError               INVALID_ARGUMENT       not an image, bad option, bad rig, a
  (ImageDecodeError included)                          request that is not valid protobuf
DetectorUnavailableError,       INTERNAL               the server's models are broken
ModelFileError, ModelFormatError
FaceCraftError                  INTERNAL
anything else                   INTERNAL               logged with its traceback; the message
                                                       names only the request id
==============================  =====================  =======================================
"""

from __future__ import annotations

import grpc

from ..errors import (
    FaceCraftError,
    InvalidInputError,
    ModelFileError,
    ModelFormatError,
    NoFaceError,
    PhotoTooLargeError,
)
from ..photo.detect import DetectorUnavailableError

__all__ = [
    "LimitExceededError",
    "ResponseTooLargeError",
    "BatchTooLargeError",
    "ServerBusyError",
    "RigQuotaError",
    "DeadlineError",
    "ShutdownCancelledError",
    "UnknownRigError",
    "RigExistsError",
    "RegistrationDeniedError",
    "STATUS_CODES",
    "MAX_STATUS_MESSAGE",
    "status_for",
    "code_name",
]

#: Longest status message sent (characters); gRPC's metadata limit is 8 KiB by default.
MAX_STATUS_MESSAGE = 1000


class LimitExceededError(FaceCraftError):
    """A request is above one of the server's limits (RESOURCE_EXHAUSTED)."""


class ResponseTooLargeError(LimitExceededError):
    """The answer would be larger than the server's message limit."""


class BatchTooLargeError(LimitExceededError):
    """More photos in one ReconstructBatch than the server's ``max_batch``."""


class ServerBusyError(LimitExceededError):
    """No worker became free in time."""


class RigQuotaError(LimitExceededError):
    """A registration would exceed the rig quotas (count or bytes)."""


class DeadlineError(FaceCraftError):
    """The call's deadline passed (or the client went away) before the work was done."""


class ShutdownCancelledError(FaceCraftError):
    """The server's shutdown grace period ended while the call was running (CANCELLED)."""


class UnknownRigError(FaceCraftError):
    """No rig of that name (NOT_FOUND)."""


class RigExistsError(FaceCraftError):
    """A rig of that name is registered already and overwriting was not asked for
    (ALREADY_EXISTS)."""


class RegistrationDeniedError(FaceCraftError):
    """Rig registration is off on this server, or the call lacks the registration token
    (PERMISSION_DENIED)."""


#: Exception class -> status code; the first ``isinstance`` match wins (most specific first).
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NoFaceError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnknownRigError, grpc.StatusCode.NOT_FOUND),
    (RigExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (RegistrationDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (PhotoTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),  # response, batch, busy, quota
    (ShutdownCancelledError, grpc.StatusCode.CANCELLED),
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),  # ImageDecodeError included
    (DetectorUnavailableError, grpc.StatusCode.INTERNAL),
    (ModelFileError, grpc.StatusCode.INTERNAL),
    (ModelFormatError, grpc.StatusCode.INTERNAL),
    (FaceCraftError, grpc.StatusCode.INTERNAL),
)


def status_for(exc: BaseException, request_id: str = "") -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for ``exc`` (see :data:`STATUS_CODES`).

    The message is cut to :data:`MAX_STATUS_MESSAGE` characters. Unexpected exceptions (not
    :class:`~facecraft.sdk.errors.FaceCraftError`) give INTERNAL with a message naming only the
    request id: their text may hold server internals.
    """
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            text = str(exc)
            if len(text) > MAX_STATUS_MESSAGE:
                text = text[:MAX_STATUS_MESSAGE - 20] + f"... ({len(text)} chars)"
            return code, text
    return grpc.StatusCode.INTERNAL, (f"internal server error (request id {request_id}); "
                                      "the server log has the details")


def code_name(number: int) -> str:
    """The status name of a numeric gRPC code (``str(number)`` for an unknown one)."""
    for c in grpc.StatusCode:
        if c.value[0] == number:
            return c.name
    return str(number)
