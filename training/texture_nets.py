"""The graph-convolutional texture networks of Lin et al., CVPR 2020, and their patch critic.

Three GCNs on the face model's mesh hierarchy (:class:`~facecraft.sdk.models.mesh_graph.MeshGraph`,
``model.graph``) turn a coarse 3DMM albedo into a detailed per-vertex one:

* :class:`TextureDecoder`: an image feature (B, F) -> FC -> coarsest level x 32 channels ->
  4 x (unpool + Chebyshev conv + ELU), widths 16 -> Chebyshev conv -> (B, V, 3).
* :class:`TextureRefiner`: per vertex (B, V, 7) = coarse albedo (3) + photo colour at the
  projected vertex (3) + visibility (1) -> Cheb 16 -> 4 x (pool + Cheb) widths 16/32/64/128 ->
  FC 512 -> FC back -> 4 x (unpool + Cheb), concatenating the encoder's features of the same
  level at the first ``refiner_skips`` up-steps (2, coarsest first, as the official code does:
  the levels of 560 and 2.2k vertices on its BFM mesh) -> Cheb -> (B, V, 3).
* :class:`TextureCombiner`: the two results concatenated (B, V, 6) -> Cheb -> 3 -> tanh.

:class:`FineTextureNet` holds all three (sharing one set of graph buffers) and returns a
:class:`FineTextureOutput`. :class:`PatchDiscriminator` is the adversarial critic on rendered
images. Layer sizes follow ``../shared/reference/METHOD.md``; the FC layers are sized from the
graph's coarsest level, so any hierarchy works (several mesh components, any coarsest size).

Colour convention
-----------------
Inputs are in data units: albedo and photo colours linear RGB in [0, 1], visibility 0/1 (photo
colour 0 where hidden, as :func:`facecraft.sdk.render.sampling.sample_vertex_colors` gives it). The
nets
work and predict in *signed colour* ``s = 2 c - 1`` (:func:`albedo_to_signed`):
``decoder_out``, ``refiner_out`` and ``fine_texture`` are signed, ``fine_texture`` lies in
(-1, 1) through the combiner's tanh, and the fine albedo is ``(fine_texture + 1) / 2``
(:attr:`FineTextureOutput.fine`, :func:`signed_to_albedo`).

Residuals (``TextureNetConfig.residual``, default on)
------------------------------------------------------
The refiner predicts a residual over the coarse albedo: ``refiner_out = (2 T - 1) + delta``;
the combiner one over the refiner, in tanh's pre-activation space:
``fine_texture = tanh(atanh(clip(refiner_out, +-0.999)) + Cheb([decoder_out, refiner_out]))``.
Both final convolutions start with weights scaled by 0.1, so an untrained net returns nearly
the coarse albedo (the starting point the paper's ``L_vert(T, T')`` term pulls towards), while
every parameter still gets a gradient on the first step. With ``residual=False`` the layers
are the paper's plain ones (``fine_texture = tanh(Cheb([decoder_out, refiner_out]))``). The
decoder has no residual: it makes a texture from the image feature alone.

Every graph operation runs in the ``"sparse"`` form (training) or the ONNX-exportable
``"gather"`` form (:mod:`facecraft.training.graph_conv`); pass ``form=`` or call ``set_form``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh_graph import MeshGraph

from .graph_conv import (
    ChebConv,
    GraphForm,
    GraphResample,
    MeshGraphBuffers,
    set_graph_form,
)

__all__ = [
    "TextureNetConfig",
    "DiscriminatorConfig",
    "FineTextureOutput",
    "TextureDecoder",
    "TextureRefiner",
    "TextureCombiner",
    "FineTextureNet",
    "PatchDiscriminator",
    "REFINER_IN_CHANNELS",
    "albedo_to_signed",
    "signed_to_albedo",
]

#: Per-vertex refiner input: coarse albedo (3), photo colour (3), visibility (1).
REFINER_IN_CHANNELS = 7
_ACTIVATIONS = ("elu", "relu", "leaky_relu")
_RESIDUAL_INIT = 0.1  # scale of the final convolutions' initial weights when residual
_ATANH_CLIP = 0.999


def albedo_to_signed(c: torch.Tensor) -> torch.Tensor:
    """[0, 1] colour to the nets' signed colour ``2 c - 1`` (any shape)."""
    return 2.0 * c - 1.0


def signed_to_albedo(s: torch.Tensor) -> torch.Tensor:
    """The nets' signed colour to [0, 1] colour ``(s + 1) / 2`` (any shape; not clipped)."""
    return 0.5 * (s + 1.0)


def _positive_tuple(cfg: Any, name: str) -> None:
    val = getattr(cfg, name)
    try:
        t = tuple(int(v) for v in val)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a sequence of positive ints, got {val!r}") \
            from None
    if not t or min(t) < 1 or any(int(v) != v for v in val):
        raise InvalidInputError(f"{name} must be a non-empty sequence of positive ints, "
                                f"got {val!r}")
    object.__setattr__(cfg, name, t)


def _positive_int(cfg: Any, name: str) -> None:
    val = getattr(cfg, name)
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
        raise InvalidInputError(f"{name} must be a positive int, got {val!r}")


@dataclass(frozen=True)
class TextureNetConfig:
    """Sizes of the three texture GCNs (Lin et al.'s official values by default).

    Sequences may be given as lists (e.g. from JSON); they are stored as tuples.

    Attributes:
        feature_dim: F, length of the decoder's input feature (the paper: ResNet-50 pool5
            2048 + FaceNet 1792 = 3840; use your regressor's feature length).
        K: Chebyshev order of every graph convolution (6).
        decoder_widths: output channels of the decoder's up-steps, coarsest first (16 x 4); the
            decoder uses ``len(decoder_widths) + 1`` graph levels.
        decoder_coarse_channels: channels per coarsest-level vertex after the decoder's FC (32).
        refiner_stem_width: channels of the refiner's first convolution at full resolution (16).
        refiner_widths: channels after each pool + conv of the refiner, finest first
            (16, 32, 64, 128); its up-path mirrors them. Uses ``len + 1`` levels.
        refiner_skips: how many of the refiner's up-steps, coarsest first, concatenate the
            encoder's features of their level (2 as in the official code; ``len(
            refiner_widths)`` for a full U-Net, 0 for none).
        bottleneck: width of the refiner's FC bottleneck (512).
        activation: ``"elu"`` (the paper's), ``"relu"`` or ``"leaky_relu"`` (slope 0.2).
        residual: refiner and combiner predict residuals (module docstring); ``False`` gives the
            paper's plain layers.
    """

    feature_dim: int = 3840
    K: int = 6
    decoder_widths: tuple[int, ...] = (16, 16, 16, 16)
    decoder_coarse_channels: int = 32
    refiner_stem_width: int = 16
    refiner_widths: tuple[int, ...] = (16, 32, 64, 128)
    refiner_skips: int = 2
    bottleneck: int = 512
    activation: str = "elu"
    residual: bool = True

    def __post_init__(self) -> None:
        for name in ("feature_dim", "K", "decoder_coarse_channels", "refiner_stem_width",
                     "bottleneck"):
            _positive_int(self, name)
        for name in ("decoder_widths", "refiner_widths"):
            _positive_tuple(self, name)
        s = self.refiner_skips
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= len(
                self.refiner_widths):
            raise InvalidInputError(f"refiner_skips must be an int in [0, "
                                    f"{len(self.refiner_widths)}], got {s!r}")
        if self.activation not in _ACTIVATIONS:
            raise InvalidInputError(
                f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if not isinstance(self.residual, bool):
            raise InvalidInputError(f"residual must be a bool, got {self.residual!r}")

    @property
    def num_levels(self) -> int:
        """Graph levels the nets need: one more than the longer of the two width lists."""
        return max(len(self.decoder_widths), len(self.refiner_widths)) + 1


def _activation(name: str) -> nn.Module:
    if name == "elu":
        return nn.ELU()
    if name == "relu":
        return nn.ReLU()
    return nn.LeakyReLU(0.2)


def _buffers(graph: MeshGraph | MeshGraphBuffers, levels: int, what: str) -> MeshGraphBuffers:
    """Shared graph buffers with at least ``levels`` levels."""
    if not isinstance(graph, MeshGraph | MeshGraphBuffers):
        raise InvalidInputError(
            f"graph must be a MeshGraph (model.graph) or MeshGraphBuffers, got "
            f"{type(graph).__name__}; a model without a graph needs "
            "facecraft.sdk.models.mesh_graph.build_mesh_graph first")
    if graph.num_levels < levels:
        raise InvalidInputError(
            f"the {what} needs a mesh graph with {levels} levels, this one has "
            f"{graph.num_levels}: build it with {levels - 1} factors or use shorter width "
            "lists in TextureNetConfig")
    if isinstance(graph, MeshGraphBuffers):
        return graph
    return MeshGraphBuffers(graph, num_levels=levels)


def _scale_init(conv: ChebConv, scale: float) -> None:
    with torch.no_grad():
        conv.weight.mul_(scale)


def _check(x: Any, name: str, shape: str, ndim: int) -> bool:
    """Raise unless ``x`` is a tensor of ``ndim`` dims; False while tracing (skip the checks:
    shapes are traced tensors then, checked when the module runs eagerly)."""
    if torch.jit.is_tracing():
        return False
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InvalidInputError(f"expected {name} {shape}, got {got}")
    return True


class _GraphNet(nn.Module):
    """Shared plumbing: the config, the graph buffers and ``set_form``."""

    config: TextureNetConfig
    graph_buffers: MeshGraphBuffers

    def set_form(self, form: GraphForm) -> _GraphNet:
        """Switch every graph operation of this net to ``"sparse"`` or ``"gather"``."""
        set_graph_form(self, form)
        return self

    @property
    def num_vertices(self) -> int:
        """V, the full-resolution vertex count."""
        return self.graph_buffers.sizes[0]


class TextureDecoder(_GraphNet):
    """Decode an image feature into a per-vertex texture (Lin et al.'s GCN decoder).

    ``FC + act -> (V_n, 32) -> [unpool, Cheb, act] per up-step -> Cheb -> 3``, the FC sized
    ``feature_dim -> V_n * decoder_coarse_channels`` from the graph's coarsest used level ``n``.

    Args:
        graph: the face model's :class:`~facecraft.sdk.models.mesh_graph.MeshGraph` or shared
            :class:`~facecraft.training.graph_conv.MeshGraphBuffers`.
        config: sizes (default :class:`TextureNetConfig`).
        form: ``"sparse"`` or ``"gather"``.
    """

    def __init__(self, graph: MeshGraph | MeshGraphBuffers,
                 config: TextureNetConfig | None = None, *, form: GraphForm = "sparse") -> None:
        super().__init__()
        cfg = config if config is not None else TextureNetConfig()
        self.config = cfg
        n = len(cfg.decoder_widths)
        self.graph_buffers = g = _buffers(graph, n + 1, "decoder")
        self.coarse_vertices = g.sizes[n]
        self.fc = nn.Linear(cfg.feature_dim, self.coarse_vertices * cfg.decoder_coarse_channels)
        self.act = _activation(cfg.activation)
        self.unpools = nn.ModuleList()
        self.convs = nn.ModuleList()
        prev = cfg.decoder_coarse_channels
        for j, width in enumerate(cfg.decoder_widths):
            level = n - 1 - j
            self.unpools.append(GraphResample(g.up[level], form=form))
            self.convs.append(ChebConv(prev, width, cfg.K, laplacian=g.laplacians[level],
                                       form=form))
            prev = width
        self.out_conv = ChebConv(prev, 3, cfg.K, laplacian=g.laplacians[0], form=form)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Decode.

        Args:
            feature: (B, F) float image feature.

        Returns:
            (B, V, 3) float signed colour (``2 c - 1``; not bounded).
        """
        if (_check(feature, "feature", f"(B, {self.config.feature_dim})", 2)
                and feature.shape[1] != self.config.feature_dim):
            raise InvalidInputError(f"expected feature (B, {self.config.feature_dim}), got "
                                    f"{tuple(feature.shape)}")
        h = self.act(self.fc(feature)).reshape(-1, self.coarse_vertices,
                                                 self.config.decoder_coarse_channels)
        h = h.transpose(0, 1)  # vertex-major (V, B, C) inside, see graph_conv
        for unpool, conv in zip(self.unpools, self.convs, strict=True):
            h = self.act(conv.vertex_major(unpool.vertex_major(h)))
        return self.out_conv.vertex_major(h).transpose(0, 1)


class TextureRefiner(_GraphNet):
    """Refine the coarse albedo with the photo's colours (Lin et al.'s GCN refiner, a U-Net).

    ``Cheb + act (stem) -> [pool, Cheb, act] per level -> FC to the bottleneck (no act) -> FC
    back + act -> [unpool, concat skip (first refiner_skips steps), Cheb, act] per level ->
    Cheb -> 3``; the FCs are sized ``V_n * refiner_widths[-1] <-> bottleneck`` from the graph.
    Colours enter in signed form (``2 c - 1``), visibility as given.

    Args:
        graph: the face model's :class:`~facecraft.sdk.models.mesh_graph.MeshGraph` or shared
            :class:`~facecraft.training.graph_conv.MeshGraphBuffers`.
        config: sizes (default :class:`TextureNetConfig`).
        form: ``"sparse"`` or ``"gather"``.
    """

    def __init__(self, graph: MeshGraph | MeshGraphBuffers,
                 config: TextureNetConfig | None = None, *, form: GraphForm = "sparse") -> None:
        super().__init__()
        cfg = config if config is not None else TextureNetConfig()
        self.config = cfg
        n = len(cfg.refiner_widths)
        self.graph_buffers = g = _buffers(graph, n + 1, "refiner")
        self.act = _activation(cfg.activation)
        k = cfg.K
        widths = (cfg.refiner_stem_width, *cfg.refiner_widths)  # channels at level l
        self.stem = ChebConv(REFINER_IN_CHANNELS, widths[0], k, laplacian=g.laplacians[0],
                             form=form)
        self.pools = nn.ModuleList()
        self.down_convs = nn.ModuleList()
        for i in range(n):
            self.pools.append(GraphResample(g.down[i], form=form))
            self.down_convs.append(ChebConv(widths[i], widths[i + 1], k,
                                            laplacian=g.laplacians[i + 1], form=form))
        self.coarse_vertices = g.sizes[n]
        self.coarse_channels = widths[n]
        flat = self.coarse_vertices * self.coarse_channels
        self.fc_in = nn.Linear(flat, cfg.bottleneck)
        self.fc_out = nn.Linear(cfg.bottleneck, flat)
        self.unpools = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        self.skip_levels = tuple(n - 1 - j for j in range(cfg.refiner_skips))
        prev = widths[n]
        for j in range(n):
            level = n - 1 - j
            self.unpools.append(GraphResample(g.up[level], form=form))
            cin = prev + (widths[level] if level in self.skip_levels else 0)
            self.up_convs.append(ChebConv(cin, widths[level], k, laplacian=g.laplacians[level],
                                          form=form))
            prev = widths[level]
        self.out_conv = ChebConv(prev, 3, k, laplacian=g.laplacians[0], form=form)
        if cfg.residual:
            _scale_init(self.out_conv, _RESIDUAL_INIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine.

        Args:
            x: (B, V, 7) float: coarse albedo [0, 1] (3), photo colour [0, 1] at the projected
                vertex, 0 where hidden (3), visibility 0/1 (1).

        Returns:
            (B, V, 3) float signed colour: ``2 T - 1 + delta`` when ``config.residual``, else
            the conv's output (not bounded).
        """
        v = self.num_vertices
        if (_check(x, "x", f"(B, {v}, {REFINER_IN_CHANNELS})", 3)
                and (x.shape[1] != v or x.shape[2] != REFINER_IN_CHANNELS)):
            raise InvalidInputError(
                f"expected x (B, {v}, {REFINER_IN_CHANNELS}) = coarse albedo, photo colour, "
                f"visibility; got {tuple(x.shape)}")
        coarse = albedo_to_signed(x[..., :3])
        xv = x.transpose(0, 1)  # vertex-major (V, B, C) inside, see graph_conv
        h = torch.cat([albedo_to_signed(xv[..., :6]), xv[..., 6:]], dim=-1)
        h = self.act(self.stem.vertex_major(h))
        skips = [h]
        for pool, conv in zip(self.pools, self.down_convs, strict=True):
            h = self.act(conv.vertex_major(pool.vertex_major(h)))
            skips.append(h)
        z = self.fc_in(h.transpose(0, 1).flatten(1))
        h = self.act(self.fc_out(z)).reshape(-1, self.coarse_vertices, self.coarse_channels)
        h = h.transpose(0, 1)
        n = len(self.up_convs)
        for j, (unpool, conv) in enumerate(zip(self.unpools, self.up_convs, strict=True)):
            level = n - 1 - j
            h = unpool.vertex_major(h)
            if level in self.skip_levels:
                h = torch.cat([h, skips[level]], dim=-1)
            h = self.act(conv.vertex_major(h))
        delta = self.out_conv.vertex_major(h).transpose(0, 1)
        return coarse + delta if self.config.residual else delta


class TextureCombiner(_GraphNet):
    """Blend the decoder's and the refiner's textures: Cheb (K) on 6 channels -> 3 -> tanh.

    Args:
        graph: the face model's :class:`~facecraft.sdk.models.mesh_graph.MeshGraph` or shared
            :class:`~facecraft.training.graph_conv.MeshGraphBuffers`.
        config: ``K`` and ``residual`` are used.
        form: ``"sparse"`` or ``"gather"``.
    """

    def __init__(self, graph: MeshGraph | MeshGraphBuffers,
                 config: TextureNetConfig | None = None, *, form: GraphForm = "sparse") -> None:
        super().__init__()
        cfg = config if config is not None else TextureNetConfig()
        self.config = cfg
        self.graph_buffers = g = _buffers(graph, 1, "combiner")
        self.conv = ChebConv(6, 3, cfg.K, laplacian=g.laplacians[0], form=form)
        if cfg.residual:
            _scale_init(self.conv, _RESIDUAL_INIT)

    def forward(self, decoder_out: torch.Tensor, refiner_out: torch.Tensor) -> torch.Tensor:
        """Combine.

        Args:
            decoder_out: (B, V, 3) float signed colour.
            refiner_out: (B, V, 3) float signed colour.

        Returns:
            (B, V, 3) float fine texture, signed colour in (-1, 1).
        """
        v = self.num_vertices
        for name, t in (("decoder_out", decoder_out), ("refiner_out", refiner_out)):
            if _check(t, name, f"(B, {v}, 3)", 3) and t.shape[1:] != (v, 3):
                raise InvalidInputError(f"expected {name} (B, {v}, 3), got {tuple(t.shape)}")
        if not torch.jit.is_tracing() and decoder_out.shape[0] != refiner_out.shape[0]:
            raise InvalidInputError(f"decoder_out and refiner_out batch sizes differ: "
                                    f"{decoder_out.shape[0]} vs {refiner_out.shape[0]}")
        delta = self.conv(torch.cat([decoder_out, refiner_out], dim=-1))
        if self.config.residual:
            r = refiner_out.clamp(-_ATANH_CLIP, _ATANH_CLIP)
            base = 0.5 * torch.log((1.0 + r) / (1.0 - r))  # atanh, in ops ONNX export knows
            return torch.tanh(base + delta)
        return torch.tanh(delta)


@dataclass(frozen=True)
class FineTextureOutput:
    """What :class:`FineTextureNet` returns; all (B, V, 3) float signed colour (``2 c - 1``).

    Attributes:
        decoder_out: the decoder's texture from the image feature (not bounded).
        refiner_out: the refiner's texture (not bounded).
        fine_texture: the combiner's fine texture, in (-1, 1).
    """

    decoder_out: torch.Tensor
    refiner_out: torch.Tensor
    fine_texture: torch.Tensor

    @property
    def fine(self) -> torch.Tensor:
        """(B, V, 3) float fine albedo in (0, 1): ``(fine_texture + 1) / 2``, linear RGB."""
        return signed_to_albedo(self.fine_texture)

    def detach(self) -> FineTextureOutput:
        return FineTextureOutput(*(t.detach() for t in (self.decoder_out, self.refiner_out,
                                                        self.fine_texture)))


class FineTextureNet(_GraphNet):
    """Decoder, refiner and combiner on one shared set of graph buffers.

    Args:
        graph: the face model's :class:`~facecraft.sdk.models.mesh_graph.MeshGraph`
            (``model.graph``) or shared :class:`~facecraft.training.graph_conv.MeshGraphBuffers`.
        config: sizes (default :class:`TextureNetConfig`).
        feature_dim: overrides ``config.feature_dim`` (the stored :attr:`config` shows the
            value used).
        form: ``"sparse"`` or ``"gather"``.

    Attributes:
        decoder, refiner, combiner: the three nets.
        config: the :class:`TextureNetConfig` in use.
    """

    def __init__(self, graph: MeshGraph | MeshGraphBuffers,
                 config: TextureNetConfig | None = None, *, feature_dim: int | None = None,
                 form: GraphForm = "sparse") -> None:
        super().__init__()
        cfg = config if config is not None else TextureNetConfig()
        if feature_dim is not None:
            cfg = dataclasses.replace(cfg, feature_dim=feature_dim)
        self.config = cfg
        self.graph_buffers = g = _buffers(graph, cfg.num_levels, "texture nets")
        self.decoder = TextureDecoder(g, cfg, form=form)
        self.refiner = TextureRefiner(g, cfg, form=form)
        self.combiner = TextureCombiner(g, cfg, form=form)

    def forward(self, feature: torch.Tensor, refiner_input: torch.Tensor) -> FineTextureOutput:
        """Predict the fine texture.

        Args:
            feature: (B, F) float image feature (the decoder's input).
            refiner_input: (B, V, 7) float: coarse albedo [0, 1], photo colour [0, 1] (0 where
                hidden), visibility 0/1.

        Returns:
            :class:`FineTextureOutput`; its ``fine`` is the (B, V, 3) albedo in (0, 1).
        """
        if (not torch.jit.is_tracing() and isinstance(feature, torch.Tensor)
                and isinstance(refiner_input, torch.Tensor)
                and feature.ndim >= 1 and refiner_input.ndim >= 1
                and feature.shape[0] != refiner_input.shape[0]):
            raise InvalidInputError(f"feature and refiner_input batch sizes differ: "
                                    f"{feature.shape[0]} vs {refiner_input.shape[0]}")
        d = self.decoder(feature)
        r = self.refiner(refiner_input)
        return FineTextureOutput(decoder_out=d, refiner_out=r, fine_texture=self.combiner(d, r))


# ---------------------------------------------------------------------------- discriminator
_NORMS = ("layer", "instance", "none")
_OUTPUTS = ("image", "patch")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The patch critic's sizes.

    Attributes:
        channels: conv widths; the first conv keeps full resolution, each later one follows a
            2x2 max-pool (16 ... 512: five pools, so the patch map is H/32 x W/32).
        norm: ``"layer"`` (default; GroupNorm with one group = LayerNorm over (C, H, W) per
            image, with a per-channel affine), ``"instance"`` or ``"none"``. Not BatchNorm (the
            official code's): WGAN-GP penalises the gradient of each image's score with respect
            to that image, and BatchNorm makes a score depend on the other images of the batch
            (Gulrajani et al. 2017 recommend layer normalisation). InstanceNorm removes each
            channel's mean and contrast per image, which hides the colour cast a texture critic
            should see; hence "layer". No norm on the first conv.
        negative_slope: of the LeakyReLU activations.
        output: ``"image"``: one score per image, the mean of the patch map, (B,);
            ``"patch"``: the map itself, (B, 1, H / 2^p, W / 2^p).
    """

    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    norm: str = "layer"
    negative_slope: float = 0.2
    output: str = "image"

    def __post_init__(self) -> None:
        _positive_tuple(self, "channels")
        if self.norm not in _NORMS:
            raise InvalidInputError(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if self.output not in _OUTPUTS:
            raise InvalidInputError(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        if not 0.0 <= float(self.negative_slope) < 1.0:
            raise InvalidInputError(
                f"negative_slope must lie in [0, 1), got {self.negative_slope!r}")


class PatchDiscriminator(nn.Module):
    """Patch CNN critic on rendered images (WGAN-GP; Lin et al.'s discriminator, 16 -> 512).

    3x3 convs with LeakyReLU, a 2x2 max-pool before every conv after the first, normalisation
    per :class:`DiscriminatorConfig`, then a 3x3 conv to one score per patch (the official code
    ends in a 7x7 conv to one scalar at 224 px; the mean of the patch map works at any size).
    No sigmoid: WGAN scores are unbounded.

    Args:
        config: sizes (default :class:`DiscriminatorConfig`).
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else DiscriminatorConfig()
        self.config = cfg
        layers: list[nn.Module] = []
        prev = 3
        for i, c in enumerate(cfg.channels):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.Conv2d(prev, c, 3, padding=1, bias=not (i and cfg.norm != "none")))
            if i and cfg.norm == "layer":
                layers.append(nn.GroupNorm(1, c))
            elif i and cfg.norm == "instance":
                layers.append(nn.InstanceNorm2d(c, affine=True))
            layers.append(nn.LeakyReLU(cfg.negative_slope))
            prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(prev, 1, 3, padding=1)
        self.min_size = 2 ** (len(cfg.channels) - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Score images.

        Args:
            images: (B, 3, H, W) float, H and W >= 2^(len(channels) - 1) (32 by default), in
                the same range for real and generated images (e.g. [0, 1] renders).

        Returns:
            (B,) float scores, or (B, 1, H / 32, W / 32) with ``output="patch"``.
        """
        if _check(images, "images", "(B, 3, H, W)", 4) and (
                images.shape[1] != 3 or min(images.shape[2:]) < self.min_size):
            raise InvalidInputError(f"expected images (B, 3, H, W) with H, W >= "
                                    f"{self.min_size}, got {tuple(images.shape)}")
        patches = self.head(self.features(images))
        return patches.mean(dim=(1, 2, 3)) if self.config.output == "image" else patches
