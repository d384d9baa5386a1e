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

The config and the ablation rows live in :mod:`facecraft.training.texture_config`, the frozen
front end and the generator terms in :mod:`facecraft.training.texture_stage`, the checkpoint
format in :mod:`facecraft.training.texture_io`; this module keeps the loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.models.model_file import model_hash
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import RenderOutput, render_mesh

from .cadence import Cadence
from .crop_recognizer import load_training_recognizer
from .distributed import join_ranks
from .loss_log import LossWindow, loss_curve
from .losses import LossWeights, combine, wgan_critic_loss, wgan_gp_gradient_penalty
from .photo_data import PhotoFaces
from .png_files import to_u8, write_png
from .regressor import load_regressor
from .run_files import (
    RunFolder,
    open_run,
    progress_bar,
    read_train_state,
    run_metrics,
    save_train_state,
    write_metrics,
)
from .texture_config import ABLATION_ROWS, TextureTrainConfig, ablation_configs
from .texture_io import file_sha256, load_texture_nets, save_texture_nets
from .texture_nets import FineTextureNet, PatchDiscriminator
from .texture_stage import (
    TextureStage,
    generator_terms,
    mirror_vertex_ids,
    render_over_photo,
    split_holdout,
    stack_photos,
    texture_stage,
)

__all__ = [
    "TextureTrainConfig",
    "TextureStage",
    "TextureTrainResult",
    "ABLATION_ROWS",
    "ablation_configs",
    "mirror_vertex_ids",
    "texture_stage",
    "generator_terms",
    "train_texture",
    "save_texture_nets",
    "load_texture_nets",
]

_CHECKPOINT = "texture.safetensors"
_STATE = "state.pt"
_STATE_VERSION = 1


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
        rows.append(np.concatenate([to_u8(c.permute(2, 0, 1)) for c in cols], axis=1))
    return np.concatenate(rows, axis=0)


class _TextureRun:
    """One call of :func:`train_texture`: the frozen front end, the nets and optimisers, the
    steps, and the run's outputs (rank 0)."""

    def __init__(self, config: TextureTrainConfig, resume: bool) -> None:
        self.config = config
        self.ranks = join_ranks(config.device)
        device = self.ranks.device
        self.files = RunFolder.of(config.out_dir, _CHECKPOINT, _STATE)
        self.regressor = load_regressor(config.regressor).to(device).eval()
        for p in self.regressor.parameters():
            p.requires_grad_(False)
        self.face_model = resolve_model(self.regressor.extra_meta.get("face_model", "starter"))
        if self.face_model.albedo_mean is None:
            raise InvalidInputError(f"face model {self.face_model.name!r} has no albedo model, "
                                    "so there is no coarse texture T; build one with "
                                    "`facecraft train albedo` first")
        self.size = self.regressor.input_spec.crop_size
        self.camera = PerspectiveCamera.paper(self.size)
        self.layer = self.face_model.to_torch(device)
        self._photos()
        w = config.loss_weights
        self.recognizer = (load_training_recognizer(config.recognizer, device=device)
                           if (w.identity or config.identity_feature) else None)
        self._nets()
        self.start, self.history = (self._resume() if resume and self.files.has_checkpoint()
                                    else (0, []))
        self.gen: nn.Module = self.net
        if self.ranks.world > 1:
            self.gen = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False)  # the graph tables never change
        self.writer = (open_run(self.files, config.to_json(), self.start) if self.ranks.main
                       else None)
        self.meta = {"face_model": self.face_model.name,
                     "face_model_sha256": model_hash(self.face_model),
                     "feature_dim": self.feature_dim, "identity_feature": bool(
                         config.identity_feature and self.recognizer is not None),
                     "recognizer": config.recognizer,
                     "regressor_sha256": file_sha256(Path(config.regressor)),
                     "image_size": self.size}
        self.snap = stack_photos(self.photos, self.snap_ids, device)

    def _photos(self) -> None:
        config, world = self.config, self.ranks.world
        self.photos = PhotoFaces(config.photo_data, image_size=self.size)
        self.train_ids, self.held_ids = split_holdout(len(self.photos), config.holdout_every)
        if len(self.train_ids) < config.batch_size * world:
            raise InvalidInputError(f"{config.photo_data} holds {len(self.train_ids)} training "
                                    f"faces; a step needs {config.batch_size * world}")
        ids = self.held_ids if len(self.held_ids) else self.train_ids
        self.snap_ids = ids[:config.snapshot_count]

    def _nets(self) -> None:
        """The fine-texture net, the critic, their optimisers and the optional term inputs."""
        config, device, model = self.config, self.ranks.device, self.face_model
        w, rec = config.loss_weights, self.recognizer
        self.feature_dim = int(self.regressor.backbone.out_features)
        if config.identity_feature and rec is not None:
            zeros = torch.zeros(1, 3, self.size, self.size, device=device)
            self.feature_dim += int(getattr(rec, "embedding_dim", 0) or rec(zeros).shape[1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = FineTextureNet(model.graph, config.net_config(),
                                      feature_dim=self.feature_dim).to(device)
            self.critic = PatchDiscriminator().to(device) if w.adversarial else None
        fc = {id(p) for p in _fc_params(self.net)}
        self.opt = torch.optim.Adam([
            {"params": [p for p in self.net.parameters() if id(p) in fc],
             "weight_decay": config.fc_weight_decay},
            {"params": [p for p in self.net.parameters() if id(p) not in fc],
             "weight_decay": 0.0}], lr=config.lr)
        self.critic_opt = (torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr,
                                            betas=(0.5, 0.9)) if self.critic is not None
                           else None)
        self.mirror = (torch.from_numpy(mirror_vertex_ids(model.mean_shape)).to(device)
                       if w.symmetry else None)
        skin_region = model.regions.get("skin", model.regions.get("face"))
        self.skin_ids = (torch.as_tensor(np.asarray(skin_region, np.int64), device=device)
                         if w.albedo_variance and skin_region is not None else None)

    def _resume(self) -> tuple[int, list[dict[str, float]]]:
        files = self.files
        state = read_train_state(files, version=_STATE_VERSION,
                                 mismatch=self.config.resume_mismatch)
        loaded, meta = load_texture_nets(files.weights, self.face_model)
        if meta.get("step") != state["step"]:
            raise InvalidInputError(f"{files.weights} and {files.state} disagree on the step; "
                                    "start over with --no-resume")
        self.net.load_state_dict(loaded.state_dict())
        self.opt.load_state_dict(state["optimizer"])
        if self.critic is not None and "critic" in state:
            self.critic.load_state_dict(state["critic"])
            self.critic_opt.load_state_dict(state["critic_optimizer"])
        return int(state["step"]), state["history"]

    # ------------------------------------------------------------------------ outputs
    def save(self, step: int) -> None:
        """Write ``texture.safetensors`` and ``state.pt`` at ``step``."""
        save_texture_nets(self.net, self.files.weights, meta={**self.meta, "step": step})
        extra = ({"critic": self.critic.state_dict(),
                  "critic_optimizer": self.critic_opt.state_dict()}
                 if self.critic is not None else {})
        save_train_state(self.files.state, version=_STATE_VERSION, step=step, optimizer=self.opt,
                         config=self.config.to_json(), history=self.history, **extra)

    def stage_of(self, batch: Mapping[str, torch.Tensor]) -> TextureStage:
        """The frozen front end on a stacked photo batch."""
        return texture_stage(self.regressor, self.layer, self.camera, batch["image"],
                             batch["skin_mask"], recognizer=self.recognizer,
                             identity_feature=self.meta["identity_feature"])

    def snapshot(self, step: int) -> None:
        """Write the snapshot PNG (and TensorBoard image) of ``step``."""
        self.net.eval()
        with torch.no_grad():
            st = self.stage_of(self.snap)
            fine = self.net(st.feature, st.refiner_input).fine
            grid = _snapshot(st, render_over_photo(st, self.layer, self.camera, fine),
                             self.layer, self.camera, fine)
        self.net.train()
        write_png(self.files.out / "snapshots" / f"step_{step:06d}.png", grid)
        self.writer.add_image("snapshot", grid, step, dataformats="HWC")

    # ------------------------------------------------------------------------- steps
    def train(self, stop: int, progress: bool) -> int:
        """Train from ``self.start`` up to step ``stop``; returns the step reached."""
        config, ranks = self.config, self.ranks
        cadence = Cadence(stop=stop, log_every=config.log_every,
                          snapshot_every=config.snapshot_every,
                          checkpoint_every=config.checkpoint_every)
        bar = progress_bar(progress and ranks.main, stop - self.start, "train texture")
        window = LossWindow()
        step = self.start
        self.net.train()
        gp_gen = torch.Generator(device="cpu")
        try:
            while step < stop:
                decay = config.lr_decay ** (step // max(config.lr_decay_every, 1))
                log = self._step(step, decay, gp_gen)
                step += 1
                window.add(log)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(log['total']):.4g}", refresh=False)
                if cadence.log(step):
                    self.history.append(window.flush(step, config.lr * decay, self.writer))
                if not ranks.main:
                    continue
                if cadence.snapshot(step):
                    self.snapshot(step)
                if cadence.checkpoint(step):
                    self.save(step)
        finally:
            if bar is not None:
                bar.close()
        return step

    def _step(self, step: int, decay: float, gp_gen: torch.Generator) -> dict[str, Any]:
        """One generator step (and its critic steps); returns the step's log."""
        config, ranks = self.config, self.ranks
        rng = np.random.default_rng([config.seed, step])
        ids = rng.choice(self.train_ids, size=config.batch_size * ranks.world, replace=False)
        ids = ids[ranks.rank * config.batch_size:(ranks.rank + 1) * config.batch_size]
        stage = self.stage_of(stack_photos(self.photos, ids, ranks.device))
        for g in self.opt.param_groups:
            g["lr"] = config.lr * decay
        weights = _scaled_weights(config, step)
        log_extra: dict[str, float] = {}
        fine = self.gen(stage.feature, stage.refiner_input).fine
        render = render_over_photo(stage, self.layer, self.camera, fine)  # reused by the critic
        if self.critic is not None and weights.adversarial:
            log_extra = self._critic_steps(stage, render, step, decay, gp_gen)
        terms, _ = generator_terms(stage, fine, self.layer, self.camera, weights,
                                   recognizer=self.recognizer, critic=self.critic,
                                   mirror=self.mirror, skin_ids=self.skin_ids, render=render)
        if self.critic is not None:
            for p in self.critic.parameters():
                p.requires_grad_(True)
        total, log = combine(terms, weights) if terms else (
            fine.sum() * 0.0, {"total": torch.zeros(())})
        if not torch.isfinite(total):
            raise InvalidInputError(f"the texture loss became {float(total)} at step {step}")
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), config.grad_clip)
        self.opt.step()
        return {**log, **log_extra}

    def _critic_steps(self, stage: TextureStage, render: RenderOutput, step: int, decay: float,
                      gp_gen: torch.Generator) -> dict[str, float]:
        """``critic_steps`` WGAN-GP critic updates on the photo vs the fine render; leaves the
        critic frozen for the generator's step. Returns the last critic loss and penalty."""
        config, critic, critic_opt = self.config, self.critic, self.critic_opt
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
        log = {"critic": float(c_loss.detach()), "gradient_penalty": float(gp.detach())}
        for p in critic.parameters():
            p.requires_grad_(False)
        return log

    def finish(self, step: int, t0: float) -> dict[str, Any]:
        """Rank 0's last checkpoint, snapshot, loss curve and ``metrics.json``."""
        if step > self.start or not self.files.weights.is_file():
            self.save(step)
            self.snapshot(step)
        write_png(self.files.out / "loss_curve.png", loss_curve(
            [{k: v for k, v in h.items() if k != "critic"} for h in self.history]))
        self.writer.close()
        metrics = run_metrics(step=step, steps=self.config.steps, history=self.history,
                              face_model=self.face_model.name,
                              train_faces=int(len(self.train_ids)),
                              held_out_faces=int(len(self.held_ids)),
                              elapsed_s=time.perf_counter() - t0, device=self.ranks.device,
                              world=self.ranks.world)
        write_metrics(self.files, metrics)
        return metrics


def train_texture(config: TextureTrainConfig, *, resume: bool = True, progress: bool = True,
                  stop_after: int | None = None) -> TextureTrainResult:
    """Train the fine-texture nets (see the module docstring).

    Args:
        config: the run.
        resume: continue from ``out_dir/checkpoints`` when present (same run config except
            :data:`~facecraft.training.texture_config.RESUMABLE_CHANGES`); ``False`` starts
            over.
        progress: a tqdm bar on stderr.
        stop_after: stop (checkpointing) once this step is reached.

    Raises:
        InvalidInputError: a bad config, too few photos, a checkpoint of another run.
        ModelFileError: unreadable regressor or photo data.
    """
    if not isinstance(config, TextureTrainConfig):
        raise InvalidInputError(f"expected a TextureTrainConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    run = _TextureRun(config, resume)
    stop = config.steps if stop_after is None else min(config.steps, stop_after)
    step = run.train(stop, progress)
    metrics = run.finish(step, t0) if run.ranks.main else {}
    return TextureTrainResult(step=step, start_step=run.start, checkpoint=run.files.weights,
                              out_dir=run.files.out, metrics=metrics, history=tuple(run.history),
                              elapsed_s=time.perf_counter() - t0)
