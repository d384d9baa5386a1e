"""Tests of facecraft.training.graph_conv: sparse vs gather forms, Chebyshev maths, ONNX export."""

from __future__ import annotations

import copy
import io
import tarfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.models.mesh_graph import rescaled_laplacian
from facecraft.training.graph_conv import (
    GRAPH_FORMS,
    ChebConv,
    GraphMatrix,
    GraphResample,
    MeshGraphBuffers,
    graph_forms,
    persistent_graph_buffers,
    set_graph_form,
)

from ..conftest import assets_or_skip

ICT_NEUTRAL = "FaceXModel/generic_neutral_mesh.obj"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the test machine's cores are shared; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def starter_graph():
    return load_default_model().graph


@pytest.fixture(scope="module")
def ict_laplacian(tmp_path_factory) -> sp.csr_matrix:
    """The rescaled Laplacian of ICT-FaceKit's full neutral mesh (26,719 vertices, several
    components): only that one OBJ is unpacked."""
    tarball = assets_or_skip("face-models", "ict-facekit", "FaceXModel.tar.xz")
    path = tmp_path_factory.mktemp("ict_neutral") / "generic_neutral_mesh.obj"
    with tarfile.open(tarball, "r|xz") as tf:  # streamed: stops at the one member
        for member in tf:
            if member.name == ICT_NEUTRAL:
                path.write_bytes(tf.extractfile(member).read())
                break
    mesh = read_obj(path)
    lap, _ = rescaled_laplacian(mesh.triangles, len(mesh.vertices))
    return lap


def two_components_and_a_stray() -> tuple[np.ndarray, np.ndarray]:
    """An octahedron, a shifted tetrahedron and one vertex no triangle uses (the last)."""
    octa = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    of = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                   [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float) + 3.0
    tf = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]) + 6
    v = np.concatenate([octa, tet, [[9.0, 9.0, 9.0]]])
    return v.astype(np.float32), np.concatenate([of, tf]).astype(np.int32)


def dense_chebyshev(lap: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference ``sum_k T_k(L) x W_k + b`` from the eigendecomposition of the symmetric ``L``:
    ``T_k(L) = U T_k(Lambda) U^T`` with NumPy's Chebyshev basis polynomials (no matrix
    recurrence), float64.

    Args:
        lap: (V, V); x: (B, V, Cin); w: (K, Cin, Cout); b: (Cout,).
    """
    lam, u = np.linalg.eigh(lap)
    y = np.zeros(x.shape[:2] + (w.shape[2],))
    for k in range(w.shape[0]):
        tk = (u * np.polynomial.chebyshev.Chebyshev.basis(k)(lam)) @ u.T
        y += np.einsum("uv,bvc,co->buo", tk, x, w[k])
    return y + b


def _run(module: torch.nn.Module, x: torch.Tensor, form: str):
    """Output and gradients (input, then every parameter) of ``mean(y * r)``."""
    set_graph_form(module, form)
    x = x.detach().clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    r = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * r).mean().backward()
    return y.detach(), [x.grad] + [p.grad for p in module.parameters()]


# ----------------------------------------------------------------------------- GraphMatrix
def test_graph_matrix_both_forms_match_scipy(starter_graph):
    g = starter_graph
    rng = np.random.default_rng(0)
    mats = [lv.laplacian for lv in g.levels] + list(g.down) + list(g.up)
    for m in mats:
        gm = GraphMatrix(m).double()
        x = rng.standard_normal((m.shape[1], 5))
        ref = m.astype(np.float64) @ x
        for form in GRAPH_FORMS:
            got = gm(torch.from_numpy(x), form).numpy()
            assert np.abs(got - ref).max() < 1e-12, (m.shape, form)
        c = rng.standard_normal((m.shape[0], 5))
        for form in GRAPH_FORMS:
            got = gm.addmm(torch.from_numpy(c), torch.from_numpy(x), form, alpha=2.0, beta=-1.0)
            assert np.abs(got.numpy() - (2 * ref - c)).max() < 1e-12


def test_gather_buckets_bound_padding(starter_graph):
    lap = starter_graph.levels[0].laplacian  # the starter has one vertex of degree 96
    degrees = np.diff(lap.indptr)
    one = GraphMatrix(lap, max_buckets=1)
    assert one.num_buckets == 1 and not one.permuted
    assert one.padded_size == lap.shape[0] * degrees.max()
    many = GraphMatrix(lap)
    assert many.num_buckets > 1 and many.permuted
    assert many.padded_size < 1.1 * lap.nnz < one.padded_size / 10
    x = torch.randn(lap.shape[0], 3)
    assert torch.allclose(one(x, "gather"), many(x, "gather"), atol=1e-6)
    assert many.symmetric and not GraphMatrix(starter_graph.down[0]).symmetric


# -------------------------------------------------------------------------- forms agree
def test_forms_equal_forward_and_backward_on_ict_level(ict_laplacian):
    lap = GraphMatrix(ict_laplacian)  # shared by both convs
    torch.manual_seed(0)
    x = torch.randn(2, ict_laplacian.shape[0], 8)
    # 8 -> 16 runs the T_k recurrence, 8 -> 4 Clenshaw's (fewer output channels)
    for cout in (16, 4):
        conv = ChebConv(8, cout, 6, laplacian=lap)
        y_s, g_s = _run(conv, x, "sparse")
        y_g, g_g = _run(conv, x, "gather")
        assert y_s.shape == (2, ict_laplacian.shape[0], cout)
        assert (y_s - y_g).abs().max() < 1e-5
        for a, b in zip(g_s, g_g, strict=True):
            assert a is not None and a.abs().max() > 0
            assert (a - b).abs().max() < 1e-5


def test_resample_forms_equal_forward_and_backward(starter_graph):
    torch.manual_seed(1)
    for m in (starter_graph.down[0], starter_graph.up[0]):
        res = GraphResample(m)
        x = torch.randn(3, m.shape[1], 5)
        y_s, (gx_s,) = _run(res, x, "sparse")
        y_g, (gx_g,) = _run(res, x, "gather")
        assert y_s.shape == (3, m.shape[0], 5)
        ref = np.einsum("uv,bvc->buc", m.toarray(), x.numpy())
        assert np.abs(y_s.numpy() - ref).max() < 1e-5
        assert (y_s - y_g).abs().max() < 1e-5 and (gx_s - gx_g).abs().max() < 1e-5


def test_sparse_form_second_derivative(starter_graph):
    """The custom sparse autograd functions pass gradcheck and gradgradcheck (float64)."""
    lap = starter_graph.levels[-1].laplacian  # 24 vertices
    conv = ChebConv(2, 3, 4, laplacian=lap).double()  # Clenshaw off: 2 < 3
    conv1 = ChebConv(3, 2, 4, laplacian=conv.laplacian).double()  # Clenshaw on
    res = GraphResample(starter_graph.up[-1]).double()
    x = torch.randn(1, lap.shape[0], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv1(conv(t)), (x,))
    assert torch.autograd.gradgradcheck(lambda t: conv1(conv(t)), (x,))
    assert torch.autograd.gradcheck(lambda t: res(conv1(conv(t))), (x,))


# ------------------------------------------------------------------------- the maths
def test_k1_is_a_linear_layer(starter_graph):
    lap = starter_graph.levels[1].laplacian
    conv = ChebConv(5, 7, 1, laplacian=lap)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, lap.shape[0], 5)
    ref = torch.nn.functional.linear(x, conv.weight[0].T, conv.bias)
    for form in GRAPH_FORMS:
        assert torch.allclose(conv.set_form(form)(x), ref, atol=1e-6)


@pytest.mark.parametrize("mesh", ["starter_coarsest", "components"])
def test_chebyshev_matches_dense_eigen_reference(mesh, starter_graph):
    if mesh == "starter_coarsest":
        lap = starter_graph.levels[-1].laplacian
    else:
        v, f = two_components_and_a_stray()
        lap, _ = rescaled_laplacian(f, len(v))
        assert lap[len(v) - 1, len(v) - 1] == -1  # the stray vertex: zero row of L
    dense = lap.toarray().astype(np.float64)
    rng = np.random.default_rng(2)
    for cin, cout in ((3, 5), (5, 2)):  # forward recurrence, Clenshaw
        conv = ChebConv(cin, cout, 6, laplacian=lap).double()
        with torch.no_grad():
            conv.bias.normal_()
        x = rng.standard_normal((2, lap.shape[0], cin))
        ref = dense_chebyshev(dense, x, conv.weight.detach().numpy(), conv.bias.detach().numpy())
        for form in GRAPH_FORMS:
            got = conv.set_form(form)(torch.from_numpy(x)).detach().numpy()
            assert np.abs(got - ref).max() < 1e-9, (cin, cout, form)


# ---------------------------------------------------------------------------------- ONNX
class _Small(torch.nn.Module):
    """Cheb at level 0, pool to level 1, Cheb there, unpool back."""

    def __init__(self, g: MeshGraphBuffers) -> None:
        super().__init__()
        self.conv0 = ChebConv(3, 8, 6, laplacian=g.laplacians[0])
        self.pool = GraphResample(g.down[0])
        self.conv1 = ChebConv(8, 2, 6, laplacian=g.laplacians[1])
        self.unpool = GraphResample(g.up[0])

    def forward(self, x):
        return self.unpool(self.conv1(torch.nn.functional.elu(self.pool(self.conv0(x)))))


def test_onnx_export_gather_form_runs_in_onnxruntime(starter_graph):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(3)
    net = set_graph_form(_Small(MeshGraphBuffers(starter_graph, num_levels=2)), "gather").eval()
    x = torch.rand(1, starter_graph.sizes[0], 3)
    buf = io.BytesIO()
    with persistent_graph_buffers(net):
        torch.onnx.export(net, (x,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=18, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    ops = {n.op_type for n in model.graph.node}
    shared = {t.name for t in model.graph.initializer}
    assert "conv0.laplacian.gather_index_0" in shared  # a table, stored once
    assert {"Gather", "Mul", "ReduceSum"} <= ops
    assert not any("Sparse" in op or "Scatter" in op for op in ops), ops
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    for b in (1, 3):
        xb = torch.rand(b, starter_graph.sizes[0], 3)
        (got,) = sess.run(None, {"x": xb.numpy()})
        with torch.no_grad():
            ref = net(xb).numpy()
            ref_sparse = set_graph_form(copy.deepcopy(net), "sparse")(xb).numpy()
        assert got.shape == (b, starter_graph.sizes[0], 2)
        assert np.abs(got - ref).max() < 1e-4
        assert np.abs(got - ref_sparse).max() < 1e-4


# ------------------------------------------------------------------------ module plumbing
def test_form_is_per_module_not_global(starter_graph):
    lap = GraphMatrix(starter_graph.levels[2].laplacian)
    a = ChebConv(2, 2, laplacian=lap)
    b = ChebConv(2, 2, laplacian=lap, form="gather")
    assert (a.form, b.form) == ("sparse", "gather")
    a.set_form("gather")
    b.set_form("sparse")
    assert (a.form, b.form) == ("gather", "sparse")
    both = torch.nn.Sequential(a, b)
    assert graph_forms(both) == {"gather", "sparse"}
    assert set_graph_form(both, "sparse") is both and graph_forms(both) == {"sparse"}
    fresh = ChebConv(2, 2, laplacian=lap)  # unaffected by the switches above
    assert fresh.form == "sparse"
    with pytest.raises(InvalidInputError, match="form must be one of"):
        a.set_form("dense")
    with pytest.raises(InvalidInputError, match="form must be one of"):
        ChebConv(2, 2, laplacian=lap, form="onnx")


def test_state_dict_holds_only_weights_and_dtype_moves(starter_graph):
    lap = starter_graph.levels[3].laplacian
    conv = ChebConv(4, 3, laplacian=lap)
    assert set(conv.state_dict()) == {"weight", "bias"}
    assert conv.weight.shape == (6, 4, 3) and conv.bias.shape == (3,)
    twin = ChebConv(4, 3, laplacian=lap)
    twin.load_state_dict(conv.state_dict(), strict=True)
    x = torch.randn(2, lap.shape[0], 4)
    assert torch.equal(conv(x), twin(x))
    d = copy.deepcopy(conv).double()
    assert d.laplacian.csr_val.dtype == torch.float64
    assert d.laplacian.csr_col.dtype == torch.int32
    for form in GRAPH_FORMS:
        assert d.set_form(form)(x.double()).dtype == torch.float64


def test_clear_errors(starter_graph):
    lap = starter_graph.levels[2].laplacian
    conv = ChebConv(4, 3, laplacian=lap)
    with pytest.raises(InvalidInputError, match=r"expected x \(B, 385, 4\)"):
        conv(torch.zeros(1, 384, 4))
    with pytest.raises(InvalidInputError, match=r"expected x \(B, 385, 4\)"):
        conv(torch.zeros(385, 4))
    with pytest.raises(InvalidInputError, match="square"):
        ChebConv(1, 1, laplacian=starter_graph.down[0])
    with pytest.raises(InvalidInputError, match="scipy.sparse"):
        ChebConv(1, 1, laplacian=np.eye(3))
    with pytest.raises(InvalidInputError, match="K must be >= 1"):
        ChebConv(1, 1, 0, laplacian=lap)
    res = GraphResample(starter_graph.down[1])
    with pytest.raises(InvalidInputError, match=r"expected x \(B, 1535, C\)"):
        res(torch.zeros(1, 385, 2))
    with pytest.raises(InvalidInputError, match="num_levels"):
        MeshGraphBuffers(starter_graph, num_levels=9)


def test_persistent_graph_buffers_is_temporary(starter_graph):
    conv = ChebConv(2, 2, laplacian=starter_graph.levels[3].laplacian)
    with persistent_graph_buffers(conv) as m:
        assert m is conv
        assert {"laplacian.csr_val", "laplacian.gather_index_0"} <= set(conv.state_dict())
    assert set(conv.state_dict()) == {"weight", "bias"}
    with pytest.raises(RuntimeError, match="boom"), persistent_graph_buffers(conv):
        raise RuntimeError("boom")
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_sparse_form_runs_under_autocast(starter_graph):
    """torch.sparse has no bfloat16 kernels: the graph products run in float32 inside."""
    conv = ChebConv(3, 4, laplacian=starter_graph.levels[2].laplacian)
    x = torch.randn(2, 385, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (y.float() - conv(x)).abs().max() < 0.1
