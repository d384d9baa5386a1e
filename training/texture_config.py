"""The texture trainer's config: one frozen, JSON-able :class:`TextureTrainConfig`, and the
paper's ablation rows (Lin et al., CVPR 2020, Table 2) built from one config.

See :mod:`facecraft.training.train_texture` for the loss and the run's outputs.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecraft.sdk.errors import InvalidInputError

from .losses import LossWeights
from .texture_nets import TextureNetConfig
from .train_config import check_config_keys, config_mismatch, read_json_config

__all__ = ["TextureTrainConfig", "ABLATION_ROWS", "RESUMABLE_CHANGES", "ablation_configs"]

#: Fields a resumed run may change (everything else must match the checkpoint's run).
RESUMABLE_CHANGES = frozenset({"steps", "out_dir", "device", "log_every", "snapshot_every",
                               "checkpoint_every", "num_workers"})

#: The paper's ablation rows (Table 2): name -> the LossWeights fields switched on.
ABLATION_ROWS: dict[str, tuple[str, ...]] = {
    "L_pix": ("photometric",),
    "+L_id": ("photometric", "identity"),
    "+L_adv": ("photometric", "identity", "adversarial"),
    "+L_vert": ("photometric", "identity", "adversarial", "texture_vertex"),
}


def _paper_texture_weights() -> LossWeights:
    """The defaults: L_pix 1, L_id 0.2, L_adv 1e-3 (penalty 10), L_vert 1, options off."""
    return LossWeights(photometric=1.0, landmark=0.0, identity=0.2, coefficient_reg=0.0,
                       lighting_reg=0.0, albedo_variance=0.0, texture_vertex=1.0,
                       symmetry=0.0, adversarial=1e-3, gradient_penalty=10.0)


@dataclass(frozen=True)
class TextureTrainConfig:
    """One texture-network training run (JSON-able; see ``configs/texture_starter.json``).

    Attributes:
        regressor: path of the frozen coefficient-regressor checkpoint (its face model and
            crop size are used).
        photo_data: a folder written by ``facecraft train prepare``.
        holdout_every: every n-th prepared face (index % n == n - 1) is held out of training
            for evaluation; 0 trains on all.
        batch_size: photos per step (the paper's 4).
        steps: generator steps of the run.
        lr: Adam learning rate of the generator (the paper's 1e-4).
        critic_lr: Adam learning rate of the critic.
        lr_decay: multiply both learning rates by this every ``lr_decay_every`` steps (the
            paper's 0.98 per epoch).
        lr_decay_every: steps between decays.
        grad_clip: gradient-norm clip of the generator (0 = off; the paper's 5).
        fc_weight_decay: L2 on the fully connected layers (the paper's 5e-4).
        critic_steps: critic updates per generator step when ``adversarial`` is on (paper 5).
        curriculum_steps: ramp-in length of the rendering terms (0 = no curriculum).
        vertex_floor: the lowest L_vert scale under the curriculum (the paper's 0.2).
        loss_weights: the generator weights (and the critic's ``gradient_penalty``).
        nets: :class:`TextureNetConfig` fields (paper values by default).
        recognizer: face-recognition network of L_id and of the decoder's extra feature:
            ``"dlib"`` (default) or ``"none"``; see :mod:`facecraft.training.recognizers`.
        identity_feature: concatenate the recognizer's embedding to the decoder's input (the
            paper used FaceNet's feature beside the ResNet's).
        seed: RNG seed (data order, initialisation, WGAN-GP interpolation).
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: where the run's files go.
        log_every, snapshot_every, checkpoint_every: steps between those events (0 = never).
        snapshot_count: held-out faces in each snapshot.
        num_workers: DataLoader workers (0 = in process).
    """

    regressor: str
    photo_data: str
    holdout_every: int = 5
    batch_size: int = 4
    steps: int = 1000
    lr: float = 1e-4
    critic_lr: float = 1e-4
    lr_decay: float = 0.98
    lr_decay_every: int = 100
    grad_clip: float = 5.0
    fc_weight_decay: float = 5e-4
    critic_steps: int = 5
    curriculum_steps: int = 0
    vertex_floor: float = 0.2
    loss_weights: LossWeights = field(default_factory=_paper_texture_weights)
    nets: Mapping[str, Any] = field(default_factory=dict)
    recognizer: str = "dlib"
    identity_feature: bool = True
    seed: int = 0
    device: str = "cpu"
    out_dir: str = "runs/texture"
    log_every: int = 10
    snapshot_every: int = 100
    checkpoint_every: int = 100
    snapshot_count: int = 4
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("holdout_every", "lr_decay_every", "critic_steps", "curriculum_steps",
                     "seed", "log_every", "snapshot_every", "checkpoint_every",
                     "num_workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInputError(f"expected {name} an int >= 0, got {v!r}")
        for name in ("batch_size", "steps", "snapshot_count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"expected {name} an int >= 1, got {v!r}")
        for name in ("lr", "critic_lr", "lr_decay"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise InvalidInputError(f"expected {name} a number > 0, got {v!r}")
        for name in ("grad_clip", "fc_weight_decay", "vertex_floor"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise InvalidInputError(f"expected {name} a number >= 0, got {v!r}")
        if not isinstance(self.loss_weights, LossWeights):
            object.__setattr__(self, "loss_weights", LossWeights(**dict(self.loss_weights)))
        for off in ("landmark", "coefficient_reg", "lighting_reg", "supervised_coeffs",
                    "vertex"):
            if getattr(self.loss_weights, off):
                raise InvalidInputError(f"loss_weights.{off} is a regressor term; the regressor "
                                        "is frozen while the texture nets train: set it to 0")
        if not self.device.startswith(("cpu", "cuda")):
            raise InvalidInputError(f"expected device 'cpu' or 'cuda[:n]', got {self.device!r}")
        TextureNetConfig(**dict(self.nets))  # validates the field names and values
        object.__setattr__(self, "nets", dict(self.nets))

    def net_config(self) -> TextureNetConfig:
        """The nets' :class:`TextureNetConfig`."""
        return TextureNetConfig(**dict(self.nets))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict :meth:`from_dict` reads back."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["loss_weights"] = dataclasses.asdict(self.loss_weights)
        d["nets"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.nets.items()}
        return d

    def resume_mismatch(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields in which a checkpoint's saved config (JSON) differs from this one, apart
        from :data:`RESUMABLE_CHANGES`; a field the saved config lacks counts as its default."""
        return config_mismatch(type(self), saved, self.to_json(), RESUMABLE_CHANGES)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextureTrainConfig:
        """Build from a dict (unknown and missing required keys are an error, listed)."""
        check_config_keys(cls, d, "texture")
        return cls(**dict(d))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TextureTrainConfig:
        """Read a JSON config; relative ``regressor`` / ``photo_data`` stay as written
        (relative to the working directory)."""
        return cls.from_dict(read_json_config(path, "texture"))


def ablation_configs(base: TextureTrainConfig) -> dict[str, TextureTrainConfig]:
    """The four runs of the paper's ablation from one config: row name -> config whose loss
    weights keep only that row's terms (at ``base``'s values) and whose ``out_dir`` is
    ``base.out_dir/<slug>``. Options (symmetry, skin variance) stay as in ``base``."""
    out = {}
    w = base.loss_weights
    for row, on in ABLATION_ROWS.items():
        changes = {n: (getattr(w, n) if n in on else 0.0)
                   for n in ("photometric", "identity", "adversarial", "texture_vertex")}
        if "adversarial" not in on:
            changes["gradient_penalty"] = 0.0
        missing = [n for n in on if not changes[n]]
        if missing:
            raise InvalidInputError(f"ablation row {row} needs {missing} > 0 in the base config")
        slug = row.replace("+", "plus_").replace("L_", "")
        out[row] = dataclasses.replace(base, loss_weights=dataclasses.replace(w, **changes),
                                       out_dir=str(Path(base.out_dir) / slug))
    return out
