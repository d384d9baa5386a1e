"""When a training loop logs, validates, snapshots and checkpoints.

Both loops count finished steps (1-based after the step's update) and ask a :class:`Cadence`
after each one. Logging always happens at the run's last step; snapshots, checkpoints and
validation at the last step are left to the loop's end (``at_end`` is ``False`` for them), which
writes them once whatever the cadence.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cadence"]


@dataclass(frozen=True)
class Cadence:
    """Steps between a run's periodic events; 0 turns an event off (it still happens at the end).

    Attributes:
        stop: the step this call stops at (``steps``, or ``stop_after`` when smaller).
        log_every: history entry (and TensorBoard scalars) every this many steps.
        snapshot_every: snapshot PNG every this many steps.
        checkpoint_every: checkpoint every this many steps.
        val_every: validation every this many steps.
    """

    stop: int
    log_every: int = 1
    snapshot_every: int = 0
    checkpoint_every: int = 0
    val_every: int = 0

    def log(self, step: int) -> bool:
        """Whether finished step ``step`` ends a log window (always at ``stop``)."""
        return bool(self.log_every and step % self.log_every == 0) or step == self.stop

    def snapshot(self, step: int) -> bool:
        """Whether to write a snapshot after ``step`` (never at ``stop``: the end does)."""
        return _every(self.snapshot_every, step, self.stop)

    def checkpoint(self, step: int) -> bool:
        """Whether to checkpoint after ``step`` (never at ``stop``: the end does)."""
        return _every(self.checkpoint_every, step, self.stop)

    def validate(self, step: int) -> bool:
        """Whether to validate after ``step`` (never at ``stop``: the end does)."""
        return _every(self.val_every, step, self.stop)


def _every(every: int, step: int, stop: int) -> bool:
    return bool(every) and step % every == 0 and step != stop
