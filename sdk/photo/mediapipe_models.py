"""MediaPipe's face models as vendored ONNX files, run in ONNX Runtime.

The files in ``facecraft/sdk/data/mediapipe/`` are converted from MediaPipe's TFLite releases
(Apache-2.0) by ``facecraft export mediapipe``; ``LICENSE``, ``NOTICE`` and ``PROVENANCE.json``
(source repository, commit, sha256 of each .tflite, parity against the TFLite runtime) sit beside
them. Every model keeps the TFLite layout: NHWC float32 input with a dynamic batch axis.

Sessions are created per :class:`MediaPipeModels` instance (no process-wide state) with the
thread count and execution providers the caller chooses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelFileError

__all__ = ["MODEL_NAMES", "mediapipe_dir", "OnnxModel", "MediaPipeModels"]

#: The vendored models, by role.
MODEL_NAMES = {
    "short": "face_detection_short_range",
    "full": "face_detection_full_range",
    "mesh": "face_landmark",
    "iris": "iris_landmark",
    "hair": "hair_segmentation",
}


def mediapipe_dir() -> Path:
    """The folder holding the vendored MediaPipe ONNX files (package data)."""
    return Path(__file__).resolve().parents[1] / "data" / "mediapipe"


class OnnxModel:
    """One ONNX Runtime session with a single NHWC input.

    Calling it runs a batch: ``model(x)`` with x (B, H, W, C) float32 returns the outputs as a
    list of arrays, in the model's output order.
    """

    def __init__(self, path: Path, *, threads: int = 2,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelFileError(f"MediaPipe model {path.name} is missing from {path.parent}; "
                                 "reinstall FaceCraft or run `facecraft export mediapipe`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The front-end runs several small sessions one after another: threads that spin
        # waiting for more work after a run would take the cores from the next session.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=list(providers))
        self._input = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self._input: np.ascontiguousarray(x, np.float32)})


@dataclass
class MediaPipeModels:
    """The MediaPipe sessions one front-end uses, created on first use.

    Args:
        folder: where the ``.onnx`` files are (default: the vendored ones).
        threads: ONNX Runtime intra-op threads per session.
        providers: ONNX Runtime execution providers, in preference order.
    """

    folder: Path | None = None
    threads: int = 2
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        self._models: dict[str, OnnxModel] = {}

    def __getitem__(self, role: str) -> OnnxModel:
        """The session of one role: ``short``, ``full``, ``mesh``, ``iris`` or ``hair``."""
        if role not in self._models:
            if role not in MODEL_NAMES:
                raise KeyError(f"unknown MediaPipe model role {role!r}; one of "
                               f"{sorted(MODEL_NAMES)}")
            folder = self.folder or mediapipe_dir()
            self._models[role] = OnnxModel(Path(folder) / f"{MODEL_NAMES[role]}.onnx",
                                           threads=self.threads, providers=self.providers)
        return self._models[role]
