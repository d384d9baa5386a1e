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

The config and its constants live in :mod:`facecraft.training.regressor_config`, the loss
terms in :mod:`facecraft.training.regressor_terms`, the validation in
:mod:`facecraft.training.regressor_metrics`; the run's files, cadence, ranks and loss log come
from the training toolkit (:mod:`~facecraft.training.run_files`,
:mod:`~facecraft.training.cadence`, :mod:`~facecraft.training.distributed`,
:mod:`~facecraft.training.loss_log`).

Determinism and resume: the weights are initialised from ``config.seed`` inside
:func:`torch.random.fork_rng` (the caller's global RNG state is restored), the data depend only
on the step, and the learning rate is a pure function of the step, so resuming from
``last.*`` continues the run bit for bit on the same device (CPU tested).

Distributed: launched under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment),
:func:`train_regressor` joins the default process group
(:func:`~facecraft.training.distributed.join_ranks`: gloo on CPU, nccl on CUDA) unless the
caller already did, wraps the regressor in ``DistributedDataParallel`` and gives each rank an
equal slice of every step's batch (``batch_size`` is the global batch); only rank 0 writes
files, and the losses it logs are those of its own slice (gradients are averaged by DDP).
BatchNorm statistics stay per rank (no SyncBatchNorm); rank 0's are saved. Joining the
process group is process-wide state, the one exception to the rule that this module leaves the
process as it found it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.render.renderer import render_mesh
from facecraft.training.cadence import Cadence
from facecraft.training.crop_recognizer import load_training_recognizer
from facecraft.training.distributed import join_ranks
from facecraft.training.loss_log import LossWindow, loss_curve
from facecraft.training.losses import combine
from facecraft.training.photo_data import PhotoFaces
from facecraft.training.png_files import to_u8, write_png
from facecraft.training.regressor import (
    CoeffLayout,
    CoeffRegressor,
    Coeffs3DMM,
    InputSpec,
    coeff_regressor,
    load_regressor,
    save_regressor,
)
from facecraft.training.regressor_config import (
    DEFAULT_TRAIN_LOSS_WEIGHTS,
    LR_SCHEDULES,
    PHOTO_LOG,
    PHOTO_RECOGNIZERS,
    RegressorTrainConfig,
)
from facecraft.training.regressor_metrics import evaluate_regressor, procrustes_align
from facecraft.training.regressor_terms import PhotoTerms, RegressorTerms
from facecraft.training.run_files import (
    RunFolder,
    open_run,
    progress_bar,
    read_train_state,
    run_metrics,
    save_train_state,
    write_metrics,
)
from facecraft.training.synthetic import SyntheticFaces
from facecraft.training.train_config import check_int

__all__ = [
    "RegressorTrainConfig",
    "TrainResult",
    "PhotoSteps",
    "build_regressor",
    "train_regressor",
    "evaluate_regressor",
    "procrustes_align",
    "DEFAULT_TRAIN_LOSS_WEIGHTS",
    "LR_SCHEDULES",
    "PHOTO_RECOGNIZERS",
]

_CHECKPOINT = "last.safetensors"
_STATE = "last.state.pt"
_STATE_VERSION = 1


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


class PhotoSteps:
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


# ------------------------------------------------------------------------------ training
def build_regressor(config: RegressorTrainConfig, model: MorphableModel,
                    faces: SyntheticFaces) -> CoeffRegressor:
    """The untrained regressor of a run: ``config.seed``'s weights (drawn inside
    :func:`torch.random.fork_rng`, so the caller's RNG state is kept), ``model``'s layout and the
    synthetic faces' base translation as the translation offset."""
    layout = CoeffLayout.from_model(model)
    offset = tuple(float(x) for x in faces.base_translation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return coeff_regressor(layout=layout, backbone=config.backbone,
                               input_spec=InputSpec(crop_size=config.image_size),
                               translation_offset=offset, **config.backbone_kwargs)


class _VectorNet(nn.Module):
    """The regressor's raw vector output as ``forward`` (what DDP wraps)."""

    def __init__(self, regressor: CoeffRegressor) -> None:
        super().__init__()
        self.regressor = regressor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.regressor.forward_vector(images)


@torch.no_grad()
def _snapshot(regressor: CoeffRegressor, terms: RegressorTerms, images: torch.Tensor) -> np.ndarray:
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
    rows = [np.concatenate([to_u8(a), to_u8(b)], axis=1) for a, b in zip(images, over,
                                                                           strict=True)]
    return np.concatenate(rows, axis=0)


class _RegressorRun:
    """One call of :func:`train_regressor`: what it builds before the first step, the step
    itself, and the run's outputs (rank 0)."""

    def __init__(self, config: RegressorTrainConfig, resume: bool) -> None:
        self.config = config
        self.ranks = join_ranks(config.device)
        world, device = self.ranks.world, self.ranks.device
        if config.batch_size % world:
            raise InvalidInputError(f"batch_size {config.batch_size} must be a multiple of the "
                                    f"{world} processes")
        self.files = RunFolder.of(config.out_dir, _CHECKPOINT, _STATE)
        self.face_model = resolve_model(config.model)
        settings = config.synthetic_settings()
        if config.loss_weights.photometric and self.face_model.albedo_mean is None:
            raise InvalidInputError(f"face model {self.face_model.name!r} has no albedo, so the "
                                    "photometric loss cannot be computed; set "
                                    "loss_weights.photometric to 0")
        self.photo_weights = config.photo_loss_weights()
        self.photo_faces = _photo_faces(config, self.face_model, world)
        recognizer = (load_training_recognizer(config.photo_recognizer,
                                               crop_size=config.image_size, device=device)
                      if self.photo_faces is not None and self.photo_weights.identity else None)
        self.faces = SyntheticFaces(self.face_model, settings, length=config.train_length,
                                    seed=config.seed)
        self.regressor = build_regressor(config, self.face_model, self.faces).to(device)
        self.regressor.train()
        self.optimizer, self.lr_scales = _optimizer(config, self.regressor)
        self.start, self.history = (self._resume() if resume and self.files.has_checkpoint()
                                    else (0, []))
        self.model_net: nn.Module = _VectorNet(self.regressor)
        if world > 1:
            self.model_net = nn.parallel.DistributedDataParallel(
                self.model_net, device_ids=[device.index] if device.type == "cuda" else None)
        self.writer = (open_run(self.files, config.to_json(), self.start) if self.ranks.main
                       else None)
        self.terms = RegressorTerms(self.face_model, config.image_size, device)
        self.photo_terms = PhotoTerms(self.terms, recognizer)
        self._snapshot_inputs(settings)

    def _snapshot_inputs(self, settings: Any) -> None:
        config, device, model = self.config, self.ranks.device, self.face_model
        pf = self.photo_faces
        self.snap_photos = (pf.batch(range(min(config.snapshot_count, len(pf))))["image"]
                            .to(device) if pf is not None else None)
        self.val_faces = (SyntheticFaces(model, settings, length=config.val_length,
                                         seed=config.val_seed) if config.val_length else None)
        self.snap_images = SyntheticFaces(model, settings, length=config.snapshot_count,
                                          seed=config.val_seed + 1).render_batch(
            range(config.snapshot_count)).image.to(device)

    def _resume(self) -> tuple[int, list[dict[str, float]]]:
        files = self.files
        state = read_train_state(files, version=_STATE_VERSION,
                                 mismatch=self.config.resume_mismatch)
        loaded = load_regressor(files.weights)
        if loaded.extra_meta.get("step") != state["step"]:
            raise InvalidInputError(f"{files.weights} (step {loaded.extra_meta.get('step')}) and "
                                    f"{files.state} (step {state['step']}) disagree; a run was "
                                    "interrupted while saving: start over with --no-resume")
        self.regressor.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["step"]), state["history"]

    # ------------------------------------------------------------------------ outputs
    def save(self, step: int) -> None:
        """Write ``last.safetensors`` and ``last.state.pt`` at ``step``."""
        self.files.checkpoints.mkdir(parents=True, exist_ok=True)
        save_regressor(self.regressor, self.files.weights, extra_meta={
            "step": step, "face_model": self.face_model.name,
            "trainer": "synthetic_supervised" + ("+photo_weak" if self.photo_faces is not None
                                                 else "")})
        save_train_state(self.files.state, version=_STATE_VERSION, step=step,
                         optimizer=self.optimizer, config=self.config.to_json(),
                         history=self.history)

    def snapshot(self, step: int) -> None:
        """Write the snapshot PNGs (and TensorBoard images) of ``step``."""
        snaps = self.files.out / "snapshots"
        grid = _snapshot(self.regressor, self.terms, self.snap_images)
        write_png(snaps / f"step_{step:06d}.png", grid)
        self.writer.add_image("snapshot", grid, step, dataformats="HWC")
        if self.snap_photos is not None:
            grid = _snapshot(self.regressor, self.terms, self.snap_photos)
            write_png(snaps / f"photos_step_{step:06d}.png", grid)
            self.writer.add_image("snapshot_photos", grid, step, dataformats="HWC")

    def validate(self, step: int) -> dict[str, float]:
        """Validation metrics at ``step`` (also TensorBoard scalars); ``{}`` without a set."""
        val = (evaluate_regressor(self.regressor, self.val_faces)
               if self.val_faces is not None else {})
        for k, v in val.items():
            self.writer.add_scalar(f"val/{k}", v, step)
        return val

    # ------------------------------------------------------------------------- steps
    def train(self, stop: int, progress: bool) -> int:
        """Train from ``self.start`` up to step ``stop``; returns the step reached."""
        config, ranks = self.config, self.ranks
        cadence = Cadence(stop=stop, log_every=config.log_every,
                          snapshot_every=config.snapshot_every,
                          checkpoint_every=config.checkpoint_every, val_every=config.val_every)
        bar = progress_bar(progress and ranks.main, stop - self.start, "train regressor")
        data = _StepBatches(self.faces, config.batch_size, ranks.rank, ranks.world)
        photos = (PhotoSteps(self.photo_faces, config.photo_batch_size, ranks.rank, ranks.world,
                             config.seed) if self.photo_faces is not None else None)
        batches = (_batches(data, self.start, stop, config.num_workers)
                   if config.loss_weights.active() else iter([None] * (stop - self.start)))
        window = LossWindow()
        step = self.start
        try:
            for batch in batches:
                photo = (photos(step // config.photo_every) if photos is not None
                         and step % config.photo_every == 0 else None)
                lr = config.lr_at(step)
                log = self._step(batch, photo, lr, step)
                step += 1
                window.add(log)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(log['total']):.4g}", refresh=False)
                if cadence.log(step):
                    self.history.append(window.flush(step, lr, self.writer))
                if not ranks.main:
                    continue
                if cadence.validate(step):
                    self.validate(step)
                if cadence.snapshot(step):
                    self.snapshot(step)
                if cadence.checkpoint(step):
                    self.save(step)
        finally:
            if bar is not None:
                bar.close()
        return step

    def _step(self, batch: Mapping[str, torch.Tensor] | None,
              photo: Mapping[str, torch.Tensor] | None, lr: float, step: int
              ) -> dict[str, torch.Tensor]:
        """One optimisation step on a synthetic and/or a photo batch; returns its log."""
        config, device = self.config, self.ranks.device
        for group, scale in zip(self.optimizer.param_groups, self.lr_scales, strict=True):
            group["lr"] = lr * scale
        parts = [(kind, {k: v.to(device, non_blocking=True) for k, v in b.items()})
                 for kind, b in (("synthetic", batch), ("photo", photo)) if b is not None]
        # one forward pass over the synthetic and photo images (shared BatchNorm batch)
        vectors = self.model_net(torch.cat([b["image"] for _, b in parts])).split(
            [len(b["image"]) for _, b in parts])
        total, log = None, {}
        for (kind, b), vec in zip(parts, vectors, strict=True):
            pred = Coeffs3DMM.from_vector(vec, self.regressor.layout)
            if kind == "synthetic":
                part, part_log = combine(self.terms(pred, b, config.loss_weights),
                                         config.loss_weights)
                log.update({k: v for k, v in part_log.items() if k != "total"})
            else:
                part, part_log = combine(self.photo_terms(pred, b, self.photo_weights),
                                         self.photo_weights)
                log.update({PHOTO_LOG[k]: v for k, v in part_log.items() if k != "total"})
            total = part if total is None else total + part
        log["total"] = total.detach()
        if not torch.isfinite(total):
            raise InvalidInputError(f"the loss became {float(total)} at step {step}; lower "
                                    "lr or enable grad_clip")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.regressor.parameters(), config.grad_clip)
        self.optimizer.step()
        return log

    def finish(self, step: int, t0: float) -> dict[str, Any]:
        """Rank 0's last checkpoint, snapshot, loss curve, validation and ``metrics.json``."""
        if step > self.start or not self.files.weights.is_file():
            self.save(step)
            self.snapshot(step)
        write_png(self.files.out / "loss_curve.png", loss_curve(self.history))
        val = self.validate(step)
        self.writer.close()
        metrics = run_metrics(step=step, steps=self.config.steps, history=self.history,
                              val=val, face_model=self.face_model.name,
                              elapsed_s=time.perf_counter() - t0, device=self.ranks.device,
                              world=self.ranks.world)
        write_metrics(self.files, metrics)
        return metrics


def _photo_faces(config: RegressorTrainConfig, model: MorphableModel,
                 world: int) -> PhotoFaces | None:
    """The run's real photos (``None`` without photo terms), checked against the model."""
    if not config.photo_active():
        return None
    weights = config.photo_loss_weights()
    if (weights.photometric or weights.identity) and model.albedo_mean is None:
        raise InvalidInputError(f"face model {model.name!r} has no albedo, so photos "
                                "cannot be rendered; set photo_photometric and photo_identity "
                                "to 0")
    if config.photo_batch_size % world:
        raise InvalidInputError(f"photo_batch_size {config.photo_batch_size} must be a multiple "
                                f"of the {world} processes")
    faces = PhotoFaces(config.photo_data, image_size=config.image_size)
    if not len(faces):
        raise InvalidInputError(f"{config.photo_data} holds no faces (see the skipped list in "
                                "its manifest.json); prepare more photos")
    return faces


def _optimizer(config: RegressorTrainConfig, regressor: CoeffRegressor
               ) -> tuple[torch.optim.Optimizer, list[float]]:
    """AdamW over three groups (backbone weights with decay, backbone biases and norms, the
    head) and each group's learning-rate scale."""
    decay, no_decay = [], []
    for p in regressor.backbone.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [({"params": decay, "weight_decay": config.weight_decay}, 1.0),
              ({"params": no_decay, "weight_decay": 0.0}, 1.0),
              ({"params": list(regressor.head.parameters()), "weight_decay": 0.0},
               config.head_lr_scale)]
    optimizer = torch.optim.AdamW([g for g, _ in groups], lr=config.lr)
    return optimizer, [scale for _, scale in groups]


def train_regressor(config: RegressorTrainConfig, *, resume: bool = True,
                    progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train a coefficient regressor on synthetic faces (see the module docstring).

    Args:
        config: the run.
        resume: continue from ``out_dir/checkpoints/last.*`` when present (its config must
            match, except the fields in
            :data:`~facecraft.training.regressor_config.RESUMABLE_CHANGES` such as ``steps``);
            ``False`` starts over and overwrites the run's files.
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
        check_int("stop_after", stop_after, 0)
    t0 = time.perf_counter()
    run = _RegressorRun(config, resume)
    stop = config.steps if stop_after is None else min(config.steps, stop_after)
    step = run.train(stop, progress)
    metrics = run.finish(step, t0) if run.ranks.main else {}
    return TrainResult(step=step, start_step=run.start, checkpoint=run.files.weights,
                       out_dir=run.files.out, metrics=metrics, history=tuple(run.history),
                       elapsed_s=time.perf_counter() - t0)
