"""The loss log of a training run: per-step terms averaged into history entries, and the curve.

:class:`LossWindow` collects the logged terms of the steps since the last log entry and turns
them into one history entry ``{"step", "lr", term averages}`` (also TensorBoard scalars on rank
0); :func:`loss_curve` draws a history as an image (log10 y axis) for ``loss_curve.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["LossWindow", "loss_curve", "CURVE_COLOURS"]


class LossWindow:
    """Averages of the logged loss terms over the steps since the last log entry."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, log: Mapping[str, Any]) -> None:
        """One step's terms (tensors or floats)."""
        for k, v in log.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def flush(self, step: int, lr: float, writer: Any | None) -> dict[str, float]:
        """The history entry ``{step, lr, term averages}``; written to TensorBoard when a
        ``writer`` is given (rank 0). Starts a new window."""
        entry = {"step": step, "lr": lr,
                 **{k: v / max(self.count, 1) for k, v in self.sums.items()}}
        self.sums, self.count = {}, 0
        if writer is not None:
            for k, v in entry.items():
                if k != "step":
                    writer.add_scalar(f"loss/{k}" if k != "lr" else "lr", v, step)
        return entry


#: Line colours of the curve, RGB; the first is the total's.
CURVE_COLOURS = [(0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                 (148, 103, 189), (140, 86, 75), (227, 119, 194)]


def loss_curve(history: Sequence[Mapping[str, float]], width: int = 800,
                height: int = 480) -> np.ndarray:
    """(H, W, 3) uint8 RGB plot of every logged loss term (log10 y axis), drawn with OpenCV."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 170, 20, 40
    pw, ph = width - left - right, height - top - bottom
    cv2.rectangle(canvas, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    keys = ["total"] + sorted({k for h in history for k in h} - {"step", "lr", "total"})
    if not history:
        return canvas
    steps = np.array([h["step"] for h in history], np.float64)
    vals = {k: np.array([max(h.get(k, np.nan), 1e-12) for h in history]) for k in keys}
    finite = np.concatenate([np.log10(v[np.isfinite(v)]) for v in vals.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

    def xy(s: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = left + (s - s0) / (s1 - s0) * pw
        y = top + (1 - (np.log10(v) - lo) / (hi - lo)) * ph
        return np.stack([x, y], 1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(5):  # y ticks
        v = lo + (hi - lo) * i / 4
        y = int(round(top + (1 - i / 4) * ph))
        cv2.line(canvas, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(canvas, f"{10 ** v:.2g}", (4, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(5):  # x ticks
        s = s0 + (s1 - s0) * i / 4
        x = int(round(left + i / 4 * pw))
        cv2.line(canvas, (x, top + ph), (x, top + ph + 4), (0, 0, 0), 1)
        cv2.putText(canvas, f"{s:.0f}", (x - 12, top + ph + 18), font, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(canvas, "step", (left + pw // 2 - 15, height - 6), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    for i, k in enumerate(keys):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        ok = np.isfinite(vals[k])
        pts = xy(steps[ok], vals[k][ok])
        if len(pts) > 1:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, colour, 2 if i == 0 else 1,
                          cv2.LINE_AA)
        elif len(pts) == 1:
            cv2.circle(canvas, tuple(int(c) for c in pts[0]), 2, colour, -1)
        y = top + 14 + 18 * i
        cv2.line(canvas, (left + pw + 10, y - 4), (left + pw + 30, y - 4), colour, 2)
        cv2.putText(canvas, k, (left + pw + 35, y), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
