"""TFLite graph -> ONNX graph, op by op (float32 inference graphs; no TensorFlow).

Layout: the ONNX model keeps TFLite's tensors at its boundary (NHWC images in, outputs of the
same shapes and names as the .tflite), and runs NCHW inside: the graph input is transposed once,
every 4-D activation is held NCHW, and RESHAPE / graph outputs transpose back to NHWC where the
TFLite semantics need it. Constants (float16 or quantised weights behind DEQUANTIZE) are folded
into float32 initialisers at conversion time. The batch axis is symbolic (``N``) unless
:attr:`ConvertSettings.dynamic_batch` is off.

Supported operators: CONV_2D, DEPTHWISE_CONV_2D, ADD, SUB, MUL, PRELU, RELU, RELU6, LOGISTIC,
TANH, HARD_SWISH, MAX_POOL_2D, AVERAGE_POOL_2D, PAD, PADV2, RESHAPE, CONCATENATION,
RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR, DEQUANTIZE, and MediaPipe's custom
Convolution2DTransposeBias, MaxPoolingWithArgmax2D and MaxUnpooling2D (argmax pooling is written
with standard ops, Reshape/ArgMax/Equal/Where, so TensorRT can take it; it needs
filter == stride and no padding, which is how MediaPipe's segmentation models use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .reader import (
    ACTIVATION,
    PADDING,
    TFLiteGraph,
    TFLiteOperator,
    pool_params,
    read_tflite,
    transpose_conv_params,
)

__all__ = ["ConvertSettings", "tflite_to_onnx", "SUPPORTED_OPS"]

_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
#: NHWC axis -> NCHW axis.
_AXIS_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


@dataclass(frozen=True)
class ConvertSettings:
    """How :func:`tflite_to_onnx` writes the ONNX model.

    Attributes:
        opset: ONNX default-domain opset (>= 14 for HardSwish; 17 by default).
        dynamic_batch: make the batch axis of every graph input/output symbolic (``N``); the
            TFLite file's batch of 1 otherwise.
        graph_name: the ONNX graph's name (default: the .tflite file's stem).
        doc_string: stored in the model's ``doc_string``.
    """

    opset: int = 17
    dynamic_batch: bool = True
    graph_name: str | None = None
    doc_string: str = ""

    def __post_init__(self) -> None:
        if self.opset < 14:
            raise ValueError(f"opset must be >= 14 (HardSwish, Reshape allowzero), got "
                             f"{self.opset}")


class _Builder:
    """Accumulates ONNX nodes/initialisers; tracks each TFLite tensor's ONNX value and layout."""

    def __init__(self, graph: TFLiteGraph, settings: ConvertSettings):
        self.g = graph
        self.s = settings
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}
        self.values: dict[int, tuple[str, str]] = {}  # tensor index -> (onnx name, layout)
        self.argmax: dict[int, str] = {}  # TFLite indices tensor -> ONNX int64 argmax value
        self._used: set[str] = set()
        self._transposed: dict[str, str] = {}
        for t in graph.tensors:
            if t.data is not None:
                self.consts[t.index] = t.data

    # -- names ---------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        base = base.replace(":", "_")
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def node(self, op: str, inputs: list[str], base: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(base if n_out == 1 else f"{base}_{i}") for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(f"{base}/{op}"),
                                           **attrs))
        return outs

    def init(self, value: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    # -- tensors -------------------------------------------------------------------------------
    def tname(self, i: int) -> str:
        return self.g.tensors[i].name

    def rank(self, i: int) -> int:
        return len(self.g.tensors[i].shape)

    def const(self, i: int) -> np.ndarray:
        if i not in self.consts:
            raise NotImplementedError(f"tensor {self.tname(i)!r} must be a constant here")
        return self.consts[i]

    def fconst(self, i: int) -> np.ndarray:
        return self.const(i).astype(np.float32)

    def get(self, i: int, layout: str) -> str:
        """ONNX value of TFLite tensor ``i``; layout ``nchw`` (4-D activations) or ``nhwc``."""
        if i not in self.values:
            if i in self.consts:
                c = self.const(i)
                if c.dtype in (np.float16, np.float64):
                    c = c.astype(np.float32)
                if layout == "nchw" and c.ndim == 4:
                    c = c.transpose(_TO_NCHW)
                return self.init(c, f"{self.tname(i)}_{layout}")
            raise KeyError(f"tensor {self.tname(i)!r} is used before it is produced")
        name, have = self.values[i]
        if have == layout or self.rank(i) != 4:
            return name
        key = f"{name}->{layout}"
        if key not in self._transposed:
            perm = _TO_NCHW if layout == "nchw" else _TO_NHWC
            self._transposed[key] = self.node("Transpose", [name], f"{self.tname(i)}_{layout}",
                                              perm=list(perm))[0]
        return self._transposed[key]

    def act_layout(self, i: int) -> str:
        return "nchw" if self.rank(i) == 4 else "nhwc"

    def set(self, i: int, name: str, layout: str) -> None:
        self.values[i] = (name, layout)

    def broadcast_const(self, i: int, like_rank: int) -> str:
        """A constant operand of an elementwise op whose other operand is an NCHW 4-D
        activation: pad its shape with leading ones to rank 4 and move channels first."""
        c = self.fconst(i)
        if like_rank == 4 and c.ndim <= 4 and c.size > 1:
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(_TO_NCHW)
        return self.init(c, f"{self.tname(i)}_nchw")

    def activation(self, x: str, act, base: str) -> str:
        act = ACTIVATION[act] if isinstance(act, int) else act
        if act == "NONE":
            return x
        if act == "RELU":
            return self.node("Relu", [x], base)[0]
        if act in ("RELU6", "RELU_N1_TO_1"):
            lo, hi = (0.0, 6.0) if act == "RELU6" else (-1.0, 1.0)
            return self.node("Clip", [x, self.init(np.float32(lo), f"{base}_min"),
                                      self.init(np.float32(hi), f"{base}_max")], base)[0]
        if act == "TANH":
            return self.node("Tanh", [x], base)[0]
        raise NotImplementedError(f"fused activation {act} is not supported")


def _same_pads(in_size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding (begin, end) for one spatial axis."""
    out = -(-in_size // stride)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def _spatial_pads(shape_nhwc, kh, kw, sh, sw, padding, dh=1, dw=1) -> list[int]:
    if padding == "VALID":
        return [0, 0, 0, 0]
    t, b = _same_pads(shape_nhwc[1], kh, sh, dh)
    left, r = _same_pads(shape_nhwc[2], kw, sw, dw)
    return [t, left, b, r]


def _padding(opts: dict) -> str:
    p = opts.get("Padding", 0)
    return p if isinstance(p, str) else PADDING[p]


# -- op handlers ---------------------------------------------------------------------------------
def _conv(b: _Builder, op: TFLiteOperator, depthwise: bool) -> None:
    o = op.options
    x, w_i = op.inputs[0], op.inputs[1]
    w = b.fconst(w_i)  # CONV: OHWI; DEPTHWISE: 1 H W (C*m)
    in_shape = b.g.tensors[x].shape
    if depthwise:
        w = w.transpose(3, 0, 1, 2)  # (C*m, 1, kh, kw)
        group = in_shape[3]
    else:
        w = w.transpose(0, 3, 1, 2)
        group = 1
    kh, kw = w.shape[2], w.shape[3]
    dh, dw = o.get("DilationHFactor", 1), o.get("DilationWFactor", 1)
    pads = _spatial_pads(in_shape, kh, kw, o["StrideH"], o["StrideW"], _padding(o), dh, dw)
    ins = [b.get(x, "nchw"), b.init(w, f"{b.tname(w_i)}_oihw")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(b.init(b.fconst(op.inputs[2]).reshape(-1), f"{b.tname(op.inputs[2])}_bias"))
    out = b.tname(op.outputs[0])
    y = b.node("Conv", ins, out, kernel_shape=[kh, kw], strides=[o["StrideH"], o["StrideW"]],
               dilations=[dh, dw], pads=pads, group=group)[0]
    b.set(op.outputs[0], b.activation(y, o["FusedActivationFunction"], f"{out}_act"), "nchw")


def _transpose_conv_bias(b: _Builder, op: TFLiteOperator) -> None:
    p = transpose_conv_params(op)
    x, w_i, bias_i = op.inputs
    w = b.fconst(w_i).transpose(3, 0, 1, 2)  # OHWI -> (C_in, C_out, kh, kw)
    kh, kw = w.shape[2], w.shape[3]
    _, ih, iw, _ = b.g.tensors[x].shape
    if p["Padding"] == "SAME":
        ph = max(0, kh - (ih - 1) % p["StrideH"] - 1)
        pw = max(0, kw - (iw - 1) % p["StrideW"] - 1)
    else:
        ph = pw = 0
    pads = [ph // 2, pw // 2, ph - ph // 2, pw - pw // 2]  # crop, TFLite drops pad//2 first
    out = b.tname(op.outputs[0])
    y = b.node("ConvTranspose", [b.get(x, "nchw"), b.init(w, f"{b.tname(w_i)}_iohw"),
                                 b.init(b.fconst(bias_i).reshape(-1), f"{b.tname(bias_i)}_b")],
               out, kernel_shape=[kh, kw], strides=[p["StrideH"], p["StrideW"]], pads=pads)[0]
    b.set(op.outputs[0], y, "nchw")


def _binary(b: _Builder, op: TFLiteOperator, onnx_op: str) -> None:
    r = b.rank(op.outputs[0])
    lay = b.act_layout(op.outputs[0])
    ins = []
    for i in op.inputs:
        if i in b.consts and i not in b.values:
            ins.append(b.broadcast_const(i, r) if lay == "nchw" else
                       b.init(b.fconst(i), b.tname(i)))
        else:
            if lay == "nchw" and b.rank(i) != 4:
                raise NotImplementedError(f"{op.opcode}: broadcasting a rank-{b.rank(i)} "
                                          f"activation against a 4-D one")
            ins.append(b.get(i, lay))
    out = b.tname(op.outputs[0])
    y = b.node(onnx_op, ins, out)[0]
    b.set(op.outputs[0], b.activation(y, op.options.get("FusedActivationFunction", 0),
                                      f"{out}_act"), lay)


def _prelu(b: _Builder, op: TFLiteOperator) -> None:
    x, a = op.inputs
    lay = b.act_layout(x)
    slope = b.broadcast_const(a, b.rank(x)) if lay == "nchw" else b.init(b.fconst(a), b.tname(a))
    b.set(op.outputs[0], b.node("PRelu", [b.get(x, lay), slope], b.tname(op.outputs[0]))[0], lay)


def _unary(onnx_op: str):
    def handler(b: _Builder, op: TFLiteOperator) -> None:
        x = op.inputs[0]
        lay = b.act_layout(x)
        if onnx_op == "Clip6":
            y = b.activation(b.get(x, lay), "RELU6", b.tname(op.outputs[0]))
        else:
            y = b.node(onnx_op, [b.get(x, lay)], b.tname(op.outputs[0]))[0]
        b.set(op.outputs[0], y, lay)
    return handler


def _pool(b: _Builder, op: TFLiteOperator, onnx_op: str) -> None:
    o = op.options
    x = op.inputs[0]
    kh, kw = o["FilterHeight"], o["FilterWidth"]
    pads = _spatial_pads(b.g.tensors[x].shape, kh, kw, o["StrideH"], o["StrideW"], _padding(o))
    extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
    out = b.tname(op.outputs[0])
    y = b.node(onnx_op, [b.get(x, "nchw")], out, kernel_shape=[kh, kw],
               strides=[o["StrideH"], o["StrideW"]], pads=pads, **extra)[0]
    b.set(op.outputs[0], b.activation(y, o["FusedActivationFunction"], f"{out}_act"), "nchw")


def _window_check(b: _Builder, op: TFLiteOperator, p: dict, hw: tuple[int, int]) -> None:
    if (p["FilterHeight"], p["FilterWidth"]) != (p["StrideH"], p["StrideW"]) or \
            hw[0] % p["StrideH"] or hw[1] % p["StrideW"]:
        raise NotImplementedError(f"{op.opcode}: only non-overlapping windows (filter == "
                                  f"stride) that tile the input are supported, got {p} on "
                                  f"{hw}")


def _max_pool_argmax(b: _Builder, op: TFLiteOperator) -> None:
    """Pool with argmax as plain ops: (N,C,H,W) -> (N,C,h,kh,w,kw) -> (N,C,h,w,kw*kh) ->
    ReduceMax / ArgMax. Ties go to the first maximum in column-major window order (x outer,
    y inner), which matches ai-edge-litert's XNNPACK kernel far more often than MediaPipe's
    row-major reference kernel does; exact ties are still decided by rounding in each runtime.
    The index is only consumed by :func:`_max_unpool`, which uses the same window order."""
    p = pool_params(op)
    x = op.inputs[0]
    _, H, W, C = b.g.tensors[x].shape
    _window_check(b, op, p, (H, W))
    kh, kw = p["FilterHeight"], p["FilterWidth"]
    h, w = H // kh, W // kw
    base = b.tname(op.outputs[0])
    s6 = b.init(np.array([0, C, h, kh, w, kw], np.int64), f"{base}_shape6")
    s5 = b.init(np.array([0, C, h, w, kh * kw], np.int64), f"{base}_shape5")
    win = b.node("Reshape", [b.get(x, "nchw"), s6], f"{base}_split")[0]
    win = b.node("Transpose", [win], f"{base}_win", perm=[0, 1, 2, 4, 5, 3])[0]
    win = b.node("Reshape", [win, s5], f"{base}_windows")[0]
    if b.s.opset >= 18:  # ReduceMax takes axes as an input from opset 18
        y = b.node("ReduceMax", [win, b.init(np.array([-1], np.int64), f"{base}_axes")], base,
                   keepdims=0)[0]
    else:
        y = b.node("ReduceMax", [win], base, axes=[-1], keepdims=0)[0]
    idx = b.node("ArgMax", [win], f"{base}_argmax", axis=-1, keepdims=1,
                 select_last_index=0)[0]
    b.set(op.outputs[0], b.activation(y, p["FusedActivationFunction"], f"{base}_act"), "nchw")
    if len(op.outputs) > 1:
        b.argmax[op.outputs[1]] = idx


def _max_unpool(b: _Builder, op: TFLiteOperator) -> None:
    """Scatter each value to its window's argmax position (zeros elsewhere)."""
    p = pool_params(op)
    x, ind = op.inputs
    if ind not in b.argmax:
        raise NotImplementedError(f"MaxUnpooling2D: indices {b.tname(ind)!r} do not come from "
                                  f"a converted MaxPoolingWithArgmax2D")
    _, h, w, C = b.g.tensors[x].shape
    kh, kw = p["FilterHeight"], p["FilterWidth"]
    _window_check(b, op, p, (h * kh, w * kw))
    base = b.tname(op.outputs[0])
    positions = b.init(np.arange(kh * kw, dtype=np.int64), f"{base}_positions")
    hit = b.node("Equal", [b.argmax[ind], positions], f"{base}_hit")[0]  # (N,C,h,w,k)
    axes = b.init(np.array([-1], np.int64), f"{base}_axes")
    v = b.node("Unsqueeze", [b.get(x, "nchw"), axes], f"{base}_value")[0]
    zero = b.init(np.zeros((), np.float32), f"{base}_zero")
    y = b.node("Where", [hit, v, zero], f"{base}_scatter")[0]
    y = b.node("Reshape", [y, b.init(np.array([0, C, h, w, kw, kh], np.int64),
                                     f"{base}_shape6")], f"{base}_split")[0]
    y = b.node("Transpose", [y], f"{base}_tiles", perm=[0, 1, 2, 5, 3, 4])[0]
    y = b.node("Reshape", [y, b.init(np.array([0, C, h * kh, w * kw], np.int64),
                                     f"{base}_shape4")], base)[0]
    b.set(op.outputs[0], b.activation(y, p["FusedActivationFunction"], f"{base}_act"), "nchw")


def _pad(b: _Builder, op: TFLiteOperator) -> None:
    x, p_i = op.inputs[0], op.inputs[1]
    pads = b.const(p_i).astype(np.int64)  # (rank, 2) in TFLite (NHWC) axis order
    lay = b.act_layout(x)
    if lay == "nchw":
        pads = pads[list(_TO_NCHW)]
    ins = [b.get(x, lay), b.init(np.concatenate([pads[:, 0], pads[:, 1]]),
                                 f"{b.tname(p_i)}_onnx")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(b.init(b.fconst(op.inputs[2]).reshape(()), f"{b.tname(op.inputs[2])}_v"))
    b.set(op.outputs[0], b.node("Pad", ins, b.tname(op.outputs[0]), mode="constant")[0], lay)


def _reshape(b: _Builder, op: TFLiteOperator) -> None:
    x = op.inputs[0]
    out_shape = list(b.g.tensors[op.outputs[0]].shape)
    target = list(out_shape) if all(d >= 0 for d in out_shape) else None
    if target is None:
        target = (list(b.const(op.inputs[1]).reshape(-1)) if len(op.inputs) > 1
                  else list(op.options["NewShape"]))
    target = [int(d) for d in target]
    if b.s.dynamic_batch:
        if target[0] != 1 or b.g.tensors[x].shape[0] != 1:
            raise NotImplementedError(f"RESHAPE {b.tname(x)!r} -> {target}: cannot keep the "
                                      f"batch axis symbolic; convert with dynamic_batch=False")
        target[0] = 0  # copy the (symbolic) batch size from the input
    shape = b.init(np.array(target, np.int64), f"{b.tname(op.outputs[0])}_shape")
    y = b.node("Reshape", [b.get(x, "nhwc"), shape], b.tname(op.outputs[0]) + "_nhwc")[0]
    b.set(op.outputs[0], y, "nhwc")


def _concat(b: _Builder, op: TFLiteOperator) -> None:
    r = b.rank(op.outputs[0])
    lay = b.act_layout(op.outputs[0])
    axis = op.options["Axis"] % r
    if lay == "nchw":
        axis = _AXIS_NCHW[axis]
    out = b.tname(op.outputs[0])
    y = b.node("Concat", [b.get(i, lay) for i in op.inputs], out, axis=axis)[0]
    b.set(op.outputs[0], b.activation(y, op.options.get("FusedActivationFunction", 0),
                                      f"{out}_act"), lay)


def _resize(b: _Builder, op: TFLiteOperator, mode: str) -> None:
    o = op.options
    x = op.inputs[0]
    _, H, W, _ = b.g.tensors[x].shape
    oh, ow = (int(v) for v in b.const(op.inputs[1]).reshape(-1))
    if o.get("AlignCorners"):
        ctm, nearest = "align_corners", "round_prefer_ceil"
    elif o.get("HalfPixelCenters"):
        ctm = "half_pixel" if mode == "linear" else "tf_half_pixel_for_nn"
        nearest = "round_prefer_ceil"
    else:
        ctm, nearest = "asymmetric", "floor"
    base = b.tname(op.outputs[0])
    scales = b.init(np.array([1, 1, oh / H, ow / W], np.float32), f"{base}_scales")
    extra = {"nearest_mode": nearest} if mode == "nearest" else {}
    y = b.node("Resize", [b.get(x, "nchw"), "", scales], base, mode=mode,
               coordinate_transformation_mode=ctm, **extra)[0]
    b.set(op.outputs[0], y, "nchw")


def _dequantize(b: _Builder, op: TFLiteOperator) -> None:
    x = op.inputs[0]
    t = b.g.tensors[x]
    if x not in b.consts:
        raise NotImplementedError(f"DEQUANTIZE of the activation {t.name!r}")
    v = t.data.astype(np.float32)
    if t.dtype != np.float16 and t.scale.size:
        shape = [1] * v.ndim
        if t.scale.size > 1:
            shape[t.quantized_dimension] = -1
        v = (v - t.zero_point.reshape(shape)) * t.scale.reshape(shape)
    b.consts[op.outputs[0]] = v.astype(np.float32)


_HANDLERS = {
    "CONV_2D": lambda b, op: _conv(b, op, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda b, op: _conv(b, op, depthwise=True),
    "Convolution2DTransposeBias": _transpose_conv_bias,
    "ADD": lambda b, op: _binary(b, op, "Add"),
    "SUB": lambda b, op: _binary(b, op, "Sub"),
    "MUL": lambda b, op: _binary(b, op, "Mul"),
    "PRELU": _prelu,
    "RELU": _unary("Relu"),
    "RELU6": _unary("Clip6"),
    "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"),
    "HARD_SWISH": _unary("HardSwish"),
    "MAX_POOL_2D": lambda b, op: _pool(b, op, "MaxPool"),
    "AVERAGE_POOL_2D": lambda b, op: _pool(b, op, "AveragePool"),
    "MaxPoolingWithArgmax2D": _max_pool_argmax,
    "MaxUnpooling2D": _max_unpool,
    "PAD": _pad,
    "PADV2": _pad,
    "RESHAPE": _reshape,
    "CONCATENATION": _concat,
    "RESIZE_BILINEAR": lambda b, op: _resize(b, op, "linear"),
    "RESIZE_NEAREST_NEIGHBOR": lambda b, op: _resize(b, op, "nearest"),
    "DEQUANTIZE": _dequantize,
}
#: Operator names (builtin or MediaPipe custom) :func:`tflite_to_onnx` converts.
SUPPORTED_OPS = tuple(sorted(_HANDLERS))


def _value_info(b: _Builder, i: int) -> onnx.ValueInfoProto:
    t = b.g.tensors[i]
    if t.dtype != np.float32:
        raise NotImplementedError(f"graph I/O {t.name!r} is {t.dtype}; only float32 is supported")
    dims: list = list(t.shape)
    if b.s.dynamic_batch and dims:
        dims[0] = "N"
    return helper.make_tensor_value_info(t.name, TensorProto.FLOAT, dims)


def tflite_to_onnx(model: str | Path | TFLiteGraph,
                   settings: ConvertSettings = ConvertSettings()) -> onnx.ModelProto:
    """Convert a float TFLite model to an equivalent ONNX model.

    Args:
        model: a .tflite path or a graph from :func:`~facecraft.export.tflite.reader.read_tflite`.
        settings: opset, batch axis and naming.

    Returns:
        A checked ``onnx.ModelProto``: inputs and outputs carry the TFLite tensors' names and
        NHWC shapes (batch ``N`` when dynamic), float32 throughout.

    Raises:
        NotImplementedError: an operator (named) or a layout this converter does not handle.
    """
    name = settings.graph_name
    if not isinstance(model, TFLiteGraph):
        name = name or Path(model).stem
        model = read_tflite(model)
    b = _Builder(model, settings)
    missing = sorted({op.opcode for op in model.operators} - set(_HANDLERS))
    if missing:
        raise NotImplementedError(f"unsupported TFLite operators: {', '.join(missing)} "
                                  f"(supported: {', '.join(SUPPORTED_OPS)})")
    for i in (*model.inputs, *model.outputs):  # graph I/O keep the TFLite names exactly
        b._used.add(b.tname(i))
    for i in model.inputs:
        b.set(i, b.tname(i), "nhwc")
    for op in model.operators:
        _HANDLERS[op.opcode](b, op)
    for i in model.outputs:
        src = b.get(i, "nhwc")
        b.nodes.append(helper.make_node("Identity", [src], [b.tname(i)],
                                        name=b.fresh(f"{b.tname(i)}/output")))
    graph = helper.make_graph(b.nodes, name or "tflite", [_value_info(b, i) for i in model.inputs],
                              [_value_info(b, i) for i in model.outputs], initializer=b.inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", settings.opset)],
                            producer_name="facecraft.export.tflite",
                            doc_string=settings.doc_string)
    out.ir_version = 8  # readable by every onnxruntime >= 1.14 and TensorRT 8.6+
    onnx.checker.check_model(out, full_check=True)
    return out
