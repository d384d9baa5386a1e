"""Where a training process runs: its torchrun rank, the world size and its device.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`join_ranks` joins the default
process group (gloo on CPU, nccl on CUDA) unless the caller already did, and gives each CUDA rank
the GPU ``LOCAL_RANK`` names. Joining the process group is process-wide state, the one exception
to the rule that training leaves the process as it found it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from facecraft.sdk.errors import InvalidInputError

__all__ = ["Ranks", "join_ranks"]


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly one-process) run.

    Attributes:
        rank: 0-based rank; rank 0 writes the run's files.
        world: number of processes (1 without torchrun).
        device: the device this rank computes on.
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and logs)."""
        return self.rank == 0


def join_ranks(device: str) -> Ranks:
    """The rank, world size and device of a run configured for ``device``.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (under torchrun with CUDA each rank takes
            ``cuda:LOCAL_RANK`` instead).

    Raises:
        InvalidInputError: CUDA asked for but absent; ``WORLD_SIZE`` > 1 without
            ``torch.distributed``.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but CUDA is not available; "
                                "use device 'cpu'")
    rank, world = 0, int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        world = 1
    else:
        import torch.distributed as dist

        if not dist.is_available():
            raise InvalidInputError("WORLD_SIZE > 1 but torch.distributed is unavailable")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return Ranks(rank=rank, world=world, device=dev)
