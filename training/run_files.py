"""The files of a training run: its folder, resume state, TensorBoard writer and metrics.

A run folder holds ``config.json``, ``tb/`` (TensorBoard), ``checkpoints/`` (the weights file
and a ``torch.save``'d state: optimizer, step, config, loss history) and ``metrics.json``.
Only rank 0 writes them. The state file is written to a temporary name and moved into place,
so an interrupted save leaves the previous state.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facecraft.sdk.errors import InvalidInputError

__all__ = ["RunFolder", "save_train_state", "read_train_state", "open_run", "progress_bar",
           "run_metrics", "write_metrics"]


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run.

    Attributes:
        out: the run folder.
        weights: ``out/checkpoints/<weights name>``, the nets' file.
        state: ``out/checkpoints/<state name>``, the resume state.
    """

    out: Path
    weights: Path
    state: Path

    @classmethod
    def of(cls, out_dir: str | os.PathLike[str], weights: str, state: str) -> RunFolder:
        """The folder ``out_dir`` with checkpoint files named ``weights`` and ``state``."""
        out = Path(out_dir)
        return cls(out=out, weights=out / "checkpoints" / weights,
                   state=out / "checkpoints" / state)

    @property
    def checkpoints(self) -> Path:
        """``out/checkpoints``."""
        return self.weights.parent

    def has_checkpoint(self) -> bool:
        """Whether both the weights and the state file exist (a run to resume)."""
        return self.weights.is_file() and self.state.is_file()


def save_train_state(path: Path, *, version: int, step: int, optimizer: torch.optim.Optimizer,
                     config: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     **extra: Any) -> None:
    """``torch.save`` the resume state to ``path`` atomically (temporary file, then replace).

    The dict holds ``version``, ``step``, the optimizer's state, ``config`` and ``history`` as
    JSON strings, and ``extra`` (e.g. a critic's state)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"version": version, "step": step, "optimizer": optimizer.state_dict(),
                "config": json.dumps(dict(config)), "history": json.dumps(list(history)),
                **extra}, tmp)
    os.replace(tmp, path)


def read_train_state(run: RunFolder, *, version: int,
                     mismatch: Callable[[Mapping[str, Any]], list[str]]) -> dict[str, Any]:
    """Load ``run.state`` and check it belongs to this run.

    Args:
        run: the run folder.
        version: the state version this code writes.
        mismatch: saved config JSON -> the fields that differ from this run's (e.g. a config's
            ``resume_mismatch``).

    Returns:
        The state dict, its ``history`` parsed into a list of dicts.

    Raises:
        InvalidInputError: another state version, or a checkpoint of another run.
    """
    state = torch.load(run.state, map_location="cpu", weights_only=True)
    if state.get("version") != version:
        raise InvalidInputError(f"{run.state} has state version {state.get('version')}; "
                                f"this code reads {version}; start over with --no-resume")
    bad = mismatch(json.loads(state["config"]))
    if bad:
        raise InvalidInputError(f"the checkpoint in {run.checkpoints} was trained with other "
                                f"{bad}; use another out_dir or start over with --no-resume")
    state["history"] = [dict(h) for h in json.loads(state["history"])]
    return state


def open_run(run: RunFolder, config: Mapping[str, Any], start: int) -> Any:
    """Create the run folder, write ``config.json`` and open the TensorBoard writer (rank 0).

    Args:
        run: the run folder.
        config: the config's JSON form.
        start: the step the run continues from (TensorBoard events after it are purged).

    Returns:
        A ``torch.utils.tensorboard.SummaryWriter`` on ``out/tb``.
    """
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "config.json").write_text(json.dumps(dict(config), indent=2) + "\n",
                                         encoding="utf-8")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run.out / "tb"), purge_step=start if start else None)


def progress_bar(enabled: bool, total: int, desc: str) -> Any | None:
    """A tqdm bar on stderr over ``total`` steps, or ``None`` when off or nothing is left."""
    if not enabled or total <= 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=0, desc=desc, unit="step", file=sys.stderr,
                dynamic_ncols=True)


def run_metrics(*, step: int, steps: int, history: Sequence[Mapping[str, float]],
                elapsed_s: float, device: torch.device, world: int,
                **extra: Any) -> dict[str, Any]:
    """The ``metrics.json`` content of a run.

    Keys, in order: ``step``, ``steps``, ``finished``, ``train_loss`` (the last history entry's
    terms), ``extra``'s, ``elapsed_s`` (seconds), ``device``, ``world_size``.
    """
    last = history[-1] if history else {}
    return {"step": step, "steps": steps, "finished": step >= steps,
            "train_loss": {k: v for k, v in last.items() if k not in ("step", "lr")},
            **extra, "elapsed_s": elapsed_s, "device": str(device), "world_size": world}


def write_metrics(run: RunFolder, metrics: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` (indented JSON)."""
    (run.out / "metrics.json").write_text(json.dumps(dict(metrics), indent=2) + "\n")
