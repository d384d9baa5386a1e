"""``facecraft train``: the training command group (registered through the ``facecraft.cli``
entry-point group, see :mod:`facecraft.sdk.cli`).

``facecraft train regressor --config PATH [--out DIR] [--steps N] [--no-resume]
[--device cpu|cuda] [-q]`` runs :func:`facecraft.training.train_regressor.train_regressor`.
``facecraft train prepare PHOTOS... -o OUT [--size 224] [--min-face PX] [--max-faces N]
[--no-landmarks68] [-q] [--json]`` runs :func:`facecraft.training.photo_data.prepare_photos`
and prints its summary. Bad configs, checkpoints and input paths raise
:class:`~facecraft.sdk.errors.FaceCraftError`, which the ``facecraft`` main prints as one line
(exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

__all__ = ["register"]


def _finish_distributed(ok: bool) -> None:
    """Under torchrun: after a successful run wait for every rank (rank 0 writes the last
    checkpoint); then leave the process group, so no rank exits while its communication threads
    still run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def _cmd_train_regressor(args: argparse.Namespace) -> int:
    import torch

    from facecraft.training.train_regressor import RegressorTrainConfig, train_regressor

    config = RegressorTrainConfig.from_json(args.config)
    changes = {}
    if args.out is not None:
        changes["out_dir"] = str(args.out)
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.device is not None:
        changes["device"] = args.device
    if changes:
        config = dataclasses.replace(config, **changes)
    # An entry point may configure the process: seed the global RNGs too, for any code that
    # draws from them (the trainer itself uses its own seeded generators).
    torch.manual_seed(config.seed)
    ok = False
    try:
        result = train_regressor(config, resume=not args.no_resume, progress=not args.quiet,
                                 stop_after=args.stop_after)
        ok = True
    finally:
        _finish_distributed(ok)
    if int(os.environ.get("RANK", "0")) == 0:
        val = result.metrics.get("val", {})
        summary = {"out_dir": str(result.out_dir), "checkpoint": str(result.checkpoint),
                   "step": result.step, "start_step": result.start_step,
                   "elapsed_s": round(result.elapsed_s, 1),
                   "train_loss": result.metrics.get("train_loss", {}).get("total"),
                   "val_vertex_error_mm": val.get("vertex_error_mm"),
                   "val_landmark_nme": val.get("landmark_nme")}
        print(json.dumps(summary) if args.json else
              "\n".join(f"{k + ':':22s}{v}" for k, v in summary.items()))
    return 0


def _cmd_train_prepare(args: argparse.Namespace) -> int:
    from facecraft.training.photo_data import PrepareSettings, prepare_photos

    settings = PrepareSettings(crop_size=args.size, min_face_size=args.min_face,
                               max_faces=args.max_faces, landmarks68=not args.no_landmarks68,
                               front_end=args.detector)
    summary = prepare_photos(args.photos, args.output, settings, progress=not args.quiet)
    d = summary.to_json()
    if args.json:
        print(json.dumps(d))
    else:
        d["skipped"] = ", ".join(f"{k} {v}" for k, v in summary.skipped.items()) or "none"
        d["elapsed_s"] = round(summary.elapsed_s, 1)
        print("\n".join(f"{k + ':':20s}{v}" for k, v in d.items()))
        if not args.no_landmarks68 and summary.landmarker == "none":
            print("note: 68-point landmarks skipped (pip install -e '.[landmarks68]'); faces "
                  "have 5 points and ellipse skin masks", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command group to the ``facecraft`` parser."""
    train = subparsers.add_parser("train", help="train FaceCraft networks",
                                  description="Train FaceCraft's networks.")
    tsub = train.add_subparsers(dest="train_command", metavar="COMMAND", required=True)
    p = tsub.add_parser(
        "regressor", help="train the 3DMM coefficient regressor on synthetic faces",
        description="Train the coefficient regressor on rendered faces with exact ground truth "
                    "(see configs/regressor_starter.json). Resumes from OUT/checkpoints when "
                    "present. Under torchrun, trains data-parallel.")
    p.add_argument("--config", required=True, type=Path, metavar="PATH",
                   help="a JSON training config (RegressorTrainConfig fields)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (overrides out_dir)")
    p.add_argument("--steps", type=int, metavar="N", help="total steps (overrides steps)")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if OUT/checkpoints holds a run")
    p.add_argument("--stop-after", type=int, metavar="STEP",
                   help="stop (checkpointing) at this step; a later call resumes bit for bit")
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides device")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train_regressor)

    p = tsub.add_parser(
        "prepare", help="detect, align and annotate real photos for training",
        description="Detect the faces of photos (folders are walked recursively), align them to "
                    "the regressor's crop, add 68-point landmarks (dlib, when installed) and a "
                    "skin mask, and cache them in OUT (faces.safetensors, manifest.json). "
                    "Photos without a usable face are listed in the manifest with a reason.")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTOS",
                   help="photo files or folders of photos")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                   help="the folder to write")
    p.add_argument("--size", type=int, default=224, metavar="PX", help="crop side (224)")
    p.add_argument("--min-face", type=float, default=64.0, metavar="PX",
                   help="drop faces smaller than this (detector box side, photo pixels; 64)")
    p.add_argument("--max-faces", type=int, default=1, metavar="N",
                   help="faces kept per photo, largest first (1)")
    p.add_argument("--no-landmarks68", action="store_true",
                   help="skip dlib's 68-point landmarker (training-only annotations of the "
                        "landmark loss; masks come from the mesh, or an ellipse with MTCNN)")
    p.add_argument("--detector", choices=("mediapipe", "mtcnn"), default="mediapipe",
                   help="front-end: MediaPipe's mesh (alignment and skin masks; default) or "
                        "MTCNN")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train_prepare)
    _register_texture(tsub)
    _register_albedo(tsub)
    _register_eval(subparsers)


def _cmd_eval_regressor(args: argparse.Namespace) -> int:
    from facecraft.training.eval_regressor import RegressorEvalSettings, evaluate, write_report

    seed = {"seed": args.seed} if args.seed is not None else {}
    settings = RegressorEvalSettings(
        max_photos=args.max_photos, detector_threads=args.threads, model=args.model,
        device=args.device, contact_sheet_faces=args.sheet_faces if args.out is not None else 0,
        **seed)
    report = evaluate(args.checkpoint, synthetic_count=args.synthetic,
                      annotations=args.annotations, settings=settings, progress=not args.quiet)
    written = write_report(report, args.out) if args.out is not None else []
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.format_table())
        if written:
            print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    """Add ``facecraft eval regressor`` to the SDK's ``eval`` group."""
    from facecraft.sdk.cli import command_group

    p = command_group(subparsers, "eval").add_parser(
        "regressor", help="accuracy of a coefficient-regressor checkpoint",
        description="Evaluate a regressor checkpoint: NoW-style per-vertex error (mm) and "
                    "coefficient / pose errors on held-out synthetic faces next to the mean-face "
                    "baseline; on annotated photos, 68-landmark NME (box and inter-ocular) and "
                    "PSNR / SSIM of the render inside the skin mask. Prints a table; with --out, "
                    "writes report.json and contact_sheet.png.")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                   help="a regressor .safetensors checkpoint (e.g. OUT/checkpoints/last."
                        "safetensors)")
    p.add_argument("--synthetic", type=int, default=100, metavar="N",
                   help="held-out synthetic faces (100; 0 skips them)")
    p.add_argument("--annotations", type=Path, metavar="ANNOTATIONS.json",
                   help="68-point annotations, e.g. ../shared/assets/landmarks68.json (photo "
                        "paths relative to it)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write report.json and contact_sheet.png here")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.add_argument("--model", metavar="MODEL",
                   help="face model, 'starter' or a .fcm file (default: the checkpoint's)")
    p.add_argument("--seed", type=int,
                   help="seed of the held-out synthetic faces (default: DEFAULT_EVAL_SEED of "
                        "facecraft.training.eval_regressor, away from the training seeds)")
    p.add_argument("--max-photos", type=int, default=0, metavar="N",
                   help="evaluate at most N annotated photos (0 = all)")
    p.add_argument("--sheet-faces", type=int, default=24, metavar="N",
                   help="faces on the contact sheet (24)")
    p.add_argument("--threads", type=int, default=2, help="face-detector threads")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_cmd_eval_regressor)
    _register_eval_texture(subparsers)


def _cmd_train_texture(args: argparse.Namespace) -> int:
    from facecraft.training.train_texture import (
        TextureTrainConfig,
        ablation_configs,
        train_texture,
    )

    config = TextureTrainConfig.from_json(args.config)
    changes = {k: v for k, v in (("out_dir", args.out and str(args.out)), ("steps", args.steps),
                                 ("device", args.device)) if v is not None}
    if changes:
        config = dataclasses.replace(config, **changes)
    runs = ablation_configs(config) if args.ablation else {"run": config}
    summary = {}
    ok = False
    try:
        for name, cfg in runs.items():
            result = train_texture(cfg, resume=not args.no_resume, progress=not args.quiet)
            if int(os.environ.get("RANK", "0")) == 0:
                summary[name] = {"out_dir": str(result.out_dir),
                                 "checkpoint": str(result.checkpoint), "step": result.step,
                                 "elapsed_s": round(result.elapsed_s, 1),
                                 "train_loss": result.metrics.get("train_loss", {}).get("total")}
        ok = True
    finally:
        _finish_distributed(ok)
    if int(os.environ.get("RANK", "0")) == 0:
        if args.json:
            print(json.dumps(summary))
        else:
            for name, s in summary.items():
                print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    return 0


def _register_texture(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "texture", help="train the GCN fine-texture nets on prepared photos",
        description="Train the decoder, refiner and combiner (Lin et al. 2020) on a folder made "
                    "by `facecraft train prepare`, with the regressor frozen (see "
                    "configs/texture_starter.json). With --ablation, train the paper's four "
                    "ablation rows (L_pix, +L_id, +L_adv, +L_vert) into OUT/<row>.")
    p.add_argument("--config", required=True, type=Path, metavar="PATH",
                   help="a JSON config (TextureTrainConfig fields)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (overrides out_dir)")
    p.add_argument("--steps", type=int, metavar="N", help="total steps (overrides steps)")
    p.add_argument("--ablation", action="store_true",
                   help="train the four ablation rows instead of one run")
    p.add_argument("--no-resume", action="store_true", help="start over")
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides device")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train_texture)


def _cmd_eval_texture(args: argparse.Namespace) -> int:
    from facecraft.sdk.errors import InvalidInputError
    from facecraft.training.eval_texture import evaluate_texture, write_texture_report

    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        if name in runs:
            raise InvalidInputError(f"two runs are named {name!r}; use NAME=DIR")
        runs[name] = path
    report, sheet = evaluate_texture(runs, photo_data=args.photos, recognizer=args.recognizer,
                                     max_faces=args.max_faces or None)
    written = write_texture_report(report, sheet, args.out) if args.out is not None else {}
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.markdown(), end="")
        if written:
            print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _register_eval_texture(subparsers: argparse._SubParsersAction) -> None:
    from facecraft.sdk.cli import command_group

    p = command_group(subparsers, "eval").add_parser(
        "texture", help="the texture ablation table on held-out photos",
        description="PSNR / SSIM inside the face mask and identity similarity of renders with "
                    "the coarse 3DMM texture and with each texture run's fine texture, on the "
                    "photos the runs held out. Prints a Markdown table; with --out writes "
                    "table.md, report.json and contact_sheet.png.")
    p.add_argument("runs", nargs="+", metavar="[NAME=]RUN_DIR",
                   help="texture run folders (from `facecraft train texture`), in row order")
    p.add_argument("--photos", type=Path, metavar="DIR",
                   help="prepared photos (default: the runs' photo_data)")
    p.add_argument("--recognizer", default="dlib", help="identity network spec (dlib)")
    p.add_argument("--max-faces", type=int, default=0, metavar="N", help="0 = all held out")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the report files here")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.set_defaults(handler=_cmd_eval_texture)


def _cmd_train_albedo(args: argparse.Namespace) -> int:
    from facecraft.sdk.models.default_model import resolve_model
    from facecraft.sdk.models.model_file import save_model
    from facecraft.training.albedo_model import AlbedoBuildSettings, build_albedo_model

    model = resolve_model(args.model)
    result = build_albedo_model(model, args.photos,
                                AlbedoBuildSettings(components=args.components),
                                progress=not args.quiet)
    digest = save_model(result.model, args.output)
    summary = {"output": str(args.output), "content_sha256": digest,
               "faces_used": result.faces_used, "faces_skipped": result.faces_skipped,
               "coverage": round(result.coverage, 4),
               "explained_variance": [round(float(v), 4) for v in result.explained_variance]}
    print(json.dumps(summary) if args.json else
          "\n".join(f"{k + ':':22s}{v}" for k, v in summary.items()))
    return 0


def _register_albedo(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "albedo", help="build a PCA albedo model from prepared photos",
        description="For a face model without an albedo (ICT-FaceKit, Surrey, FLAME): de-light "
                    "the photos of a `facecraft train prepare` folder (landmark pose fit, SH "
                    "lighting fit) and store the mean + PCA albedo into a compiled .fcm model.")
    p.add_argument("--model", required=True, metavar="MODEL", help="'starter' or a .fcm file")
    p.add_argument("--photos", required=True, type=Path, metavar="DIR",
                   help="a prepared photo folder (68-point landmarks)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.fcm")
    p.add_argument("--components", type=int, default=10, metavar="K", help="PCA modes (10)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train_albedo)
