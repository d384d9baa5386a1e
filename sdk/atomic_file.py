"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A reader never sees a half-written file, and an interrupted write leaves the old file (or none).
Files get the mode ``open()`` would give them (0o666 minus the umask), not ``mkstemp``'s private
0o600, since outputs, models and packages are shared.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "ordinary_file_mode"]


def ordinary_file_mode() -> int:
    """0o666 minus the process umask: the mode ``open()`` would have given a new file.

    The umask is read from ``/proc/self/status`` (Linux) rather than set and restored, which
    would race with other threads; elsewhere the common 0o022 is assumed."""
    mask = 0o022
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    mask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        pass
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *,
                 make_parents: bool = False) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically.

    Args:
        path: the file to (re)place.
        data: the whole content.
        make_parents: create missing parent folders first.

    Raises:
        OSError: the folder is missing or not writable (the temporary file is removed).
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, ordinary_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
