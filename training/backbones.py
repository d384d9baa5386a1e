"""Image backbones for the coefficient regressor: ResNet (He et al. 2016) and MobileNetV2.

Written from scratch in the torchvision layout (``BasicBlock``/``Bottleneck``/``ResNet``, inverted
residual blocks for MobileNetV2) so the project does not depend on torchvision. Parameter names
follow torchvision's for ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``...), minus the classifier;
MobileNetV2's trunk is ``features_net`` (``features`` is the pooling method), so a torchvision state
dict would need a named key-migration function, never a silent rename.

Every backbone is headless: ``forward(x)`` and ``features(x)`` both take ``(B, 3, H, W)`` float
images (already normalised, see :class:`facecraft.training.regressor.InputSpec`) and return the
globally average-pooled ``(B, C)`` feature vector, ``C = backbone.out_features``. Any ``H, W`` of at
least 32 px works (five stride-2 stages).

Weights are **randomly initialised only** (Kaiming-normal convolutions, unit BatchNorm): no
pretrained ImageNet weights exist offline, and none are downloaded. Deng et al. 2019 start from an
ImageNet ResNet-50; training here starts from scratch (or from a FaceCraft checkpoint).

Builders are keyword-only and registered: ``get_backbone("resnet18", width=16)`` and
:func:`list_backbones`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "InvertedResidual",
    "MobileNetV2",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "get_backbone",
    "list_backbones",
]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pool ``(B, C, H, W) -> (B, C)`` (exports to ONNX as one ReduceMean)."""
    return x.mean(dim=(2, 3))


def _check_images(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"expected x a torch.Tensor (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise InvalidInputError(f"expected x (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidInputError(f"expected x a floating-point tensor, got {x.dtype}")
    return x


def _init_weights(module: nn.Module) -> None:
    """torchvision's init: Kaiming-normal (fan_out) convs, BN weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------- ResNet
def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, the "ResNet v1.5" placement), 1x1 expand x4 (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A headless ResNet: stem (7x7/2 conv, 3x3/2 max-pool), four stages, global average pool.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        width: channels of the stem and first stage (64 in the paper); stages use
            ``width * (1, 2, 4, 8) * block.expansion``. Small widths (8, 16) make test models.
        zero_init_residual: zero the last BatchNorm of each block so every block starts as the
            identity (Goyal et al. 2017).

    Attributes:
        out_features: ``C`` of the pooled output, ``8 * width * block.expansion``.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...], *,
                 width: int = 64, zero_init_residual: bool = False) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise InvalidInputError(f"expected layers 4 positive block counts, got {layers}")
        if int(width) < 1:
            raise InvalidInputError(f"expected width >= 1, got {width}")
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.out_features = width * 8 * block.expansion
        _init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else (
                    getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None)
                if last is not None:
                    nn.init.zeros_(last.weight)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features.

        Args:
            x: (B, 3, H, W) float, normalised images, H and W >= 32.

        Returns:
            (B, out_features) float, the global average of the last stage ("pool5").
        """
        x = _check_images(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return _pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`features`: (B, 3, H, W) -> (B, out_features)."""
        return self.features(x)


def _resnet(block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...],
            **kwargs: Any) -> ResNet:
    return ResNet(block, layers, **kwargs)


@_register
def resnet18(*, width: int = 64, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18, random init; ``out_features = 8 * width`` (512)."""
    return _resnet(BasicBlock, (2, 2, 2, 2), width=width, zero_init_residual=zero_init_residual)


@_register
def resnet34(*, width: int = 64, zero_init_residual: bool = False) -> ResNet:
    """ResNet-34, random init; ``out_features = 8 * width`` (512)."""
    return _resnet(BasicBlock, (3, 4, 6, 3), width=width, zero_init_residual=zero_init_residual)


@_register
def resnet50(*, width: int = 64, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 (Deng et al.'s R-Net trunk), random init; ``out_features = 32 * width`` (2048)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), width=width, zero_init_residual=zero_init_residual)


# ----------------------------------------------------------------------------- MobileNetV2
def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor``, never more than 10 % down (MobileNet rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                   groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear project; residual if shapes match.
    """

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise InvalidInputError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(cin, hidden, kernel=1))
        layers += [_conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


#: (expansion t, channels c, repeats n, first stride s) per stage (Sandler et al. 2018, Table 2).
_MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                  (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """A headless MobileNetV2: 3x3/2 stem, 17 inverted residual blocks, 1x1 conv, global pool.

    Args:
        width_mult: channel multiplier (1.0 in the paper; 0.25-0.5 for tests and phones).
        round_nearest: channels are rounded to a multiple of this.

    Attributes:
        out_features: ``C`` of the pooled output: 1280 for ``width_mult <= 1``, else
            ``1280 * width_mult`` rounded.
    """

    def __init__(self, *, width_mult: float = 1.0, round_nearest: int = 8) -> None:
        super().__init__()
        if not width_mult > 0:
            raise InvalidInputError(f"expected width_mult > 0, got {width_mult}")
        cin = _make_divisible(32 * width_mult, round_nearest)
        last = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        feats: list[nn.Module] = [_conv_bn_relu6(3, cin, stride=2)]
        for t, c, n, s in _MBV2_SETTINGS:
            cout = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(_conv_bn_relu6(cin, last, kernel=1))
        self.features_net = nn.Sequential(*feats)
        self.out_features = last
        _init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features.

        Args:
            x: (B, 3, H, W) float, normalised images, H and W >= 32.

        Returns:
            (B, out_features) float.
        """
        return _pool(self.features_net(_check_images(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`features`: (B, 3, H, W) -> (B, out_features)."""
        return self.features(x)


@_register
def mobilenet_v2(*, width_mult: float = 1.0, round_nearest: int = 8) -> MobileNetV2:
    """MobileNetV2, random init; ``out_features`` 1280 for ``width_mult <= 1``."""
    return MobileNetV2(width_mult=width_mult, round_nearest=round_nearest)


# -------------------------------------------------------------------------------- registry
def list_backbones() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_REGISTRY)


def get_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered backbone by name.

    Args:
        name: one of :func:`list_backbones`.
        **kwargs: the builder's keyword arguments (e.g. ``width=16`` for ResNets,
            ``width_mult=0.5`` for MobileNetV2).

    Returns:
        A randomly initialised module with ``out_features`` and ``features(x)``.

    Raises:
        InvalidInputError: an unknown name, or arguments the builder does not take.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(f"unknown backbone {name!r}; choose one of "
                                f"{list_backbones()}") from None
    try:
        return builder(**kwargs)
    except TypeError as e:
        raise InvalidInputError(
            f"backbone {name!r} does not accept {sorted(kwargs)}: {e}") from None
