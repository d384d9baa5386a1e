"""PNG images of a training run: tensors to uint8 pixels, and writing them.

Snapshots, loss curves and contact sheets of both training loops and the texture evaluation go
through these two functions, so every PNG a run writes has one pixel convention (RGB in memory,
rounded from [0, 1] floats).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from facecraft.sdk.errors import InvalidInputError

__all__ = ["to_u8", "write_png"]


def to_u8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1] -> (H, W, 3) uint8 RGB (clamped, rounded)."""
    return (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image to ``path`` (parent folders created).

    Raises:
        InvalidInputError: OpenCV could not write the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise InvalidInputError(f"cannot write {path}")
