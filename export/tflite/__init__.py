"""TFLite -> ONNX conversion without TensorFlow, and MediaPipe's face models vendored as ONNX.

* :mod:`.reader`: parse a .tflite flatbuffer (``tflite`` package) into plain records.
* :mod:`.convert`: :func:`tflite_to_onnx`, operator by operator, NCHW inside.
* :mod:`.mediapipe`: the model table, ``facecraft export mediapipe`` (convert, parity against
  ``ai-edge-litert``, latency, PROVENANCE.json), and :func:`check_vendored`.

The converter packages (``tflite``, ``ai-edge-litert``) are build-time only; the runtime loads
the vendored ONNX files in ``facecraft/sdk/data/mediapipe`` with onnxruntime alone.
"""

from .convert import SUPPORTED_OPS, ConvertSettings, tflite_to_onnx
from .mediapipe import (
    MEDIAPIPE_MODELS,
    VENDORED_DIR,
    MediaPipeExportSettings,
    MediaPipeModel,
    check_vendored,
    export_mediapipe,
)
from .reader import TFLiteGraph, TFLiteOperator, TFLiteTensor, read_tflite

__all__ = ["SUPPORTED_OPS", "ConvertSettings", "tflite_to_onnx", "MEDIAPIPE_MODELS",
           "VENDORED_DIR", "MediaPipeExportSettings", "MediaPipeModel", "check_vendored",
           "export_mediapipe", "TFLiteGraph", "TFLiteOperator", "TFLiteTensor", "read_tflite"]
