"""Read a TFLite flatbuffer into plain Python records (no TensorFlow).

The ``tflite`` package (generated flatbuffer accessors for TFLite's ``schema.fbs``) does the byte
parsing; this module turns its accessor objects into small frozen records: tensors with their
shape, dtype and constant data (float16 / quantised constants kept as stored), and operators with
their opcode name and options as a plain ``dict``. Only the first subgraph is read.

Custom operators keep their raw ``custom_options`` bytes; MediaPipe's custom ops store a C struct
there (``TfLitePoolParams`` / ``TfLiteTransposeConvParams``), decoded by :func:`pool_params` and
:func:`transpose_conv_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TFLiteTensor", "TFLiteOperator", "TFLiteGraph", "read_tflite", "pool_params",
           "transpose_conv_params", "PADDING", "ACTIVATION"]

#: ``tflite.TensorType`` value -> numpy dtype (the types these models use, plus common ones).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
           7: np.int16, 9: np.int8, 10: np.float64}
#: ``tflite.Padding``: builtin options store SAME=0, VALID=1.
PADDING = {0: "SAME", 1: "VALID"}
#: ``TfLitePadding`` in custom-op C structs: 0 unknown, 1 SAME, 2 VALID.
_C_PADDING = {1: "SAME", 2: "VALID"}
#: ``tflite.ActivationFunctionType`` (and ``TfLiteFusedActivation``, same numbering).
ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of the graph.

    Attributes:
        index: position in the subgraph's tensor list.
        name: the tensor's name in the flatbuffer.
        shape: static shape (TFLite activations are NHWC).
        dtype: numpy dtype of the stored values.
        data: the constant's values reshaped to ``shape`` (as stored: float16 stays float16),
            or None for activations.
        scale, zero_point: per-tensor or per-axis quantisation parameters (empty if none).
        quantized_dimension: the axis ``scale`` runs along when it has more than one entry.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0


@dataclass(frozen=True)
class TFLiteOperator:
    """One operator: ``opcode`` is the builtin name (``CONV_2D``) or the custom code
    (``MaxUnpooling2D``); ``inputs`` may hold -1 for an omitted optional input."""

    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict
    custom: bool = False
    custom_options: bytes = b""


@dataclass(frozen=True)
class TFLiteGraph:
    """The first subgraph of a model: tensors, operators in execution order, graph I/O."""

    tensors: tuple[TFLiteTensor, ...]
    operators: tuple[TFLiteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    version: int

    def opcode_counts(self) -> dict[str, int]:
        """``{opcode: number of operators}`` in first-seen order."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.opcode] = counts.get(op.opcode, 0) + 1
        return counts


def _import_tflite():
    try:
        import tflite
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading .tflite files needs the `tflite` package (pip install "
                          "tflite); the runtime never needs it") from e
    return tflite


def _builtin_names(tflite) -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _options_classes(tflite) -> dict[int, tuple[str, type]]:
    from tflite.BuiltinOptions import BuiltinOptions
    out = {}
    for name, value in vars(BuiltinOptions).items():
        if name.startswith("_") or name == "NONE":
            continue
        cls = getattr(tflite, name, None)
        if cls is not None:
            out[value] = (name, cls)
    return out


def _read_options(op, classes) -> dict:
    """Every zero-argument accessor of the op's builtin-options table, as a plain dict."""
    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if kind == 0 or table is None or kind not in classes:
        return {}
    _, cls = classes[kind]
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for attr in dir(cls):
        if attr.startswith("_") or attr in ("Init",) or attr.startswith("GetRootAs"):
            continue
        if attr.endswith(("Length", "IsNone")) or (attr + "AsNumpy") in dir(cls):
            continue
        fn = getattr(opts, attr)
        if not callable(fn):
            continue
        try:
            value = fn()
        except TypeError:  # accessors that need an index argument
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
            attr = attr.removesuffix("AsNumpy")
        out[attr] = value
    return out


def _tensor(model, sub, i: int) -> TFLiteTensor:
    t = sub.Tensors(i)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    if t.Type() not in _DTYPES:
        raise NotImplementedError(f"tensor {t.Name().decode()!r}: TFLite type {t.Type()} is not "
                                  f"supported (known: {sorted(_DTYPES)})")
    dtype = np.dtype(_DTYPES[t.Type()])
    data = None
    buf = model.Buffers(t.Buffer())
    if buf is not None and buf.DataLength() > 0:
        raw = buf.DataAsNumpy().tobytes()
        data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    scale = np.zeros(0, np.float32)
    zero_point = np.zeros(0, np.int64)
    qdim = 0
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 0:
        scale = q.ScaleAsNumpy().astype(np.float32)
        zero_point = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength()
                      else np.zeros_like(scale, np.int64))
        qdim = int(q.QuantizedDimension())
    return TFLiteTensor(i, t.Name().decode(), shape, dtype, data, scale, zero_point, qdim)


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse ``path`` (a .tflite flatbuffer) into a :class:`TFLiteGraph`.

    Raises:
        ValueError: the model has no subgraph, or more than one (control flow is unsupported).
    """
    tflite = _import_tflite()
    data = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{path}: expected one subgraph, got {model.SubgraphsLength()}")
    sub = model.Subgraphs(0)
    names = _builtin_names(tflite)
    classes = _options_classes(tflite)
    tensors = tuple(_tensor(model, sub, i) for i in range(sub.TensorsLength()))
    ops = []
    for k in range(sub.OperatorsLength()):
        op = sub.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        custom = name == "CUSTOM"
        if custom:
            name = code.CustomCode().decode()
        ins = tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(i) for i in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        copts = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
        ops.append(TFLiteOperator(name, ins, outs, _read_options(op, classes), custom, copts))
    inputs = tuple(int(i) for i in sub.InputsAsNumpy())
    outputs = tuple(int(i) for i in sub.OutputsAsNumpy())
    return TFLiteGraph(tensors, tuple(ops), inputs, outputs, int(model.Version()))


def pool_params(op: TFLiteOperator) -> dict:
    """Decode MediaPipe's custom pooling options (a ``TfLitePoolParams`` C struct of int32:
    padding, stride_width, stride_height, filter_width, filter_height, activation, ...)."""
    v = np.frombuffer(op.custom_options, dtype="<i4")
    if v.size < 6 or int(v[0]) not in _C_PADDING:
        raise ValueError(f"{op.opcode}: cannot decode TfLitePoolParams from "
                         f"{len(op.custom_options)} bytes of custom options")
    return {"Padding": _C_PADDING[int(v[0])], "StrideW": int(v[1]), "StrideH": int(v[2]),
            "FilterWidth": int(v[3]), "FilterHeight": int(v[4]),
            "FusedActivationFunction": ACTIVATION[int(v[5])]}


def transpose_conv_params(op: TFLiteOperator) -> dict:
    """Decode ``TfLiteTransposeConvParams`` (int32 padding, stride_width, stride_height)."""
    v = np.frombuffer(op.custom_options, dtype="<i4")
    if v.size < 3 or int(v[0]) not in _C_PADDING:
        raise ValueError(f"{op.opcode}: cannot decode TfLiteTransposeConvParams from "
                         f"{len(op.custom_options)} bytes of custom options")
    return {"Padding": _C_PADDING[int(v[0])], "StrideW": int(v[1]), "StrideH": int(v[2])}
