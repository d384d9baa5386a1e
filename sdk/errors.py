"""Exceptions raised by FaceCraft's library code.

Every error a user can cause (a missing file, a wrong layout, a bad argument) is a
:class:`FaceCraftError`, so the CLI and the gRPC servicer can turn it into one clear message
and an exit code or status without catching unrelated bugs.
"""

from __future__ import annotations

__all__ = [
    "FaceCraftError",
    "InvalidInputError",
    "ModelFileError",
    "ModelFormatError",
    "NoFaceError",
    "PhotoTooLargeError",
    "ProviderUnavailableError",
]


class FaceCraftError(Exception):
    """Base class of every error FaceCraft raises on purpose."""


class InvalidInputError(FaceCraftError, ValueError):
    """An argument has the wrong shape, type or value; the message says what was expected."""


class ModelFormatError(FaceCraftError):
    """A third-party face-model file or folder is missing, or is not in the expected layout."""


class ModelFileError(FaceCraftError):
    """A compiled FaceCraft model file (``.fcm``) is unreadable, of another schema, or corrupt."""


class PhotoTooLargeError(InvalidInputError):
    """A photo has more pixels (or bytes) than the configured limit; the message says both.

    Raised by the decoder from the image header, before pixels are decoded; the service maps it
    to ``RESOURCE_EXHAUSTED``, the CLI to a one-line error."""


class NoFaceError(InvalidInputError):
    """The photo holds no face the detector can find (the service maps it to
    ``FAILED_PRECONDITION``, the CLI to a one-line error)."""


class ProviderUnavailableError(FaceCraftError):
    """An ONNX Runtime execution provider asked for by name (CUDA, TensorRT) is not in the
    installed build; nothing falls back to the CPU unasked (the CLI exits with 69)."""
