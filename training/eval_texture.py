"""``facecraft eval texture``: the paper's ablation table on held-out photos.

For each texture run (a folder written by :func:`~facecraft.training.train_texture.train_texture`)
and for the coarse 3DMM texture, every held-out face of the runs' prepared photo folder is
rendered with the frozen regressor's shape, pose and lighting, composited over the photo, and
compared with the photo inside the face mask (projection mask x skin mask):

* PSNR (dB) and SSIM inside the mask (:func:`~facecraft.training.losses.psnr` /
  :func:`~facecraft.training.losses.ssim`);
* identity similarity: cosine of the recognizer's embeddings of the photo and of the render over
  it (the paper used LightCNN and evoLVe; the recognizer used is named in the report).

Writes ``table.md`` (Markdown), ``report.json`` and ``contact_sheet.png`` (per face: photo |
coarse render | each run's render | the last run's unlit fine texture).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import render_mesh

from .crop_recognizer import load_training_recognizer
from .losses import psnr, ssim
from .photo_data import PhotoFaces
from .png_files import to_u8, write_png
from .regressor import load_regressor
from .texture_config import TextureTrainConfig
from .texture_io import load_texture_nets
from .texture_stage import render_over_photo, split_holdout, stack_photos, texture_stage

__all__ = ["TextureRow", "TextureReport", "evaluate_texture", "write_texture_report"]

COARSE_ROW = "coarse 3DMM texture"


@dataclass(frozen=True)
class TextureRow:
    """One row of the table.

    Attributes:
        name: the row label (``"coarse 3DMM texture"`` or the run's name).
        psnr_db: mean PSNR inside the face mask, decibels.
        ssim: mean SSIM inside the face mask.
        identity_similarity: mean cosine similarity of photo and render embeddings (NaN when
            no recognizer is available).
        faces: faces averaged.
        run_dir: the run folder ('' for the coarse row).
    """

    name: str
    psnr_db: float
    ssim: float
    identity_similarity: float
    faces: int
    run_dir: str = ""


@dataclass(frozen=True)
class TextureReport:
    """The evaluation: rows, what was measured and on what."""

    rows: tuple[TextureRow, ...]
    recognizer: str
    photo_data: str
    held_out_faces: int
    image_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "recognizer": self.recognizer,
                "photo_data": self.photo_data, "held_out_faces": self.held_out_faces,
                "image_size": self.image_size}

    def markdown(self) -> str:
        """The table as Markdown."""
        lines = [f"| Texture | PSNR (dB) | SSIM | identity similarity ({self.recognizer}) |",
                 "|---|---:|---:|---:|"]
        for r in self.rows:
            ident = "n/a" if math.isnan(r.identity_similarity) else f"{r.identity_similarity:.3f}"
            lines.append(f"| {r.name} | {r.psnr_db:.2f} | {r.ssim:.3f} | {ident} |")
        lines.append("")
        lines.append(f"{self.held_out_faces} held-out faces from {self.photo_data}, "
                     f"{self.image_size} px crops, metrics inside projection x skin mask.")
        return "\n".join(lines) + "\n"


def _read_run(run_dir: Path) -> TextureTrainConfig:
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        raise InvalidInputError(f"{run_dir} is not a texture run folder (no config.json)")
    return TextureTrainConfig.from_json(cfg)


@torch.no_grad()
def evaluate_texture(runs: Mapping[str, str | Path], *, photo_data: str | Path | None = None,
                     holdout_every: int | None = None, recognizer: str = "dlib",
                     max_faces: int | None = None, batch_size: int = 8,
                     sheet_faces: int = 8) -> tuple[TextureReport, np.ndarray]:
    """Evaluate texture runs and the coarse texture on held-out faces.

    Args:
        runs: row name -> run folder (all trained from one regressor).
        photo_data: prepared photos (default: the first run's ``photo_data``).
        holdout_every: the held-out split (default: the first run's).
        recognizer: identity network spec (``"dlib"``, ``"none"``, ...).
        max_faces: evaluate at most this many held-out faces.
        batch_size: faces per forward pass.
        sheet_faces: faces in the contact sheet.

    Returns:
        ``(report, contact_sheet)``, the sheet an (H, W, 3) uint8 RGB image.
    """
    if not runs:
        raise InvalidInputError("give at least one texture run folder")
    dirs = {name: Path(d) for name, d in runs.items()}
    configs = {name: _read_run(d) for name, d in dirs.items()}
    first = next(iter(configs.values()))
    regs = {c.regressor for c in configs.values()}
    if len(regs) != 1:
        raise InvalidInputError(f"the runs use different regressors {sorted(regs)}; the table "
                                "compares textures on one shape")
    photo_data = photo_data or first.photo_data
    holdout = first.holdout_every if holdout_every is None else holdout_every
    device = torch.device("cpu")
    regressor = load_regressor(first.regressor).eval()
    model = resolve_model(regressor.extra_meta.get("face_model", "starter"))
    size = regressor.input_spec.crop_size
    camera = PerspectiveCamera.paper(size)
    layer = model.to_torch(device)
    photos = PhotoFaces(photo_data, image_size=size)
    train_ids, held_ids = split_holdout(len(photos), holdout)
    ids = held_ids if len(held_ids) else train_ids
    if max_faces:
        ids = ids[:max_faces]
    if not len(ids):
        raise InvalidInputError(f"{photo_data} holds no faces to evaluate")
    rec = load_training_recognizer(recognizer, device=device)
    nets = {}
    for name, d in dirs.items():
        net, meta = load_texture_nets(d / "checkpoints" / "texture.safetensors", model)
        nets[name] = (net, meta)

    sums: dict[str, dict[str, list[float]]] = {n: {"psnr": [], "ssim": [], "id": []}
                                               for n in [COARSE_ROW, *dirs]}
    sheet_rows: list[np.ndarray] = []
    for start in range(0, len(ids), batch_size):
        batch = stack_photos(photos, ids[start:start + batch_size], device)
        stage = texture_stage(regressor, layer, camera, batch["image"], batch["skin_mask"],
                              recognizer=rec, identity_feature=False)
        target = stage.identity
        renders = {COARSE_ROW: torch.where(stage.coarse_render.mask[..., None],
                                           stage.coarse_render.image, stage.photo)}
        unlit = None
        for name, (net, meta) in nets.items():
            feat = stage.backbone_feature
            if meta.get("identity_feature"):
                feat = torch.cat([feat, stage.identity], dim=1)
            fine = net(feat, stage.refiner_input).fine
            renders[name] = render_over_photo(stage, layer, camera, fine).image
            unlit = render_mesh(stage.verts, layer.triangles, fine, camera=camera,
                                pose=stage.coeffs.pose()).image
        for name, img in renders.items():
            sums[name]["psnr"] += psnr(img, stage.photo, stage.face_mask).tolist()
            sums[name]["ssim"] += ssim(img, stage.photo, stage.face_mask).tolist()
            if rec is not None:
                emb = rec(img.permute(0, 3, 1, 2))
                sums[name]["id"] += torch.nn.functional.cosine_similarity(
                    emb, target, dim=1).tolist()
        for i in range(stage.photo.shape[0]):
            if len(sheet_rows) >= sheet_faces:
                break
            cols = [stage.photo[i]] + [renders[n][i] for n in renders] + [unlit[i]]
            sheet_rows.append(np.concatenate([to_u8(c.permute(2, 0, 1)) for c in cols], 1))

    def mean(v: Sequence[float]) -> float:
        a = np.asarray(v, np.float64)
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else math.nan

    rows = tuple(TextureRow(name=n, psnr_db=mean(s["psnr"]), ssim=mean(s["ssim"]),
                            identity_similarity=mean(s["id"]), faces=len(s["psnr"]),
                            run_dir=str(dirs.get(n, ""))) for n, s in sums.items())
    report = TextureReport(rows=rows, recognizer=recognizer if rec is not None else "none",
                           photo_data=str(photo_data), held_out_faces=int(len(ids)),
                           image_size=size)
    return report, _label_sheet(np.concatenate(sheet_rows, 0), ["photo", *renders, "unlit"],
                                size)


def _label_sheet(sheet: np.ndarray, labels: Sequence[str], cell: int) -> np.ndarray:
    """Add a header strip naming each column."""
    import cv2

    strip = np.full((22, sheet.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(labels):
        cv2.putText(strip, text[:max(4, cell // 7)], (i * cell + 3, 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, sheet], 0)


def write_texture_report(report: TextureReport, sheet: np.ndarray, out_dir: str | Path
                         ) -> dict[str, Path]:
    """Write ``table.md``, ``report.json`` and ``contact_sheet.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "table.md", "report": out / "report.json",
             "contact_sheet": out / "contact_sheet.png"}
    paths["table"].write_text(report.markdown())
    paths["report"].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    write_png(paths["contact_sheet"], sheet)
    return paths
