"""``facecraft train``: the training command group (registered through the ``facecraft.cli``
entry-point group, see :mod:`facecraft.sdk.cli`).

``facecraft train regressor --config PATH [--out DIR] [--steps N] [--no-resume]
[--device cpu|cuda] [-q]`` runs :func:`facecraft.training.train_regressor.train_regressor`.
Bad configs and checkpoints raise :class:`~facecraft.sdk.errors.FaceCraftError`, which the
``facecraft`` main prints as one line (exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

__all__ = ["register"]


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
    result = train_regressor(config, resume=not args.no_resume, progress=not args.quiet)
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
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides device")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train_regressor)
