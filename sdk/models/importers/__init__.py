"""Importers that turn third-party face models into a :class:`~facecraft.sdk.MorphableModel`.

Each importer reads a published layout (documented in its module), converts to FaceCraft's
conventions (metres, unit-variance coefficients, counter-clockwise int32 triangles, 68 iBUG
landmarks) and returns the model; none of them writes anything. :func:`import_model` picks one by
*kind* and passes it the options, which is what ``facecraft models import KIND PATH key=value``
does (``--landmarks``, ``--albedo``, ``--expressions``, ``--face-only``, and
``-O KEY=VALUE`` for any other):

===============  ======================================================  ===========================
kind             reads                                                   options
===============  ======================================================  ===========================
``bfm2009``      Basel Face Model 2009 ``01_MorphableModel.mat``         landmarks (required),
                 (+ Guo et al.'s ``Exp_Pca.bin`` expressions)            contours, expressions,
                                                                         expressions_std,
                                                                         expressions_index, units
``bfm-front``    Deep3DFaceRecon's ``BFM_model_front.mat``               landmarks, contours, units
``bfm2017``      Basel Face Model 2017 / 2019 statismo ``.h5``           landmarks (required),
                                                                         contours, units
``flame``        FLAME ``generic_model.pkl`` / ``flame2023.pkl``         landmarks (required),
                                                                         albedo
``surrey``       Surrey Face Model / eos cereal ``.bin``                 expressions, landmarks,
                                                                         contours
``ict-facekit``  ICT-FaceKit ``FaceXModel`` folder                       face_only
===============  ======================================================  ===========================

Every kind except ``ict-facekit`` also takes ``max_identity``, ``max_expression`` and
``max_albedo`` (keep at most that many modes); every kind takes ``progress`` (the CLI passes
it; only ICT-FaceKit, which reads ~160 OBJ files, shows a bar). Option values may be strings, as
a command line gives them: numbers and booleans are converted. Importers are loaded on first
use, so the registry works while a module (or its optional dependency) is missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ModelFormatError
from ..morphable_model import MorphableModel

__all__ = [
    "ImporterInfo",
    "IMPORTERS",
    "import_model",
    "list_importers",
    "import_bfm2009",
    "import_bfm_front",
    "import_bfm2017",
    "import_flame",
    "import_surrey",
]

# Importer functions, re-exported lazily (PEP 562) so importing the registry stays cheap.
_LAZY = {"import_bfm2009": ".bfm", "import_bfm_front": ".bfm", "import_bfm2017": ".bfm",
         "import_flame": ".flame", "import_surrey": ".surrey"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_MAX = {"max_identity": "int", "max_expression": "int", "max_albedo": "int",
        "progress": "bool"}


@dataclass(frozen=True)
class ImporterInfo:
    """One registered importer.

    Attributes:
        target: ``"module:function"``, the module relative to this package (imported on use).
        description: one line: what it reads.
        licence: one line on the source's licence (the model carries the full text).
        options: option name -> type, one of ``"path"``, ``"int"``, ``"bool"``, ``"str"``,
            ``"path_or_bool"``.
    """

    target: str
    description: str
    licence: str
    options: dict[str, str]

    def load(self) -> Any:
        """The importer function (imports its module)."""
        module, _, func = self.target.partition(":")
        try:
            mod = importlib.import_module(module, __name__)
        except ModuleNotFoundError as e:
            raise ModelFormatError(
                f"importer {self.target} is not available ({e}); is FaceCraft fully installed?"
            ) from None
        try:
            return getattr(mod, func)
        except AttributeError:
            raise ModelFormatError(f"importer {self.target} does not exist") from None


IMPORTERS: dict[str, ImporterInfo] = {
    "bfm2009": ImporterInfo(
        ".bfm:import_bfm2009",
        "Basel Face Model 2009 01_MorphableModel.mat (micrometres), optional Exp_Pca.bin",
        "BFM 2009: licensed by registration (University of Basel), research use, no redistribution",
        {"landmarks": "path", "contours": "path", "expressions": "path",
         "expressions_std": "path", "expressions_index": "path", "units": "str", **_MAX}),
    "bfm-front": ImporterInfo(
        ".bfm:import_bfm_front",
        "Deep3DFaceRecon's cropped BFM, BFM_model_front.mat (35,709 vertices, decimetres)",
        "Derived from BFM 2009 (licensed by registration) and FaceWarehouse-based expressions",
        {"landmarks": "path", "contours": "path", "units": "str", **_MAX}),
    "bfm2017": ImporterInfo(
        ".bfm:import_bfm2017",
        "Basel Face Model 2017 or 2019, statismo .h5 (millimetres)",
        "BFM 2017/2019: licensed by registration (University of Basel)",
        {"landmarks": "path", "contours": "path", "units": "str", **_MAX}),
    "flame": ImporterInfo(
        ".flame:import_flame",
        "FLAME 2017/2020/2023 pickle (metres), read without chumpy; optional FLAME_texture.npz",
        "FLAME: licensed by registration (MPI-IS); FLAME 2023 Open is CC-BY-4.0",
        {"landmarks": "path", "albedo": "path", **_MAX}),
    "surrey": ImporterInfo(
        ".surrey:import_surrey",
        "Surrey Face Model / eos cereal .bin (millimetres) with eos blendshapes",
        "SFM: free for non-commercial use; full model licensed by registration (Surrey CVSSP)",
        {"expressions": "path_or_bool", "landmarks": "path", "contours": "path", **_MAX}),
    "ict-facekit": ImporterInfo(
        ".ict:import_ict_facekit",
        "ICT-FaceKit FaceXModel folder (centimetres, ARKit blendshapes)",
        "ICT-FaceKit: MIT",
        {"face_only": "bool", "progress": "bool"}),
}


def list_importers() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(IMPORTERS)


def _coerce(kind: str, name: str, typ: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    low = text.lower()
    if typ in ("bool", "path_or_bool"):
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", "none"):
            return False
        if typ == "bool":
            raise ModelFormatError(f"{kind} option {name}={value!r}: expected true or false")
    if typ == "int":
        try:
            return int(text)
        except ValueError:
            raise ModelFormatError(
                f"{kind} option {name}={value!r}: expected a whole number") from None
    if typ in ("path", "path_or_bool"):
        return Path(text).expanduser()
    return text


def import_model(kind: str, path: str | Path, **options: Any) -> MorphableModel:
    """Import a third-party face model.

    Args:
        kind: one of :func:`list_importers` (see the table in the module docstring).
        path: the model file or folder.
        **options: the importer's options (strings are converted to the declared types).

    Returns:
        The imported :class:`MorphableModel`.

    Raises:
        ModelFormatError: unknown kind or option, or the files are missing or malformed.
    """
    info = IMPORTERS.get(kind)
    if info is None:
        raise ModelFormatError(
            f"unknown model kind {kind!r}; known kinds: {', '.join(list_importers())}")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ModelFormatError(
            f"{kind} importer has no option(s) {unknown}; its options are: "
            f"{', '.join(sorted(info.options)) or 'none'}")
    kwargs = {k: _coerce(kind, k, info.options[k], v) for k, v in options.items()}
    return info.load()(path, **kwargs)
