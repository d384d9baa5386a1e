"""Versioned safetensors files: the one place FaceCraft writes and opens them.

Every FaceCraft artifact stored as safetensors (compiled face models, network checkpoints)
carries ``format`` and ``schema_version`` strings in its header metadata. :func:`write_tensor_file`
writes atomically (a temporary file in the same folder, then a rename, so a failed write never
leaves a half-written file or touches the old one) and :func:`open_tensor_file` refuses files of
another format or a newer schema with a clear :class:`~facecraft.sdk.errors.ModelFileError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..atomic_file import ordinary_file_mode
from ..errors import ModelFileError

__all__ = ["write_tensor_file", "open_tensor_file"]


def write_tensor_file(tensors: dict[str, Any], path: str | Path, header: dict[str, str], *,
                      framework: str = "numpy") -> None:
    """Write a safetensors file atomically.

    Args:
        tensors: name -> NumPy array (``framework="numpy"``) or torch tensor (``"pt"``).
        path: destination; parent folders are created.
        header: string metadata, including ``format`` and ``schema_version``.
        framework: ``"numpy"`` or ``"pt"``.

    Raises:
        ModelFileError: the file cannot be written (the message names the OS error).
    """
    if framework == "pt":
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ModelFileError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, ordinary_file_mode())  # mkstemp makes it private; model files are shared
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ModelFileError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_tensor_file(path: str | Path, *, fmt: str, schema_version: int, what: str,
                     framework: str = "numpy") -> tuple[dict[str, str], Any]:
    """Open a safetensors file and check its format and schema version.

    Args:
        path: the file.
        fmt: the expected ``format`` header value.
        schema_version: the newest schema this code reads.
        what: how to call the file in messages, e.g. ``"FaceCraft model file"``.
        framework: ``"numpy"`` or ``"pt"`` (the type ``get_tensor`` returns).

    Returns:
        ``(header, handle)``: the string metadata and a ``safe_open`` handle.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such {what}")
    try:
        handle = safe_open(str(path), framework=framework)
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ModelFileError(f"{path}: not a {what} (not a safetensors file: {e})") from None
    header = handle.metadata() or {}
    if header.get("format") != fmt:
        raise ModelFileError(f"{path}: not a {what} (format {header.get('format')!r}, "
                             f"expected {fmt!r})")
    try:
        version = int(header.get("schema_version", ""))
    except ValueError:
        raise ModelFileError(f"{path}: unreadable schema_version") from None
    if version > schema_version:
        raise ModelFileError(f"{path}: schema version {version} is newer than this FaceCraft "
                             f"reads ({schema_version}); upgrade facecraft")
    if version < 1:
        raise ModelFileError(f"{path}: invalid schema version {version}")
    return header, handle
