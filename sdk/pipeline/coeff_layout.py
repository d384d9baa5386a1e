"""The layout of the regressor's coefficient vector, shared by training and the runtime.

Deng et al.'s order::

    identity (Ki) | expression (Ke) | albedo (Ka) | angles (3) | lighting (27) | translation (3)

Angles are radians, translation metres, lighting the 27 SH coefficients of
:mod:`facecraft.sdk.render.lighting`. The training package's regressor produces vectors in this
layout;
model packages record it and the runtime splits ONNX outputs with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..models.morphable_model import MorphableModel
from ..render.lighting import SH_NUM_COEFFS

__all__ = ["CoeffLayout", "NUM_ANGLES", "NUM_TRANSLATION"]

#: Fixed block sizes: (pitch, yaw, roll) and (x, y, z).
NUM_ANGLES = 3
NUM_TRANSLATION = 3


def _int_field(name: str, v: object, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidInputError(f"expected {name} an int >= {minimum}, got {v!r}")
    return v


@dataclass(frozen=True)
class CoeffLayout:
    """How the regressor's coefficient vector is split (Deng et al.'s order).

    Attributes:
        num_identity: identity coefficients Ki (80 for Deng et al.'s BFM).
        num_expression: expression coefficients Ke (64).
        num_albedo: albedo coefficients Ka (80); 0 for a shape-only model.

    The pose (3 Euler angles, radians), lighting (27 SH coefficients) and translation (3, metres)
    blocks have fixed sizes: :attr:`num_angles`, :attr:`num_lighting`, :attr:`num_translation`.
    """

    num_identity: int
    num_expression: int
    num_albedo: int

    num_angles = NUM_ANGLES
    num_lighting = SH_NUM_COEFFS
    num_translation = NUM_TRANSLATION

    def __post_init__(self) -> None:
        for f in ("num_identity", "num_expression", "num_albedo"):
            _int_field(f, getattr(self, f))

    @property
    def sizes(self) -> dict[str, int]:
        """Block sizes in vector order: identity, expression, albedo, angles, lighting, translation.
        """
        return {"identity": self.num_identity, "expression": self.num_expression,
                "albedo": self.num_albedo, "angles": self.num_angles,
                "lighting": self.num_lighting, "translation": self.num_translation}

    @property
    def size(self) -> int:
        """Length of the whole coefficient vector."""
        return sum(self.sizes.values())

    def slices(self) -> dict[str, slice]:
        """Each block's slice of the vector, in order; together they cover ``[0, size)`` exactly.
        """
        out, start = {}, 0
        for name, n in self.sizes.items():
            out[name] = slice(start, start + n)
            start += n
        return out

    @classmethod
    def from_model(cls, model: MorphableModel, *, max_identity: int | None = None,
                   max_expression: int | None = None,
                   max_albedo: int | None = None) -> CoeffLayout:
        """The layout for ``model``, optionally keeping only its leading modes.

        Args:
            model: the face model the coefficients decode with.
            max_identity: keep at most this many identity modes (``None``: all).
            max_expression: keep at most this many expression modes (``None``: all).
            max_albedo: keep at most this many albedo modes (``None``: all; 0 without albedo).
        """
        def cap(n: int, m: int | None, name: str) -> int:
            return n if m is None else min(n, _int_field(name, m))

        return cls(num_identity=cap(model.num_identity, max_identity, "max_identity"),
                   num_expression=cap(model.num_expression, max_expression, "max_expression"),
                   num_albedo=cap(model.num_albedo, max_albedo, "max_albedo"))

    def to_dict(self) -> dict[str, int]:
        """A JSON-able dict (the three free sizes); :meth:`from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CoeffLayout:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise :class:`InvalidInputError`."""
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"expected a dict for {cls.__name__}, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InvalidInputError(f"unknown {cls.__name__} keys {unknown}; expected "
                                    f"{sorted(names)}")
        return cls(**dict(d))

    def split(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """(B, size) coefficient vectors -> block name -> (B, n) views, in order."""
        v = np.asarray(vectors)
        if v.ndim != 2 or v.shape[1] != self.size:
            raise InvalidInputError(f"expected coefficient vectors (B, {self.size}), got "
                                    f"{v.shape}")
        return {name: v[:, s] for name, s in self.slices().items()}
