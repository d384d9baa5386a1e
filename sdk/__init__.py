"""facecraft.sdk: FaceCraft's runtime SDK, one wing (subpackage) per concern.

``photo`` (decode, detect, align, landmarks, masks), ``models`` (morphable models, model
files, importers), ``render`` (cameras, lighting, rasterizer, baking, mesh I/O),
``pipeline`` (packages, runtime, ``facecraft create``), ``rigs`` and ``serving``; the
light gRPC client is :mod:`facecraft.sdk.client`. The public names of every wing are
re-exported here; import them from ``facecraft.sdk``.

They are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import models, photo, pipeline, render, rigs, serving  # light: their exports are lazy too
from ._lazy import attach

#: The wings whose public names this package re-exports.
_WINGS = (photo, models, render, pipeline, rigs, serving)
_EXPORTS = {
    **{name: "errors" for name in ("FaceCraftError", "InvalidInputError", "ModelFileError",
                                   "ModelFormatError", "NoFaceError", "PhotoTooLargeError")},
    **{name: f"{wing.__name__.rsplit('.', 1)[1]}.{module}"
       for wing in _WINGS for name, module in wing._EXPORTS.items()},
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .errors import (  # noqa: F401
        FaceCraftError,
        InvalidInputError,
        ModelFileError,
        ModelFormatError,
        NoFaceError,
        PhotoTooLargeError,
    )
    from .models import *  # noqa: F403
    from .photo import *  # noqa: F403
    from .pipeline import *  # noqa: F403
    from .render import *  # noqa: F403
    from .rigs import *  # noqa: F403
    from .serving import *  # noqa: F403
