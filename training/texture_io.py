"""Reading and writing the fine-texture nets: one ``.safetensors`` file per trained net.

The header holds the format name and version, the :class:`TextureNetConfig` and the run's meta
(face model, feature size, regressor identity, step), so :func:`load_texture_nets` rebuilds the
net without the training code. :mod:`facecraft.export` reads texture checkpoints through here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facecraft.sdk.errors import ModelFileError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.models.morphable_model import MorphableModel

from .texture_nets import FineTextureNet, TextureNetConfig

__all__ = ["save_texture_nets", "load_texture_nets", "file_sha256", "TEXTURE_FORMAT",
           "TEXTURE_FORMAT_VERSION"]

#: The ``format`` entry of a texture checkpoint's header.
TEXTURE_FORMAT = "facecraft.texture_nets"
#: The header layout version this code writes and reads.
TEXTURE_FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_texture_nets(net: FineTextureNet, path: str | Path, *,
                      meta: Mapping[str, Any]) -> None:
    """Write the nets' weights and everything needed to rebuild them (safetensors).

    ``meta`` must hold ``face_model`` (name) and ``feature_dim``; it is stored in the header
    beside the :class:`TextureNetConfig`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": TEXTURE_FORMAT, "format_version": str(TEXTURE_FORMAT_VERSION),
              "net_config": json.dumps(dataclasses.asdict(net.config)),
              "meta": json.dumps(dict(meta))}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=header)
    os.replace(tmp, path)


def load_texture_nets(path: str | Path, model: MorphableModel | None = None
                      ) -> tuple[FineTextureNet, dict[str, Any]]:
    """Rebuild the nets saved by :func:`save_texture_nets`.

    Args:
        path: the ``.safetensors`` file.
        model: the face model (default: resolved from the header's ``face_model``).

    Returns:
        ``(net, meta)`` with the net in eval mode on the CPU.

    Raises:
        ModelFileError: a missing or foreign file, or weights that do not fit.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"texture checkpoint {path} does not exist")
    try:
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises several types for foreign files
        raise ModelFileError(f"{path} is not a texture checkpoint: {e}") from None
    if header.get("format") != TEXTURE_FORMAT:
        raise ModelFileError(f"{path} is not a FaceCraft texture checkpoint "
                             f"(format {header.get('format')!r})")
    if int(header.get("format_version", -1)) != TEXTURE_FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {header.get('format_version')}; this "
                             f"code reads {TEXTURE_FORMAT_VERSION}")
    meta = json.loads(header["meta"])
    cfg = TextureNetConfig(**json.loads(header["net_config"]))
    if model is None:
        model = resolve_model(meta["face_model"])
    net = FineTextureNet(model.graph, cfg, feature_dim=int(meta["feature_dim"]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"{path} does not fit face model {model.name!r}: "
                             f"{str(e).splitlines()[0]}") from None
    net.eval()
    return net, meta
