"""Tests of facecraft.training.texture_nets: the GCN decoder, refiner, combiner and the critic."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile

import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.models.mesh_graph import MeshGraph, build_mesh_graph
from facecraft.training.graph_conv import graph_forms, persistent_graph_buffers
from facecraft.training.texture_nets import (
    DiscriminatorConfig,
    FineTextureNet,
    FineTextureOutput,
    PatchDiscriminator,
    TextureCombiner,
    TextureDecoder,
    TextureNetConfig,
    TextureRefiner,
    albedo_to_signed,
    signed_to_albedo,
)

from ..conftest import assets_or_skip

ICT_NEUTRAL = "FaceXModel/generic_neutral_mesh.obj"
FEATURE = 48  # a small decoder input keeps the FC layers small in tests


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the test machine's cores are shared; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def starter():
    return load_default_model()


@pytest.fixture(scope="module")
def ict_graph(tmp_path_factory) -> MeshGraph:
    """The (4, 4, 4, 4) hierarchy of ICT-FaceKit's full neutral mesh: 26,719 vertices with
    eyeballs, teeth and lashes as separate components. The graph depends only on the neutral
    mesh, so only that OBJ is unpacked (streamed), not the 160 meshes the importer reads."""
    tarball = assets_or_skip("face-models", "ict-facekit", "FaceXModel.tar.xz")
    path = tmp_path_factory.mktemp("ict_neutral") / "generic_neutral_mesh.obj"
    with tarfile.open(tarball, "r|xz") as tf:
        for member in tf:
            if member.name == ICT_NEUTRAL:
                path.write_bytes(tf.extractfile(member).read())
                break
    mesh = read_obj(path)
    return build_mesh_graph(mesh.vertices, mesh.triangles)


def refiner_input(b: int, v: int, seed: int = 0) -> torch.Tensor:
    """(B, V, 7): coarse albedo, photo colour (0 where hidden), visibility 0/1."""
    g = torch.Generator().manual_seed(seed)
    vis = (torch.rand(b, v, 1, generator=g) > 0.3).float()
    coarse = 0.3 + 0.4 * torch.rand(b, v, 3, generator=g)
    photo = torch.rand(b, v, 3, generator=g) * vis
    return torch.cat([coarse, photo, vis], dim=-1)


def check_every_block(graph: MeshGraph, cfg: TextureNetConfig, b: int) -> None:
    """Run decoder, refiner and combiner and check each graph op's input and output size."""
    torch.manual_seed(0)
    net = FineTextureNet(graph, cfg).eval()
    sizes = graph.sizes
    v = sizes[0]
    n_dec, n_ref = len(cfg.decoder_widths), len(cfg.refiner_widths)
    # the layer sizes the constructors chose from the graph, then every block's output
    assert net.decoder.fc.out_features == sizes[n_dec] * cfg.decoder_coarse_channels
    assert net.refiner.fc_in.in_features == sizes[n_ref] * cfg.refiner_widths[-1]
    assert [p.out_vertices for p in net.refiner.pools] == list(sizes[1:n_ref + 1])
    assert [u.out_vertices for u in net.refiner.unpools] == list(sizes[:n_ref][::-1])
    assert [c.num_vertices for c in net.refiner.down_convs] == list(sizes[1:n_ref + 1])
    assert [c.num_vertices for c in net.decoder.convs] == list(sizes[:n_dec][::-1])
    widths = [c.out_channels for c in net.refiner.up_convs]
    assert widths == [*cfg.refiner_widths[-2::-1], cfg.refiner_stem_width]
    feature = torch.randn(b, cfg.feature_dim)
    x = refiner_input(b, v)
    with torch.no_grad():
        d = net.decoder(feature)
        r = net.refiner(x)
        f = net.combiner(d, r)
        out = net(feature, x)
    for t in (d, r, f, out.decoder_out, out.refiner_out, out.fine_texture, out.fine):
        assert t.shape == (b, v, 3) and torch.isfinite(t).all()
    assert f.abs().max() < 1 and 0 < out.fine.min() and out.fine.max() < 1
    assert torch.allclose(out.fine_texture, f)
    assert torch.allclose(out.fine, signed_to_albedo(f))


# ------------------------------------------------------------------------------ shapes
def test_every_block_on_the_starter(starter):
    check_every_block(starter.graph, TextureNetConfig(feature_dim=FEATURE), b=2)


@pytest.mark.slow
def test_every_block_on_ict(ict_graph):
    check_every_block(ict_graph, TextureNetConfig(feature_dim=FEATURE), b=1)


@pytest.mark.slow
def test_refiner_forms_equal_on_ict(ict_graph):
    torch.manual_seed(0)
    net = TextureRefiner(ict_graph).eval()
    x = refiner_input(1, ict_graph.sizes[0])
    with torch.no_grad():
        a = net.set_form("sparse")(x)
        b = net.set_form("gather")(x)
    assert (a - b).abs().max() < 1e-5


def test_graph_op_shapes_through_the_refiner(starter):
    g = starter.graph
    net = TextureRefiner(g, TextureNetConfig(feature_dim=FEATURE, refiner_skips=4))
    net.eval()
    x = refiner_input(2, g.sizes[0])
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, g.sizes[0], 3)
    h = net.stem.vertex_major(x.transpose(0, 1))
    assert h.shape == (g.sizes[0], 2, 16)
    for level, (pool, conv) in enumerate(zip(net.pools, net.down_convs, strict=True)):
        h = conv.vertex_major(pool.vertex_major(h))
        assert h.shape == (g.sizes[level + 1], 2, net.config.refiner_widths[level])
    # full skips: every up-conv sees twice its level's width
    assert [c.in_channels for c in net.up_convs] == [128 + 64, 64 + 32, 32 + 16, 16 + 16]


def test_starter_graph_is_multi_level_and_fc_follows_the_coarsest_level(starter):
    g = starter.graph
    short = MeshGraph(levels=g.levels[:3], down=g.down[:2], up=g.up[:2], factors=g.factors[:2])
    cfg = TextureNetConfig(feature_dim=FEATURE, decoder_widths=(8, 8), refiner_widths=(8, 16),
                           refiner_skips=1, bottleneck=32)
    net = FineTextureNet(short, cfg)
    assert net.refiner.fc_in.in_features == g.sizes[2] * 16  # 385 coarsest vertices
    assert net.decoder.fc.out_features == g.sizes[2] * cfg.decoder_coarse_channels
    out = net(torch.randn(1, FEATURE), refiner_input(1, g.sizes[0]))
    assert out.fine.shape == (1, g.sizes[0], 3)
    with pytest.raises(InvalidInputError, match="needs a mesh graph with 5 levels"):
        FineTextureNet(short, TextureNetConfig(feature_dim=FEATURE))


# --------------------------------------------------------------------------- the forms
def test_pool_and_unpool_are_sparse_ops_in_the_sparse_form(starter, monkeypatch):
    g = starter.graph
    calls: list[tuple[torch.layout, tuple[int, int]]] = []
    real_mm = torch.sparse.mm

    def spy(m, x):
        calls.append((m.layout, tuple(m.shape)))
        return real_mm(m, x)

    monkeypatch.setattr(torch.sparse, "mm", spy)
    net = TextureRefiner(g, TextureNetConfig(feature_dim=FEATURE))
    x = refiner_input(1, g.sizes[0])
    net(x)
    assert {layout for layout, _ in calls} == {torch.sparse_csr}
    shapes = {s for _, s in calls}
    for d, u in zip(g.down, g.up, strict=True):
        assert d.shape in shapes and u.shape in shapes
    for lv in g.levels:
        assert (lv.num_vertices, lv.num_vertices) in shapes
    calls.clear()
    net.set_form("gather")
    assert graph_forms(net) == {"gather"}
    net(x)
    assert calls == []  # the gather form never touches torch.sparse


def test_refiner_forms_equal_forward_and_backward(starter):
    g = starter.graph
    torch.manual_seed(1)
    net = TextureRefiner(g, TextureNetConfig(feature_dim=FEATURE))
    x = refiner_input(2, g.sizes[0], seed=1)
    target = torch.rand(2, g.sizes[0], 3, generator=torch.Generator().manual_seed(2))
    results = {}
    for form in ("sparse", "gather"):
        net.set_form(form).zero_grad(set_to_none=True)
        y = net(x)
        (y - target).abs().mean().backward()
        results[form] = (y.detach(), [p.grad.clone() for p in net.parameters()])
    (ys, gs), (yg, gg) = results["sparse"], results["gather"]
    assert (ys - yg).abs().max() < 1e-5
    for a, b in zip(gs, gg, strict=True):
        assert (a - b).abs().max() < 1e-5


# ---------------------------------------------------------------------------- training
def test_gradients_reach_every_parameter(starter):
    g = starter.graph
    torch.manual_seed(2)
    net = FineTextureNet(g, TextureNetConfig(feature_dim=FEATURE))
    out = net(torch.randn(2, FEATURE), refiner_input(2, g.sizes[0]))
    target = torch.rand(2, g.sizes[0], 3, generator=torch.Generator().manual_seed(3))
    loss = ((out.fine - target).abs().mean() + out.decoder_out.abs().mean()
            + out.refiner_out.abs().mean())
    loss.backward()
    names = [n for n, _ in net.named_parameters()]
    assert any(n.startswith("decoder.") for n in names)
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_adam_steps_reduce_the_refiner_l1(starter):
    g = starter.graph
    torch.manual_seed(3)
    net = TextureRefiner(g, TextureNetConfig(feature_dim=FEATURE))
    x = refiner_input(1, g.sizes[0], seed=3)
    v = torch.from_numpy(g.levels[0].vertices)
    v = (v - v.mean(0)) / v.std(0)
    target = albedo_to_signed(0.5 + 0.3 * torch.sin(2.0 * v))[None]  # a smooth texture
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad(set_to_none=True)
        loss = (net(x) - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_untrained_residual_net_starts_near_the_coarse_albedo(starter):
    g = starter.graph
    torch.manual_seed(4)
    x = refiner_input(1, g.sizes[0], seed=4)
    feature = torch.randn(1, FEATURE)
    with torch.no_grad():
        res = FineTextureNet(g, TextureNetConfig(feature_dim=FEATURE))(feature, x)
        plain = FineTextureNet(g, TextureNetConfig(feature_dim=FEATURE, residual=False))(
            feature, x)
    near = (res.fine - x[..., :3]).abs().mean()
    assert near < 0.05
    assert (plain.fine - x[..., :3]).abs().mean() > near


def test_state_dict_has_only_weights_and_round_trips(starter, tmp_path):
    from safetensors.torch import load_file, save_file

    g = starter.graph
    torch.manual_seed(5)
    net = FineTextureNet(g, feature_dim=FEATURE)
    assert net.config.feature_dim == FEATURE
    state = net.state_dict()
    assert all(k.endswith(("weight", "bias")) for k in state)
    assert len(state) == len(list(net.parameters()))
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "t.safetensors")
    cfg = TextureNetConfig(**json.loads(json.dumps(dataclasses.asdict(net.config))))
    assert cfg == net.config  # JSON lists come back as tuples
    twin = FineTextureNet(g, cfg)
    twin.load_state_dict(load_file(tmp_path / "t.safetensors"), strict=True)
    x, f = refiner_input(1, g.sizes[0]), torch.randn(1, FEATURE)
    with torch.no_grad():
        assert torch.equal(net(f, x).fine, twin(f, x).fine)
    assert isinstance(net(f, x).detach(), FineTextureOutput)


# -------------------------------------------------------------------------------- ONNX
def test_onnx_export_refiner_and_combiner(starter):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    g = starter.graph
    v = g.sizes[0]
    torch.manual_seed(6)
    refiner = TextureRefiner(g, TextureNetConfig(feature_dim=FEATURE), form="gather").eval()
    combiner = TextureCombiner(refiner.graph_buffers, form="gather").eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    cases = [(refiner, ("x",), lambda b: (refiner_input(b, v, seed=b),)),
             (combiner, ("decoder_out", "refiner_out"),
              lambda b: (torch.randn(b, v, 3) * 0.5, torch.rand(b, v, 3) * 1.6 - 0.8))]
    for net, names, make in cases:
        buf = io.BytesIO()
        with persistent_graph_buffers(net):  # each graph table once, as a shared initializer
            torch.onnx.export(net, make(1), buf, input_names=list(names), output_names=["y"],
                              dynamic_axes={**{n: {0: "batch"} for n in names},
                                            "y": {0: "batch"}},
                              opset_version=18, dynamo=False)
        assert all(k.endswith(("weight", "bias")) for k in net.state_dict())  # restored
        model = onnx.load_from_string(buf.getvalue())
        ops = {n.op_type for n in model.graph.node}
        assert {"Gather", "Mul", "ReduceSum"} <= ops
        const_bytes = sum(len(n.attribute[0].t.raw_data) for n in model.graph.node
                          if n.op_type == "Constant")
        assert const_bytes < 64 * 1024  # no per-use copies of the neighbour tables
        params = sum(p.numel() for p in net.parameters()) * 4
        assert len(buf.getvalue()) < params + 4 * 2**20  # weights plus ~1 MB of graph tables
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        for b in (1, 3):
            inputs = make(b)
            (got,) = sess.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
            with torch.no_grad():
                ref = net(*inputs).numpy()
                ref_sparse = net.set_form("sparse")(*inputs).numpy()
                net.set_form("gather")
            assert got.shape == (b, v, 3)
            assert np.abs(got - ref).max() < 1e-4
            assert np.abs(got - ref_sparse).max() < 1e-4


# ------------------------------------------------------------------------ discriminator
def test_patch_discriminator():
    torch.manual_seed(7)
    critic = PatchDiscriminator()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    assert [m.out_channels for m in critic.modules() if isinstance(m, torch.nn.Conv2d)] == [
        16, 32, 64, 128, 256, 512, 1]
    images = torch.rand(3, 3, 64, 64)
    scores = critic(images)
    assert scores.shape == (3,)
    # no batch statistics: an image's score does not depend on the rest of its batch
    assert torch.allclose(critic(images[:1]), scores[:1], atol=1e-5)
    patch = PatchDiscriminator(DiscriminatorConfig(output="patch", norm="instance"))
    assert patch(images).shape == (3, 1, 2, 2)
    # a WGAN-GP style second derivative works
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean().backward()
    # (the head's bias shifts every score alike, so the penalty has no gradient for it)
    assert all(p.grad is not None for n, p in critic.named_parameters() if n != "head.bias")
    with pytest.raises(InvalidInputError, match="H, W >= 32"):
        critic(torch.rand(1, 3, 16, 64))
    with pytest.raises(InvalidInputError, match="norm must be one of"):
        DiscriminatorConfig(norm="batch")


# ------------------------------------------------------------------------------ config
def test_config_validation_and_errors(starter):
    cfg = TextureNetConfig()
    assert (cfg.K, cfg.decoder_widths, cfg.refiner_widths, cfg.bottleneck,
            cfg.decoder_coarse_channels, cfg.activation) == (
        6, (16, 16, 16, 16), (16, 32, 64, 128), 512, 32, "elu")
    assert TextureNetConfig(refiner_widths=[8, 8]).refiner_widths == (8, 8)
    for bad in ({"activation": "gelu"}, {"refiner_skips": 5}, {"K": 0},
                {"decoder_widths": ()}, {"refiner_widths": ["a"]}, {"feature_dim": 1.5}):
        with pytest.raises(InvalidInputError):
            TextureNetConfig(**bad)
    g = starter.graph
    net = FineTextureNet(g, TextureNetConfig(feature_dim=FEATURE))
    v = g.sizes[0]
    with pytest.raises(InvalidInputError, match=r"expected x \(B, 6145, 7\)"):
        net.refiner(torch.zeros(1, v, 6))
    with pytest.raises(InvalidInputError, match=r"expected feature \(B, 48\)"):
        net.decoder(torch.zeros(1, 47))
    with pytest.raises(InvalidInputError, match="batch sizes differ"):
        net(torch.zeros(2, FEATURE), torch.zeros(1, v, 7))
    with pytest.raises(InvalidInputError, match="MeshGraph"):
        TextureRefiner(None)
    with pytest.raises(InvalidInputError, match="form must be one of"):
        net.set_form("dense")
    decoder = TextureDecoder(g, TextureNetConfig(feature_dim=FEATURE, activation="leaky_relu"))
    assert decoder(torch.zeros(1, FEATURE)).shape == (1, v, 3)
