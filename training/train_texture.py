"""Training the GCN texture networks (Lin et al., CVPR 2020) on prepared photos.

The coefficient regressor is frozen. For each aligned photo crop it gives the shape, pose, SH
lighting and the coarse 3DMM albedo ``T``; the photo is sampled at the visible projected vertices
and :class:`~facecraft.training.texture_nets.FineTextureNet` turns (regressor feature, coarse
albedo, sampled colour, visibility) into the fine per-vertex albedo ``T'``. The generator loss is
the paper's

    L = s1 [L_pix + s2 L_id + s3 L_adv] + s4 [L_vert(T, T') + L_vert(T_p, T~')]

where ``T_p`` and ``T~'`` are the lit (SH-shaded) colours of ``T`` and ``T'``. In
:class:`~facecraft.training.losses.LossWeights` terms: ``photometric`` = s1 (the masked pixel
loss, mask = projection mask x skin mask), ``identity`` = s1 s2 (1 - cosine of face-recognition
features of the photo and of the render composited over it), ``adversarial`` = s1 s3 (WGAN-GP;
``gradient_penalty`` weighs the critic's penalty), ``texture_vertex`` = s4; the official code's
``symmetry`` and skin-colour variance (``albedo_variance``) terms are options.
``curriculum_steps`` > 0 ramps the rendering terms in as the official code does per epoch:
``render_w = min(step / curriculum_steps, 1)``, ``vertex_w = max(1 - render_w, vertex_floor)``.

A run writes, under ``out_dir``: ``config.json``, TensorBoard logs (``tb/``), PNG snapshots
(``snapshots/``: photo | coarse render | fine render | fine texture unlit), ``loss_curve.png``,
``checkpoints/texture.safetensors`` (the nets, with their config, face model and regressor
identity in the header) and ``checkpoints/state.pt`` (optimisers, for resume), ``metrics.json``.
Under ``torchrun`` it trains data-parallel (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError, ModelFileError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.models.model_file import model_hash
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import RenderOutput, render_mesh
from facecraft.sdk.render.sampling import sample_vertex_colors

from .losses import (
    LossWeights,
    albedo_variance,
    combine,
    identity_loss,
    photometric_loss,
    symmetry_loss,
    texture_vertex_loss,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_gp_gradient_penalty,
)
from .regressor import CoeffRegressor, Coeffs3DMM, load_regressor
from .texture_nets import FineTextureNet, PatchDiscriminator, TextureNetConfig
from .train_regressor import _distributed, _loss_curve, _LossWindow, _to_u8, _write_png

__all__ = [
    "TextureTrainConfig",
    "TextureStage",
    "TextureTrainResult",
    "ABLATION_ROWS",
    "ablation_configs",
    "mirror_vertex_ids",
    "texture_stage",
    "train_texture",
    "save_texture_nets",
    "load_texture_nets",
]

_CHECKPOINT = "texture.safetensors"
_STATE = "state.pt"
_STATE_VERSION = 1
_FORMAT = "facecraft.texture_nets"
_FORMAT_VERSION = 1
#: Fields a resumed run may change (everything else must match the checkpoint's run).
_RESUMABLE_CHANGES = frozenset({"steps", "out_dir", "device", "log_every", "snapshot_every",
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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextureTrainConfig:
        """Build from a dict (unknown keys are an error, listed)."""
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InvalidInputError(f"unknown texture config keys {unknown}; expected "
                                    f"{sorted(names)}")
        return cls(**dict(d))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TextureTrainConfig:
        """Read a JSON config; relative ``regressor`` / ``photo_data`` stay as written
        (relative to the working directory)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise InvalidInputError(f"config {p} does not exist") from None
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidInputError(f"cannot read config {p}: {e}") from None
        return cls.from_dict(d)


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


# ----------------------------------------------------------------------------------- data
def mirror_vertex_ids(mean_shape: np.ndarray) -> np.ndarray:
    """(V,) int64: for each vertex the vertex nearest its mirror image across x = 0.

    Args:
        mean_shape: (V, 3) float, metres, the model frame (x to the face's left/right, the
            sagittal plane at x = 0).
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(mean_shape, np.float64)
    mirrored = pts * np.array([-1.0, 1.0, 1.0])
    _, idx = cKDTree(pts).query(mirrored)
    return idx.astype(np.int64)


def _split(n: int, holdout_every: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(n)
    if holdout_every <= 1:
        return idx, idx[:0]
    held = idx % holdout_every == holdout_every - 1
    return idx[~held], idx[held]


def _load_photos(photo_data: str | Path, size: int):
    from .photo_data import PhotoFaces

    return PhotoFaces(photo_data, image_size=size)


def _stack(ds, ids: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
    items = [ds[int(i)] for i in ids]
    return {k: torch.stack([it[k] for it in items]).to(device)
            for k in ("image", "skin_mask")}


# ----------------------------------------------------------------------------------- stage
@dataclass(frozen=True)
class TextureStage:
    """Everything the frozen regressor and the renderer give the texture nets for a batch.

    Attributes:
        coeffs: the regressor's coefficients.
        feature: (B, F) float, the decoder's input (backbone feature [+ identity embedding]).
        backbone_feature: (B, Fb) float, the regressor backbone's pooled feature alone.
        identity: (B, D) float, the recognizer's embedding of the photo (None without one):
            the target of L_id.
        verts: (B, V, 3) float, metres, the model-frame shape.
        coarse: (B, V, 3) float in [0, 1], the coarse 3DMM albedo T.
        refiner_input: (B, V, 7) float: coarse albedo, photo colour at the projected vertex
            (0 where hidden), visibility (0/1).
        coarse_render: the coarse albedo rendered with the predicted pose and lighting.
        photo: (B, H, W, 3) float, the crops channels-last.
        face_mask: (B, H, W) bool, projection mask x skin mask.
    """

    coeffs: Coeffs3DMM
    feature: torch.Tensor
    backbone_feature: torch.Tensor
    identity: torch.Tensor | None
    verts: torch.Tensor
    coarse: torch.Tensor
    refiner_input: torch.Tensor
    coarse_render: RenderOutput
    photo: torch.Tensor
    face_mask: torch.Tensor


@torch.no_grad()
def texture_stage(regressor: CoeffRegressor, layer, camera: PerspectiveCamera,
                  images: torch.Tensor, skin: torch.Tensor, *,
                  recognizer: nn.Module | None = None,
                  identity_feature: bool = False) -> TextureStage:
    """Run the frozen front end on a batch of aligned crops.

    Args:
        regressor: the frozen regressor (eval mode).
        layer: the face model's :class:`~facecraft.sdk.models.morphable_model.MorphableModelLayer`.
        camera: the crop's camera (``PerspectiveCamera.paper(S)``).
        images: (B, 3, S, S) float RGB in [0, 1].
        skin: (B, 1, S, S) or (B, S, S) float/bool skin mask.
        recognizer: the identity network: its embedding of the photo is kept (the L_id target)
            and joins the feature when ``identity_feature``.
    """
    coeffs, backbone_feature = regressor.forward_with_features(images)
    identity = recognizer(images) if recognizer is not None else None
    feature = backbone_feature
    if identity_feature and identity is not None:
        feature = torch.cat([backbone_feature, identity], dim=1)
    verts = layer(coeffs.identity, coeffs.expression)
    coarse = layer.albedo(coeffs.albedo).clamp(0.0, 1.0)
    photo = images.permute(0, 2, 3, 1)
    out = render_mesh(verts, layer.triangles, coarse, camera=camera, pose=coeffs.pose(),
                      sh=coeffs.lighting)
    sampled = sample_vertex_colors(images, out.screen_verts, out.visibility)
    refiner_input = torch.cat([coarse, sampled], dim=-1)
    skin = skin.reshape(out.mask.shape) > 0.5
    return TextureStage(coeffs=coeffs, feature=feature, backbone_feature=backbone_feature,
                        identity=identity, verts=verts, coarse=coarse,
                        refiner_input=refiner_input, coarse_render=out, photo=photo,
                        face_mask=out.mask & skin)


def _render(stage: TextureStage, layer, camera, albedo: torch.Tensor) -> RenderOutput:
    return render_mesh(stage.verts, layer.triangles, albedo, camera=camera,
                       pose=stage.coeffs.pose(), sh=stage.coeffs.lighting,
                       background=stage.photo)


# ------------------------------------------------------------------------------ checkpoint
def _file_sha256(path: Path) -> str:
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
    header = {"format": _FORMAT, "format_version": str(_FORMAT_VERSION),
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
    if header.get("format") != _FORMAT:
        raise ModelFileError(f"{path} is not a FaceCraft texture checkpoint "
                             f"(format {header.get('format')!r})")
    if int(header.get("format_version", -1)) != _FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {header.get('format_version')}; this "
                             f"code reads {_FORMAT_VERSION}")
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


# --------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TextureTrainResult:
    """What :func:`train_texture` returns.

    Attributes:
        step: the last step reached. start_step: where this call began (resume).
        checkpoint: the nets' file. out_dir: the run folder.
        metrics: what ``metrics.json`` holds (rank 0; ``{}`` elsewhere).
        history: logged loss averages, one dict per ``log_every`` steps.
        elapsed_s: wall time of the call, seconds.
    """

    step: int
    start_step: int
    checkpoint: Path
    out_dir: Path
    metrics: dict[str, Any]
    history: tuple[dict[str, float], ...]
    elapsed_s: float


def _fc_params(net: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in net.modules() if isinstance(m, nn.Linear)]


def _load_recognizer(spec: str, device: torch.device) -> nn.Module | None:
    if spec == "none":
        return None
    from .recognizers import load_recognizer

    rec = load_recognizer(spec, device=str(device))
    if rec is None:
        return None
    rec.eval()
    for p in rec.parameters():
        p.requires_grad_(False)
    return rec


def _scaled_weights(config: TextureTrainConfig, step: int) -> LossWeights:
    """The generator weights at ``step`` (the curriculum applied)."""
    w = config.loss_weights
    if not config.curriculum_steps:
        return w
    render = min(step / config.curriculum_steps, 1.0)
    vert = max(1.0 - render, config.vertex_floor)
    return dataclasses.replace(
        w, photometric=w.photometric * render, identity=w.identity * render,
        adversarial=w.adversarial * render, symmetry=w.symmetry * render,
        albedo_variance=w.albedo_variance * render, texture_vertex=w.texture_vertex * vert)


def generator_terms(stage: TextureStage, fine: torch.Tensor, layer, camera,
                    weights: LossWeights, *, recognizer: nn.Module | None = None,
                    critic: nn.Module | None = None, mirror: torch.Tensor | None = None,
                    skin_ids: torch.Tensor | None = None, render: RenderOutput | None = None
                    ) -> tuple[dict[str, torch.Tensor], RenderOutput]:
    """The generator's unweighted loss terms for the fine albedo ``fine``.

    Args:
        stage: the batch's :class:`TextureStage`.
        fine: (B, V, 3) float in [0, 1], the fine albedo T'.
        layer, camera: the face model layer and the crop camera.
        weights: only terms with a non-zero weight are computed.
        recognizer: for ``identity``. critic: for ``adversarial``.
        mirror: (V,) int64 mirror ids for ``symmetry``. skin_ids: skin vertex ids for
            ``albedo_variance``.
        render: ``fine`` already rendered over the photo (``_render``), to reuse.

    Returns:
        ``(terms, render)``: the terms and the fine render composited over the photo.
    """
    on = set(weights.active())
    out = render if render is not None else _render(stage, layer, camera, fine)
    terms: dict[str, torch.Tensor] = {}
    if "photometric" in on:
        terms["photometric"] = photometric_loss(out.image, stage.photo, stage.face_mask)
    over = out.image.permute(0, 3, 1, 2)
    if "identity" in on and recognizer is not None:
        target = stage.identity
        if target is None:
            with torch.no_grad():
                target = recognizer(stage.photo.permute(0, 3, 1, 2))
        terms["identity"] = identity_loss(recognizer(over), target)
    if "adversarial" in on and critic is not None:
        terms["adversarial"] = wgan_generator_loss(critic(over))
    if "texture_vertex" in on:
        lit_coarse = stage.coarse_render.vertex_colors
        terms["texture_vertex"] = (texture_vertex_loss(stage.coarse, fine)
                                   + texture_vertex_loss(lit_coarse, out.vertex_colors))
    if "symmetry" in on and mirror is not None:
        terms["symmetry"] = symmetry_loss(fine, mirror)
    if "albedo_variance" in on and skin_ids is not None:
        terms["albedo_variance"] = albedo_variance(fine, skin_ids)
    return terms, out


def _snapshot(stage: TextureStage, fine_render: RenderOutput, layer, camera,
              fine: torch.Tensor) -> np.ndarray:
    """(n H, 4 W, 3) uint8 grid: photo | coarse render | fine render | fine albedo unlit."""
    coarse_over = torch.where(stage.coarse_render.mask[..., None], stage.coarse_render.image,
                              stage.photo)
    unlit = render_mesh(stage.verts, layer.triangles, fine, camera=camera,
                        pose=stage.coeffs.pose(), sh=None).image
    rows = []
    for i in range(stage.photo.shape[0]):
        cols = [stage.photo[i], coarse_over[i], fine_render.image[i], unlit[i]]
        rows.append(np.concatenate([_to_u8(c.permute(2, 0, 1)) for c in cols], axis=1))
    return np.concatenate(rows, axis=0)


def _config_mismatch(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k])


def train_texture(config: TextureTrainConfig, *, resume: bool = True, progress: bool = True,
                  stop_after: int | None = None) -> TextureTrainResult:
    """Train the fine-texture nets (see the module docstring).

    Args:
        config: the run.
        resume: continue from ``out_dir/checkpoints`` when present (same run config except
            ``_RESUMABLE_CHANGES``); ``False`` starts over.
        progress: a tqdm bar on stderr.
        stop_after: stop (checkpointing) once this step is reached.

    Raises:
        InvalidInputError: a bad config, too few photos, a checkpoint of another run.
        ModelFileError: unreadable regressor or photo data.
    """
    if not isinstance(config, TextureTrainConfig):
        raise InvalidInputError(f"expected a TextureTrainConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {config.device!r} asked for, but CUDA is not "
                                "available; use device 'cpu'")
    rank, world = _distributed(config.device)
    device = torch.device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    main = rank == 0
    out = Path(config.out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt, state_path = ckpt_dir / _CHECKPOINT, ckpt_dir / _STATE

    regressor = load_regressor(config.regressor).to(device).eval()
    for p in regressor.parameters():
        p.requires_grad_(False)
    face_model = resolve_model(regressor.extra_meta.get("face_model", "starter"))
    if face_model.albedo_mean is None:
        raise InvalidInputError(f"face model {face_model.name!r} has no albedo model, so there "
                                "is no coarse texture T; build one with `facecraft train "
                                "albedo` first")
    size = regressor.input_spec.crop_size
    camera = PerspectiveCamera.paper(size)
    layer = face_model.to_torch(device)
    photos = _load_photos(config.photo_data, size)
    train_ids, held_ids = _split(len(photos), config.holdout_every)
    if len(train_ids) < config.batch_size * world:
        raise InvalidInputError(f"{config.photo_data} holds {len(train_ids)} training faces; "
                                f"a step needs {config.batch_size * world}")
    snap_ids = (held_ids if len(held_ids) else train_ids)[:config.snapshot_count]

    w = config.loss_weights
    recognizer = (_load_recognizer(config.recognizer, device)
                  if (w.identity or config.identity_feature) else None)
    feature_dim = int(regressor.backbone.out_features)
    if config.identity_feature and recognizer is not None:
        feature_dim += int(getattr(recognizer, "embedding_dim", 0) or
                           recognizer(torch.zeros(1, 3, size, size, device=device)).shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = FineTextureNet(face_model.graph, config.net_config(),
                             feature_dim=feature_dim).to(device)
        critic = PatchDiscriminator().to(device) if w.adversarial else None
    fc = {id(p) for p in _fc_params(net)}
    opt = torch.optim.Adam([
        {"params": [p for p in net.parameters() if id(p) in fc],
         "weight_decay": config.fc_weight_decay},
        {"params": [p for p in net.parameters() if id(p) not in fc], "weight_decay": 0.0}],
        lr=config.lr)
    critic_opt = (torch.optim.Adam(critic.parameters(), lr=config.critic_lr, betas=(0.5, 0.9))
                  if critic is not None else None)
    mirror = (torch.from_numpy(mirror_vertex_ids(face_model.mean_shape)).to(device)
              if w.symmetry else None)
    skin_region = face_model.regions.get("skin", face_model.regions.get("face"))
    skin_ids = (torch.as_tensor(np.asarray(skin_region, np.int64), device=device)
                if w.albedo_variance and skin_region is not None else None)

    start, history = 0, []
    if resume and ckpt.is_file() and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("version") != _STATE_VERSION:
            raise InvalidInputError(f"{state_path} has state version {state.get('version')}; "
                                    "start over with --no-resume")
        bad = _config_mismatch(json.loads(state["config"]), config.to_json())
        if bad:
            raise InvalidInputError(f"the checkpoint in {ckpt_dir} was trained with other "
                                    f"{bad}; use another out_dir or start over with --no-resume")
        loaded, meta = load_texture_nets(ckpt, face_model)
        if meta.get("step") != state["step"]:
            raise InvalidInputError(f"{ckpt} and {state_path} disagree on the step; start "
                                    "over with --no-resume")
        net.load_state_dict(loaded.state_dict())
        opt.load_state_dict(state["optimizer"])
        if critic is not None and "critic" in state:
            critic.load_state_dict(state["critic"])
            critic_opt.load_state_dict(state["critic_optimizer"])
        start = int(state["step"])
        history = [dict(h) for h in json.loads(state["history"])]
    stop = config.steps if stop_after is None else min(config.steps, stop_after)

    gen: nn.Module = net
    if world > 1:
        gen = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)  # the graph tables never change
    writer = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start if start else None)
    meta = {"face_model": face_model.name, "face_model_sha256": model_hash(face_model),
            "feature_dim": feature_dim, "identity_feature": bool(
                config.identity_feature and recognizer is not None),
            "recognizer": config.recognizer, "regressor_sha256": _file_sha256(
                Path(config.regressor)), "image_size": size}

    def save(step: int) -> None:
        save_texture_nets(net, ckpt, meta={**meta, "step": step})
        tmp = state_path.with_suffix(".tmp")
        st = {"version": _STATE_VERSION, "step": step, "optimizer": opt.state_dict(),
              "config": json.dumps(config.to_json()), "history": json.dumps(history)}
        if critic is not None:
            st["critic"] = critic.state_dict()
            st["critic_optimizer"] = critic_opt.state_dict()
        torch.save(st, tmp)
        os.replace(tmp, state_path)

    snap = _stack(photos, snap_ids, device)

    def stage_of(batch: Mapping[str, torch.Tensor]) -> TextureStage:
        return texture_stage(regressor, layer, camera, batch["image"], batch["skin_mask"],
                             recognizer=recognizer,
                             identity_feature=meta["identity_feature"])

    def snapshot(step: int) -> None:
        net.eval()
        with torch.no_grad():
            st = stage_of(snap)
            fine = net(st.feature, st.refiner_input).fine
            grid = _snapshot(st, _render(st, layer, camera, fine), layer, camera, fine)
        net.train()
        _write_png(out / "snapshots" / f"step_{step:06d}.png", grid)
        writer.add_image("snapshot", grid, step, dataformats="HWC")

    bar = None
    if progress and main and stop > start:
        from tqdm import tqdm

        bar = tqdm(total=stop - start, desc="train texture", unit="step", file=sys.stderr,
                   dynamic_ncols=True)
    window = _LossWindow()
    step = start
    net.train()
    gp_gen = torch.Generator(device="cpu")
    try:
        while step < stop:
            rng = np.random.default_rng([config.seed, step])
            ids = rng.choice(train_ids, size=config.batch_size * world, replace=False)
            ids = ids[rank * config.batch_size:(rank + 1) * config.batch_size]
            batch = _stack(photos, ids, device)
            stage = stage_of(batch)
            decay = config.lr_decay ** (step // max(config.lr_decay_every, 1))
            for g in opt.param_groups:
                g["lr"] = config.lr * decay
            weights = _scaled_weights(config, step)
            log_extra: dict[str, float] = {}
            fine = gen(stage.feature, stage.refiner_input).fine
            render = _render(stage, layer, camera, fine)  # reused by the critic steps
            if critic is not None and weights.adversarial:
                for g in critic_opt.param_groups:
                    g["lr"] = config.critic_lr * decay
                real = stage.photo.permute(0, 3, 1, 2)
                fake = render.image.detach().permute(0, 3, 1, 2)
                gp_gen.manual_seed(config.seed * 1_000_003 + step)
                for _ in range(config.critic_steps):
                    gp = wgan_gp_gradient_penalty(critic, real, fake, generator=gp_gen)
                    c_loss = wgan_critic_loss(critic(real), critic(fake)) \
                        + config.loss_weights.gradient_penalty * gp
                    critic_opt.zero_grad(set_to_none=True)
                    c_loss.backward()
                    critic_opt.step()
                log_extra["critic"] = float(c_loss.detach())
                log_extra["gradient_penalty"] = float(gp.detach())
                for p in critic.parameters():
                    p.requires_grad_(False)
            terms, _ = generator_terms(stage, fine, layer, camera, weights,
                                       recognizer=recognizer, critic=critic, mirror=mirror,
                                       skin_ids=skin_ids, render=render)
            if critic is not None:
                for p in critic.parameters():
                    p.requires_grad_(True)
            total, log = combine(terms, weights) if terms else (
                fine.sum() * 0.0, {"total": torch.zeros(())})
            if not torch.isfinite(total):
                raise InvalidInputError(f"the texture loss became {float(total)} at step {step}")
            opt.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            opt.step()
            step += 1
            window.add({**log, **log_extra})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(log['total']):.4g}", refresh=False)
            if step % config.log_every == 0 or step == stop:
                history.append(window.flush(step, config.lr * decay, writer if main else None))
            if not main:
                continue
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
        _write_png(out / "loss_curve.png", _loss_curve(
            [{k: v for k, v in h.items() if k != "critic"} for h in history]))
        writer.close()
        last = history[-1] if history else {}
        metrics = {"step": step, "steps": config.steps, "finished": step >= config.steps,
                   "train_loss": {k: v for k, v in last.items() if k not in ("step", "lr")},
                   "face_model": face_model.name, "train_faces": int(len(train_ids)),
                   "held_out_faces": int(len(held_ids)),
                   "elapsed_s": time.perf_counter() - t0, "device": str(device),
                   "world_size": world}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return TextureTrainResult(step=step, start_step=start, checkpoint=ckpt, out_dir=out,
                              metrics=metrics, history=tuple(history),
                              elapsed_s=time.perf_counter() - t0)

