"""The regressor trainer's config: one frozen, validated :class:`RegressorTrainConfig`.

Usually read from a JSON file (see ``configs/``)::

    cfg = RegressorTrainConfig.from_json("configs/regressor_starter.json")

The loss terms, photo terms and resume rules are described in
:mod:`facecraft.training.train_regressor`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecraft.sdk.errors import InvalidInputError
from facecraft.training.backbones import list_backbones
from facecraft.training.losses import LossWeights
from facecraft.training.synthetic import SyntheticSettings
from facecraft.training.train_config import (
    check_config_keys,
    check_float,
    check_int,
    config_mismatch,
    read_json_config,
)

__all__ = [
    "RegressorTrainConfig",
    "DEFAULT_TRAIN_LOSS_WEIGHTS",
    "LR_SCHEDULES",
    "PHOTO_RECOGNIZERS",
    "PHOTO_TERMS",
    "PHOTO_LOG",
    "SUPPORTED_TERMS",
    "RESUMABLE_CHANGES",
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
PHOTO_TERMS = {"photo_photometric": "photometric", "photo_landmark": "landmark",
               "photo_identity": "identity", "photo_regularization": "coefficient_reg",
               "photo_lighting_reg": "lighting_reg"}

#: History / TensorBoard name of each photo term (the inverse of :data:`PHOTO_TERMS`).
PHOTO_LOG = {t: n for n, t in PHOTO_TERMS.items()}

#: The terms this trainer computes; any other weight must be 0.
SUPPORTED_TERMS = ("supervised_coeffs", "vertex", "landmark", "photometric", "coefficient_reg",
                   "lighting_reg")

#: Config fields that may change between a run and its resumption (the rest must match).
RESUMABLE_CHANGES = ("steps", "log_every", "snapshot_every", "checkpoint_every", "val_length",
                     "val_every", "num_workers", "device", "out_dir")


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
        check_int("image_size", self.image_size, 32)
        for name in ("batch_size", "steps", "train_length", "snapshot_count"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "seed", "val_length", "val_seed", "val_every",
                     "snapshot_every", "checkpoint_every", "num_workers"):
            check_int(name, getattr(self, name), 0)
        check_int("log_every", self.log_every, 1)
        check_int("lr_step_every", self.lr_step_every, 1)
        check_float("lr", self.lr, strict=True)
        check_float("head_lr_scale", self.head_lr_scale, strict=True)
        for name in ("weight_decay", "grad_clip", "min_lr_ratio", "lr_step_gamma"):
            check_float(name, getattr(self, name))
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(f"expected lr_schedule one of {LR_SCHEDULES}, got "
                                    f"{self.lr_schedule!r}")
        if self.val_seed == self.seed and self.val_length:
            raise InvalidInputError(f"val_seed ({self.val_seed}) must differ from seed, or the "
                                    "validation faces are training faces")
        if not isinstance(self.loss_weights, LossWeights):
            raise InvalidInputError(f"expected loss_weights a LossWeights, got "
                                    f"{type(self.loss_weights).__name__}")
        unsupported = [n for n in self.loss_weights.active() if n not in SUPPORTED_TERMS]
        if unsupported:
            raise InvalidInputError(f"loss terms {unsupported} are not computed when training on "
                                    f"synthetic faces; set them to 0 (supported: "
                                    f"{list(SUPPORTED_TERMS)})")
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
        check_int("photo_batch_size", self.photo_batch_size, 1)
        check_int("photo_every", self.photo_every, 1)
        for name in PHOTO_TERMS:
            check_float(name, getattr(self, name))
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
        return self.photo_data is not None and any(getattr(self, n) for n in PHOTO_TERMS)

    def photo_loss_weights(self) -> LossWeights:
        """The ``photo_*`` weights as a :class:`LossWeights` (every other term 0)."""
        zero = {n: 0.0 for n in LossWeights.names()}
        return LossWeights(**{**zero, **{t: getattr(self, n) for n, t in PHOTO_TERMS.items()}})

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
        check_config_keys(cls, d, "training")
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
        return cls.from_dict(read_json_config(path, "training"))

    def resume_mismatch(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields in which a checkpoint's saved config (JSON) differs from this one, apart
        from :data:`RESUMABLE_CHANGES`; a field the saved config lacks counts as its default."""
        return config_mismatch(type(self), saved, self.to_json(), RESUMABLE_CHANGES)

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
