"""The coefficient regressor of Deng et al. 2019: an aligned face crop in, 3DMM coefficients out.

A backbone (:mod:`facecraft.training.backbones`) pools the crop to a feature vector and one linear
head maps it to the coefficient vector laid out by :class:`CoeffLayout`, in Deng et al.'s order::

    identity (Ki) | expression (Ke) | albedo (Ka) | angles (3) | lighting (27) | translation (3)

(257 = 80 + 64 + 80 + 3 + 27 + 3 for their BFM). The output is a named, frozen
:class:`Coeffs3DMM`, never a bare vector.

Conventions
-----------
* ``angles`` are ``(pitch, yaw, roll)`` in **radians** about the world X, Y, Z axes, composed as
  ``R = Rz(roll) Ry(yaw) Rx(pitch)`` acting on column vectors (:func:`facecraft.sdk.render.cameras.
  euler_to_matrix`); zero is a frontal face looking down +Z at the camera.
* ``translation`` is in **metres** in the world frame (+X subject's left, +Y up, +Z towards the
  camera), ``p_world = R p_model + t`` (:class:`facecraft.sdk.render.cameras.Pose`). The head's raw
  output
  is added to :attr:`CoeffRegressor.translation_offset` (default ``(0, 0, 0)``: the model origin at
  the world origin, 1 m in front of the paper camera on +Z, :meth:`facecraft.sdk.render.cameras.
  PerspectiveCamera.paper`). Deep3DFaceRecon's translation is in decimetres; ours is not.
* ``lighting`` is the (B, 27) channel-major SH layout of :mod:`facecraft.sdk.render.lighting`, an
offset
  from the ambient init (``sh = 0`` is uniform ambient light).
* identity / expression / albedo are the unit-variance coefficients of
  :class:`facecraft.sdk.models.morphable_model.MorphableModel` (zero = the mean face).

As in Deng et al. (Deep3DFaceRecon ``networks.py``), the head starts with zero weights and bias, so
an untrained regressor outputs the mean face, frontal, at the default translation, under ambient
light. (The backbone's gradient is therefore zero on the very first step; it flows once the head
has moved.)

Checkpoints are one ``.safetensors`` file: the state dict plus, in the header, everything needed to
rebuild the module (layout, input spec, backbone name and arguments, translation offset, FaceCraft
version and caller metadata such as the face model's content hash). :func:`load_regressor` rebuilds
from that header, so export and the SDK never guess a head size or a normalisation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError, ModelFileError
from facecraft.sdk.models.tensor_file import open_tensor_file, write_tensor_file
from facecraft.sdk.pipeline.coeff_layout import NUM_ANGLES as _NUM_ANGLES
from facecraft.sdk.pipeline.coeff_layout import NUM_TRANSLATION as _NUM_TRANSLATION
from facecraft.sdk.pipeline.coeff_layout import CoeffLayout
from facecraft.sdk.render.cameras import PAPER_IMAGE_SIZE, Pose
from facecraft.sdk.render.lighting import SH_NUM_COEFFS, SHLighting
from facecraft.training.backbones import get_backbone

__all__ = [
    "CoeffLayout",
    "Coeffs3DMM",
    "InputSpec",
    "CoeffRegressor",
    "coeff_regressor",
    "save_regressor",
    "load_regressor",
    "read_regressor_meta",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_SCHEMA_VERSION",
]

#: ``format`` value in a regressor checkpoint's safetensors header.
CHECKPOINT_FORMAT = "facecraft.coeff_regressor"
#: Schema version written; newer files are refused, older ones migrated by named functions.
CHECKPOINT_SCHEMA_VERSION = 1

_FIELDS = ("identity", "expression", "albedo", "angles", "lighting", "translation")


def _int_field(name: str, v: object, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidInputError(f"expected {name} an int >= {minimum}, got {v!r}")
    return v


# ---------------------------------------------------------------------------------- layout
def _exact_keys(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(d, Mapping):
        raise InvalidInputError(f"expected a dict for {cls.__name__}, got {type(d).__name__}")
    unknown = sorted(set(d) - names)
    if unknown:
        raise InvalidInputError(f"unknown {cls.__name__} keys {unknown}; expected {sorted(names)}")
    return dict(d)


# ---------------------------------------------------------------------------------- output
@dataclass(frozen=True, eq=False)
class Coeffs3DMM:
    """The regressor's named output (one row per image).

    Attributes:
        identity: (B, Ki) float, unit-variance identity coefficients.
        expression: (B, Ke) float, expression coefficients.
        albedo: (B, Ka) float, unit-variance albedo coefficients (Ka may be 0).
        angles: (B, 3) float, ``(pitch, yaw, roll)`` radians (see the module docstring).
        lighting: (B, 27) float, channel-major SH offsets from the ambient init.
        translation: (B, 3) float, metres, world frame.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    albedo: torch.Tensor
    angles: torch.Tensor
    lighting: torch.Tensor
    translation: torch.Tensor

    def __post_init__(self) -> None:
        fixed = {"angles": _NUM_ANGLES, "lighting": SH_NUM_COEFFS,
                 "translation": _NUM_TRANSLATION}
        batch = None
        for name in _FIELDS:
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.ndim != 2 or not t.is_floating_point():
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise InvalidInputError(f"expected {name} a float tensor (B, K), got {got}")
            if name in fixed and t.shape[1] != fixed[name]:
                raise InvalidInputError(f"expected {name} (B, {fixed[name]}), got "
                                        f"{tuple(t.shape)}")
            if batch is None:
                batch = t.shape[0]
            elif t.shape[0] != batch:
                raise InvalidInputError(f"{name} has batch {t.shape[0]} but identity has "
                                        f"{batch}; all fields need one row per image")

    @property
    def batch_size(self) -> int:
        return self.identity.shape[0]

    @property
    def layout(self) -> CoeffLayout:
        """The layout these coefficients fill."""
        return CoeffLayout(num_identity=self.identity.shape[1],
                           num_expression=self.expression.shape[1],
                           num_albedo=self.albedo.shape[1])

    def pose(self) -> Pose:
        """The head pose ``p_world = R(angles) p_model + translation`` (metres)."""
        return Pose.from_euler(self.angles, self.translation)

    def sh_lighting(self) -> SHLighting:
        """The lighting as :class:`~facecraft.sdk.render.lighting.SHLighting` (ambient added)."""
        return SHLighting(self.lighting)

    def to_vector(self) -> torch.Tensor:
        """(B, layout.size) float: the fields concatenated in layout order."""
        return torch.cat([getattr(self, f) for f in _FIELDS], dim=1)

    @classmethod
    def from_vector(cls, v: torch.Tensor, layout: CoeffLayout) -> Coeffs3DMM:
        """Split a (B, layout.size) vector into named fields (views, no copy)."""
        if not isinstance(v, torch.Tensor) or v.ndim != 2 or v.shape[1] != layout.size:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise InvalidInputError(f"expected v (B, {layout.size}) for {layout}, got {got}")
        return cls(**{name: v[:, s] for name, s in layout.slices().items()})

    def detach(self) -> Coeffs3DMM:
        """A copy with every tensor detached from the graph."""
        return Coeffs3DMM(**{f: getattr(self, f).detach() for f in _FIELDS})


# ----------------------------------------------------------------------------- input spec
@dataclass(frozen=True)
class InputSpec:
    """What the regressor expects of its input crop (recorded in every checkpoint).

    Attributes:
        crop_size: side of the square aligned crop, pixels (224,
        :data:`facecraft.sdk.render.cameras.
            PAPER_IMAGE_SIZE`; :func:`facecraft.sdk.photo.align` produces it). ``forward`` refuses
            other sizes.
        mean: per-channel mean subtracted from RGB values in [0, 1] (ImageNet's by default).
        std: per-channel divisor applied after the mean.
        colour_order: channel order of the input tensor; only ``"RGB"`` is supported.
    """

    crop_size: int = PAPER_IMAGE_SIZE
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    colour_order: str = "RGB"

    def __post_init__(self) -> None:
        _int_field("crop_size", self.crop_size, minimum=32)
        for name in ("mean", "std"):
            v = getattr(self, name)
            try:
                v = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                raise InvalidInputError(f"expected {name} 3 floats, got {v!r}") from None
            if len(v) != 3:
                raise InvalidInputError(f"expected {name} 3 floats (R, G, B), got {v!r}")
            object.__setattr__(self, name, v)
        if any(s <= 0 for s in self.std):
            raise InvalidInputError(f"expected std > 0, got {self.std}")
        if self.colour_order != "RGB":
            raise InvalidInputError(f"colour_order must be 'RGB', got {self.colour_order!r}; "
                                    "flip BGR images (e.g. from OpenCV) with x.flip(1)")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` reads it back."""
        d = dataclasses.asdict(self)
        return {**d, "mean": list(d["mean"]), "std": list(d["std"])}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InvalidInputError`."""
        return cls(**_exact_keys(cls, d))


# ---------------------------------------------------------------------------------- module
class CoeffRegressor(nn.Module):
    """Backbone + one linear head: aligned crop -> :class:`Coeffs3DMM`.

    Build with :func:`coeff_regressor` (or :func:`load_regressor`); the constructor takes an
    already built backbone.

    Args:
        backbone: a module with ``out_features`` and ``features(x) -> (B, out_features)``.
        layout: the coefficient layout; sizes the head.
        input_spec: crop size and normalisation, applied inside :meth:`forward`.
        translation_offset: (x, y, z) metres added to the head's translation output.
        backbone_name: registry name, recorded in checkpoints (``None``: cannot be saved).
        backbone_kwargs: the builder's arguments, recorded in checkpoints.
    """

    def __init__(self, backbone: nn.Module, *, layout: CoeffLayout,
                 input_spec: InputSpec = InputSpec(),
                 translation_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 backbone_name: str | None = None,
                 backbone_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(layout, CoeffLayout):
            raise InvalidInputError(f"expected layout a CoeffLayout, got {type(layout).__name__}")
        if not isinstance(input_spec, InputSpec):
            raise InvalidInputError(
                f"expected input_spec an InputSpec, got {type(input_spec).__name__}")
        n_feat = getattr(backbone, "out_features", None)
        if not isinstance(n_feat, int) or not callable(getattr(backbone, "features", None)):
            raise InvalidInputError("backbone needs an int out_features and a features(x) method")
        offset = tuple(float(x) for x in translation_offset)
        if len(offset) != 3:
            raise InvalidInputError(f"expected translation_offset 3 floats (metres), got {offset}")
        self.backbone = backbone
        self.head = nn.Linear(n_feat, layout.size)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.layout = layout
        self.input_spec = input_spec
        self.translation_offset: tuple[float, float, float] = offset  # type: ignore[assignment]
        self.backbone_name = backbone_name
        self.backbone_kwargs = dict(backbone_kwargs or {})
        #: Caller metadata read from a checkpoint (e.g. ``face_model_sha256``); ``{}`` if built.
        self.extra_meta: dict[str, Any] = {}
        # Derived from the specs above, so not saved (persistent=False): the header is the truth.
        self.register_buffer("_mean", torch.tensor(input_spec.mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("_std", torch.tensor(input_spec.std).view(1, 3, 1, 1),
                             persistent=False)
        bias = torch.zeros(layout.size)
        bias[layout.slices()["translation"]] = torch.tensor(offset)
        self.register_buffer("_out_offset", bias, persistent=False)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        s = self.input_spec.crop_size
        if not isinstance(images, torch.Tensor):
            raise InvalidInputError(
                f"expected images a torch.Tensor (B, 3, {s}, {s}), got {type(images).__name__}")
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, s, s):
            raise InvalidInputError(f"expected images (B, 3, {s}, {s}) RGB in [0, 1], got "
                                    f"{tuple(images.shape)}; align the photo to a {s} px crop "
                                    "first (facecraft.sdk.photo.align)")
        if not images.is_floating_point():
            raise InvalidInputError(f"expected images float RGB in [0, 1], got {images.dtype}; "
                                    "divide uint8 images by 255")
        return (images - self._mean) / self._std

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of the crops.

        Args:
            images: (B, 3, S, S) float RGB in [0, 1], ``S = input_spec.crop_size``.

        Returns:
            (B, backbone.out_features) float pooled features.
        """
        return self.backbone.features(self._normalise(images))

    def forward_vector(self, images: torch.Tensor) -> torch.Tensor:
        """The raw coefficient vector (translation offset included), (B, layout.size) float."""
        return self.head(self.forward_features(images)) + self._out_offset

    def forward_with_features(self, images: torch.Tensor) -> tuple[Coeffs3DMM, torch.Tensor]:
        """Coefficients and the pooled features they come from, in one backbone pass.

        Returns:
            ``(coeffs, features)``: :class:`Coeffs3DMM` and (B, backbone.out_features) float.
        """
        features = self.forward_features(images)
        return (Coeffs3DMM.from_vector(self.head(features) + self._out_offset, self.layout),
                features)

    def forward(self, images: torch.Tensor) -> Coeffs3DMM:
        """Regress coefficients.

        Args:
            images: (B, 3, S, S) float RGB in [0, 1], aligned crops, ``S = input_spec.crop_size``.

        Returns:
            :class:`Coeffs3DMM` with batch B.
        """
        return Coeffs3DMM.from_vector(self.forward_vector(images), self.layout)

    def config(self) -> dict[str, Any]:
        """The JSON-able description :func:`load_regressor` rebuilds from."""
        return {
            "layout": self.layout.to_dict(),
            "input_spec": self.input_spec.to_dict(),
            "backbone": {"name": self.backbone_name, "kwargs": dict(self.backbone_kwargs)},
            "translation_offset": list(self.translation_offset),
        }


def coeff_regressor(*, layout: CoeffLayout, backbone: str = "resnet18",
                    input_spec: InputSpec = InputSpec(),
                    translation_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
                    **backbone_kw: Any) -> CoeffRegressor:
    """Build a randomly initialised regressor with a zero head.

    Args:
        layout: coefficient layout, e.g. ``CoeffLayout.from_model(model)``.
        backbone: a name from :func:`facecraft.training.backbones.list_backbones`.
        input_spec: crop size and normalisation.
        translation_offset: (x, y, z) metres added to the translation output.
        **backbone_kw: the backbone builder's arguments (``width=16``, ``width_mult=0.5``...);
            must be JSON-able, since checkpoints record them.
    """
    try:
        json.dumps(backbone_kw)
    except (TypeError, ValueError):
        raise InvalidInputError(f"backbone arguments must be JSON-able (they are saved in "
                                f"checkpoints), got {backbone_kw!r}") from None
    net = get_backbone(backbone, **backbone_kw)
    return CoeffRegressor(net, layout=layout, input_spec=input_spec,
                          translation_offset=translation_offset, backbone_name=backbone,
                          backbone_kwargs=backbone_kw)


# ----------------------------------------------------------------------------- checkpoints
def _facecraft_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facecraft")
    except PackageNotFoundError:
        return "unknown"


def save_regressor(model: CoeffRegressor, path: str | Path, *,
                   extra_meta: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` to one ``.safetensors`` file atomically (a temporary file, then a rename).

    Args:
        model: a regressor built by :func:`coeff_regressor` or :func:`load_regressor`.
        path: destination file.
        extra_meta: JSON-able caller metadata stored with the config, e.g.
            ``{"face_model_sha256": info.content_sha256, "epoch": 12}``.

    Raises:
        InvalidInputError: a model without a registered backbone name, or non-JSON-able metadata.
        ModelFileError: the file cannot be written.
    """
    if not isinstance(model, CoeffRegressor) or model.backbone_name is None:
        raise InvalidInputError("save_regressor needs a CoeffRegressor built by coeff_regressor() "
                                "(its backbone name is what load_regressor rebuilds from)")
    meta = {**model.config(), "facecraft_version": _facecraft_version(),
            "extra": dict(model.extra_meta, **(extra_meta or {}))}
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"extra_meta must be JSON-able: {e}") from None
    header = {"format": CHECKPOINT_FORMAT, "schema_version": str(CHECKPOINT_SCHEMA_VERSION),
              "meta": meta_json}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_tensor_file(tensors, path, header, framework="pt")


def _open(path: Path) -> tuple[dict[str, Any], Any]:
    header, handle = open_tensor_file(path, fmt=CHECKPOINT_FORMAT,
                                      schema_version=CHECKPOINT_SCHEMA_VERSION,
                                      what="FaceCraft regressor checkpoint", framework="pt")
    try:
        meta = json.loads(header.get("meta", ""))
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
    except ValueError as e:
        raise ModelFileError(f"{path}: unreadable metadata ({e})") from None
    return meta, handle


def read_regressor_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata (layout, input_spec, backbone, translation_offset,
    facecraft_version, extra) without loading weights."""
    return _open(Path(path))[0]


@overload
def load_regressor(path: str | Path, *, strict: Literal[True] = True) -> CoeffRegressor: ...


@overload
def load_regressor(path: str | Path, *, strict: Literal[False]
                   ) -> tuple[CoeffRegressor, list[str], list[str]]: ...


def load_regressor(path: str | Path, *, strict: bool = True
                   ) -> CoeffRegressor | tuple[CoeffRegressor, list[str], list[str]]:
    """Rebuild a regressor from a checkpoint written by :func:`save_regressor`.

    The module is built from the header (backbone, layout, input spec), then the weights load.

    Args:
        path: the ``.safetensors`` checkpoint.
        strict: refuse any missing or unexpected weight (the default).

    Returns:
        The regressor in eval mode on the CPU; with ``strict=False``,
        ``(regressor, missing_keys, unexpected_keys)`` (sorted lists), where missing weights keep
        their fresh initialisation.

    Raises:
        ModelFileError: not a regressor checkpoint, a newer schema, metadata that does not build,
            a shape mismatch, or (strict) missing / unexpected keys, all listed.
    """
    path = Path(path)
    meta, handle = _open(path)
    try:
        bb = meta["backbone"]
        model = coeff_regressor(layout=CoeffLayout.from_dict(meta["layout"]),
                                backbone=bb["name"],
                                input_spec=InputSpec.from_dict(meta["input_spec"]),
                                translation_offset=tuple(meta.get("translation_offset",
                                                                  (0.0, 0.0, 0.0))),
                                **bb.get("kwargs", {}))
    except (KeyError, TypeError, InvalidInputError) as e:
        raise ModelFileError(f"{path}: cannot rebuild the regressor from its metadata "
                             f"({type(e).__name__}: {e})") from None
    model.extra_meta = dict(meta.get("extra", {}))
    expected = model.state_dict()
    stored = set(handle.keys())
    missing = sorted(set(expected) - stored)
    unexpected = sorted(stored - set(expected))
    if strict and (missing or unexpected):
        raise ModelFileError(f"{path}: checkpoint does not match the {bb['name']} regressor: "
                             f"missing keys {missing}, unexpected keys {unexpected}; load with "
                             "strict=False to inspect, or migrate the keys with a named function")
    tensors = {k: handle.get_tensor(k) for k in sorted(stored & set(expected))}
    wrong = [f"{k}: file {tuple(t.shape)} vs model {tuple(expected[k].shape)}"
             for k, t in tensors.items() if t.shape != expected[k].shape]
    if wrong:
        raise ModelFileError(f"{path}: weight shapes do not match the metadata: {wrong}")
    model.load_state_dict(tensors, strict=False)
    model.eval()
    return model if strict else (model, missing, unexpected)
