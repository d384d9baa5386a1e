"""Chebyshev graph convolution and mesh resampling on the GCN hierarchy (Lin et al. / COMA).

Each sparse matrix of a :class:`~facecraft.sdk.models.mesh_graph.MeshGraph` (a level's rescaled
Laplacian ``L``, a ``down[l]`` or ``up[l]`` map) becomes one :class:`GraphMatrix`, a module that
holds the matrix in two interchangeable *forms*:

``"sparse"``
    ``torch.sparse`` CSR (int32 indices) and ``torch.sparse.mm``; the transpose is stored too
    (shared when the matrix is symmetric, as Laplacians are), and a custom autograd function
    multiplies the gradient by it, so backward is as fast as forward. Fastest for training, on
    CPU and CUDA. Not exportable to ONNX.
``"gather"``
    a padded neighbour table: each row's non-zeros become ``(V, D)`` int64 column indices and
    ``(V, D, 1)`` float32 weights, padded with index 0 and weight 0; ``y = (x[idx] * w).sum(1)``
    is plain Gather + Mul + ReduceSum, which the TorchScript ONNX exporter
    (``torch.onnx.export(..., dynamo=False)``) writes and ONNX Runtime runs. Rows are grouped
    into a few buckets by their number of non-zeros (each bucket padded to its own ``D``, then
    one Gather puts the rows back in order), so one high-degree vertex does not pad every row.
    A NaN or infinity anywhere in ``x`` also spreads to padded slots (``0 * inf`` is NaN).

Both forms give the same result up to float32 summation order (about 1e-6).

The form is chosen per module, never globally: :class:`ChebConv` and :class:`GraphResample` take
``form=`` and have :meth:`~ChebConv.set_form`; :func:`set_graph_form` switches every such module
inside a network. A :class:`GraphMatrix` itself holds no form, so one matrix can be shared by
modules that use different forms. All graph buffers are non-persistent: a ``state_dict`` holds
only learned weights, and the graph is rebuilt from the face model. For ONNX export, wrap
``torch.onnx.export`` in :func:`persistent_graph_buffers` so each table is stored once.

:class:`ChebConv` runs the Chebyshev recurrence on whichever side is narrower: on the input
channels (``T_k = 2 L T_{k-1} - T_{k-2}``, then ``sum_k T_k W_k``), or, when it has fewer
output channels, Clenshaw's recurrence on ``x W_k`` (e.g. the last 16 -> 3 convolution then
multiplies 3-channel signals by ``L`` instead of 16-channel ones). In the sparse form each
``2 L t - s`` step is one fused ``torch.addmm``.

On the CPU, PyTorch prints a one-time "Sparse CSR tensor support is in beta state" warning the
first time the sparse form runs.

Signals are ``(B, V, C)`` float: batch, vertices of the level, channels. Networks keep them
*vertex-major*, ``(V, B, C)``, between layers (``vertex_major`` methods): a batch is then one
``(V, B * C)`` matrix for the graph products without a transpose per layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh_graph import MeshGraph

__all__ = [
    "GRAPH_FORMS",
    "GraphForm",
    "GraphMatrix",
    "MeshGraphBuffers",
    "ChebConv",
    "GraphResample",
    "set_graph_form",
    "graph_forms",
    "persistent_graph_buffers",
]

GraphForm = Literal["sparse", "gather"]
#: The two implementations of every graph operation, see the module docstring.
GRAPH_FORMS: tuple[str, ...] = ("sparse", "gather")
_BUCKET_OVERHEAD = 2048  # padded entries one more gather bucket must save to pay for itself


def _check_form(form: str) -> str:
    if form not in GRAPH_FORMS:
        raise InvalidInputError(f"form must be one of {GRAPH_FORMS}, got {form!r}")
    return form


class _SparseMM(torch.autograd.Function):
    """``m @ x`` with ``m`` a constant sparse matrix; backward is ``mt @ grad`` (``mt = m^T``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, m: torch.Tensor, mt: torch.Tensor) -> torch.Tensor:
        ctx.m, ctx.mt = m, mt
        with torch.autocast(x.device.type, enabled=False):  # sparse kernels: float32/64 only
            return torch.sparse.mm(m, x.to(m.dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # Through apply again, so a second derivative (e.g. a gradient penalty) works too.
        return _SparseMM.apply(grad.contiguous(), ctx.mt, ctx.m), None, None


class _SparseAddMM(torch.autograd.Function):
    """``beta * c + alpha * m @ x`` in one ``torch.addmm``; backward through ``mt``."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, x: torch.Tensor, m: torch.Tensor, mt: torch.Tensor,
                alpha: float, beta: float) -> torch.Tensor:
        ctx.m, ctx.mt, ctx.alpha, ctx.beta = m, mt, alpha, beta
        with torch.autocast(x.device.type, enabled=False):
            return torch.addmm(c.to(m.dtype), m, x.to(m.dtype), beta=beta, alpha=alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gx = _SparseMM.apply(grad.contiguous(), ctx.mt, ctx.m)
        if ctx.alpha != 1.0:
            gx = gx * ctx.alpha
        gc = grad if ctx.beta == 1.0 else grad * ctx.beta
        return gc, gx, None, None, None, None


def _buckets(degrees: np.ndarray, max_buckets: int) -> list[np.ndarray]:
    """Group rows by number of non-zeros so the padded tables stay small.

    Rows sorted by degree are cut into at most ``max_buckets`` contiguous groups, minimising the
    padded size ``sum_b rows_b * max_degree_b`` (dynamic programming over the distinct degrees).
    An extra bucket is taken only when it saves at least 10% of the padded size, counting the
    reordering Gather of ``V`` rows that several buckets need and a fixed 2048 entries per
    extra bucket for its own operators (small matrices keep one table).

    Returns:
        The row ids of each bucket, in ascending row order within a bucket.
    """
    n = len(degrees)
    deg = np.maximum(degrees, 1)  # a row with no entries still gets one (zero-weight) slot
    uniq, counts = np.unique(deg, return_counts=True)
    m = len(uniq)
    cum = np.concatenate([[0], np.cumsum(counts)])

    def cost(i: int, j: int) -> int:  # one bucket over distinct degrees uniq[i..j]
        return int(cum[j + 1] - cum[i]) * int(uniq[j])

    inf = float("inf")
    best = [[inf] * m for _ in range(max_buckets + 1)]
    cut = [[-1] * m for _ in range(max_buckets + 1)]
    for j in range(m):
        best[1][j] = cost(0, j)
    for k in range(2, max_buckets + 1):
        for j in range(m):
            for i in range(1, j + 1):
                c = best[k - 1][i - 1] + cost(i, j)
                if c < best[k][j]:
                    best[k][j], cut[k][j] = c, i
    chosen, chosen_cost = 1, best[1][m - 1]
    for k in range(2, min(max_buckets, m) + 1):
        total = best[k][m - 1] + n + (k - 1) * _BUCKET_OVERHEAD
        if total <= 0.9 * chosen_cost:
            chosen, chosen_cost = k, total
    bounds, j = [], m - 1  # upper distinct-degree index of each bucket, last bucket first
    for k in range(chosen, 0, -1):
        bounds.append(j)
        j = cut[k][j] - 1 if k > 1 else -1
    edges = [uniq[b] for b in reversed(bounds)]
    which = np.searchsorted(np.asarray(edges), deg)  # bucket of each row
    return [np.flatnonzero(which == b) for b in range(len(edges))]


class GraphMatrix(nn.Module):
    """One constant sparse matrix of the mesh graph, applicable in the sparse or gather form.

    Args:
        matrix: (R, C) scipy.sparse matrix (any format; converted to float32 CSR), e.g. a
            level's rescaled Laplacian or a ``down``/``up`` map of a
            :class:`~facecraft.sdk.models.mesh_graph.MeshGraph`.
        max_buckets: at most this many degree buckets in the gather form (1 = one table padded
            to the largest row).

    Attributes:
        shape: ``(R, C)``.
        nnz: stored non-zeros.
        symmetric: whether the matrix equals its transpose exactly (then the sparse form stores
            it once).
        num_buckets: tables of the gather form.
        padded_size: entries of the gather tables (>= ``nnz``).
    """

    def __init__(self, matrix: sp.spmatrix | sp.sparray, *, max_buckets: int = 4) -> None:
        super().__init__()
        if not sp.issparse(matrix):
            raise InvalidInputError(
                f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}")
        if int(max_buckets) < 1:
            raise InvalidInputError(f"max_buckets must be >= 1, got {max_buckets}")
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        if m.shape[0] == 0 or m.shape[1] == 0:
            raise InvalidInputError(f"matrix must not be empty, got shape {m.shape}")
        self.shape = (int(m.shape[0]), int(m.shape[1]))
        self.nnz = int(m.nnz)
        mt = m.T.tocsr()
        mt.sort_indices()
        self.symmetric = bool(m.shape[0] == m.shape[1] and (m != mt).nnz == 0)

        def put(name: str, array: np.ndarray) -> None:
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(array)),
                                 persistent=False)

        put("csr_crow", m.indptr.astype(np.int32))
        put("csr_col", m.indices.astype(np.int32))
        put("csr_val", m.data.astype(np.float32))
        if not self.symmetric:
            put("csrt_crow", mt.indptr.astype(np.int32))
            put("csrt_col", mt.indices.astype(np.int32))
            put("csrt_val", mt.data.astype(np.float32))

        degrees = np.diff(m.indptr)
        buckets = _buckets(degrees, int(max_buckets))
        self.num_buckets = len(buckets)
        self.padded_size = 0
        for b, rows in enumerate(buckets):
            d = max(int(degrees[rows].max()), 1)
            idx = np.zeros((len(rows), d), np.int64)
            w = np.zeros((len(rows), d), np.float32)
            n = degrees[rows]
            r = np.repeat(np.arange(len(rows)), n)
            starts = m.indptr[rows]
            src = np.repeat(starts, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
            slot = src - np.repeat(starts, n)
            idx[r, slot] = m.indices[src]
            w[r, slot] = m.data[src]
            put(f"gather_index_{b}", idx)
            put(f"gather_weight_{b}", w[..., None])
            self.padded_size += idx.size
        order = np.concatenate(buckets)
        self.permuted = bool(len(buckets) > 1 or not np.array_equal(order, np.arange(len(order))))
        if self.permuted:
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            put("gather_inverse", inverse.astype(np.int64))

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, nnz={self.nnz}, symmetric={self.symmetric}, "
                f"buckets={self.num_buckets}, padded={self.padded_size}")

    def _csr(self, transpose: bool) -> torch.Tensor:
        p = "csrt" if transpose and not self.symmetric else "csr"
        shape = self.shape[::-1] if transpose else self.shape
        return torch.sparse_csr_tensor(getattr(self, f"{p}_crow"), getattr(self, f"{p}_col"),
                                       getattr(self, f"{p}_val"), shape, check_invariants=False)

    def sparse(self, x: torch.Tensor) -> torch.Tensor:
        """``M @ x`` with ``torch.sparse.mm`` (differentiable in ``x``).

        Args:
            x: (C, N) float, same dtype and device as the module.

        Returns:
            (R, N) float.
        """
        m = self._csr(False)
        mt = m if self.symmetric else self._csr(True)
        # (a half-precision x, e.g. under autocast, is promoted to the matrix's dtype)
        return _SparseMM.apply(x.contiguous(), m, mt)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``M @ x`` as Gather + Mul + ReduceSum over the padded neighbour tables.

        Args:
            x: (C, N) float.

        Returns:
            (R, N) float.
        """
        parts = []
        for b in range(self.num_buckets):
            idx = getattr(self, f"gather_index_{b}")
            w = getattr(self, f"gather_weight_{b}")
            parts.append((x[idx] * w).sum(dim=1))
        y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        if self.permuted:
            y = y[self.gather_inverse]
        return y

    def addmm(self, c: torch.Tensor, x: torch.Tensor, form: GraphForm = "sparse", *,
              alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
        """``beta * c + alpha * M @ x`` (one fused ``torch.addmm`` in the sparse form).

        Args:
            c: (R, N) float.
            x: (C, N) float.
            form: ``"sparse"`` or ``"gather"``.
            alpha, beta: scalars.

        Returns:
            (R, N) float.
        """
        if form == "sparse":
            m = self._csr(False)
            mt = m if self.symmetric else self._csr(True)
            return _SparseAddMM.apply(c, x.contiguous(), m, mt, float(alpha), float(beta))
        y = self(x, form)
        if alpha != 1.0:
            y = alpha * y
        return y + c if beta == 1.0 else y + beta * c

    def forward(self, x: torch.Tensor, form: GraphForm = "sparse") -> torch.Tensor:
        """``M @ x`` in the given form.

        Args:
            x: (C, N) float (vertex-major: the matrix's column count first).
            form: ``"sparse"`` or ``"gather"``.

        Returns:
            (R, N) float.
        """
        if not torch.jit.is_tracing() and (x.ndim != 2 or x.shape[0] != self.shape[1]):
            raise InvalidInputError(
                f"expected x ({self.shape[1]}, N) for a {self.shape} matrix, "
                f"got {tuple(x.shape)}")
        if form == "sparse":
            return self.sparse(x)
        if form == "gather":
            return self.gather(x)
        raise InvalidInputError(f"form must be one of {GRAPH_FORMS}, got {form!r}")


class MeshGraphBuffers(nn.Module):
    """Every matrix of a mesh hierarchy as :class:`GraphMatrix` modules, built once and shared.

    Args:
        graph: the face model's :class:`~facecraft.sdk.models.mesh_graph.MeshGraph`.
        num_levels: use only the finest ``num_levels`` levels (default: all).
        max_buckets: see :class:`GraphMatrix`.

    Attributes:
        laplacians: ``laplacians[l]`` (V_l, V_l), the rescaled Laplacian of level ``l``.
        down: ``down[l]`` (V_{l+1}, V_l), level ``l`` to the coarser ``l + 1``.
        up: ``up[l]`` (V_l, V_{l+1}), level ``l + 1`` back to ``l``.
        sizes: vertex count of each level kept, finest first.
    """

    def __init__(self, graph: MeshGraph, *, num_levels: int | None = None,
                 max_buckets: int = 4) -> None:
        super().__init__()
        if not isinstance(graph, MeshGraph):
            raise InvalidInputError(
                f"graph must be a MeshGraph (model.graph; build it with "
                f"facecraft.sdk.models.mesh_graph.build_mesh_graph), got {type(graph).__name__}")
        n = graph.num_levels if num_levels is None else int(num_levels)
        if not 1 <= n <= graph.num_levels:
            raise InvalidInputError(
                f"num_levels must lie in [1, {graph.num_levels}] for this graph, got {n}")
        self.sizes = tuple(graph.sizes[:n])
        self.laplacians = nn.ModuleList(
            GraphMatrix(lv.laplacian, max_buckets=max_buckets) for lv in graph.levels[:n])
        self.down = nn.ModuleList(
            GraphMatrix(m, max_buckets=max_buckets) for m in graph.down[:n - 1])
        self.up = nn.ModuleList(GraphMatrix(m, max_buckets=max_buckets) for m in graph.up[:n - 1])

    @property
    def num_levels(self) -> int:
        return len(self.sizes)


def _as_matrix(m: GraphMatrix | sp.spmatrix | sp.sparray, what: str) -> GraphMatrix:
    if isinstance(m, GraphMatrix):
        return m
    if sp.issparse(m):
        return GraphMatrix(m)
    raise InvalidInputError(
        f"{what} must be a GraphMatrix or a scipy.sparse matrix, got {type(m).__name__}")


def _check_signal(x: torch.Tensor, name: str, v: int, c: int) -> None:
    if torch.jit.is_tracing():  # shapes are traced tensors then; checked when run eagerly
        return
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != v or x.shape[2] != c:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InvalidInputError(f"expected {name} (B, {v}, {c}), got {got}")


class ChebConv(nn.Module):
    """Chebyshev spectral graph convolution (Defferrard et al. 2016) on one mesh level.

    ``y = sum_{k<K} T_k(L) x W_k + b`` with ``T_0 = x``, ``T_1 = L x``,
    ``T_k = 2 L T_{k-1} - T_{k-2}`` on the rescaled Laplacian ``L`` (spectrum in [-1, 1]).
    ``K = 1`` is a per-vertex linear layer. Weights are Glorot-uniform over
    ``fan_in = K * in_channels``; the bias starts at zero.

    Args:
        in_channels, out_channels: channels of the input and output signal.
        K: Chebyshev order (number of terms; 6 in Lin et al.), >= 1.
        laplacian: the level's rescaled Laplacian, a :class:`GraphMatrix` (shared) or a
            scipy.sparse (V, V) matrix.
        form: ``"sparse"`` or ``"gather"`` (see the module docstring); :meth:`set_form` changes
            it.
        bias: add a learned bias.

    Attributes:
        weight: (K, in_channels, out_channels) float32 parameter.
        bias: (out_channels,) float32 parameter or None.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int = 6, *,
                 laplacian: GraphMatrix | sp.spmatrix, form: GraphForm = "sparse",
                 bias: bool = True) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels),
                          ("K", K)):
            if int(val) < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {val}")
        self.in_channels, self.out_channels, self.K = int(in_channels), int(out_channels), int(K)
        self.laplacian = _as_matrix(laplacian, "laplacian")
        if self.laplacian.shape[0] != self.laplacian.shape[1]:
            raise InvalidInputError(f"laplacian must be square, got {self.laplacian.shape}")
        self.form = _check_form(form)
        self.weight = nn.Parameter(torch.empty(self.K, self.in_channels, self.out_channels))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in, fan_out = self.K * self.in_channels, self.out_channels
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def num_vertices(self) -> int:
        return self.laplacian.shape[0]

    def set_form(self, form: GraphForm) -> ChebConv:
        """Use ``"sparse"`` or ``"gather"`` from now on (this module only); returns self."""
        self.form = _check_form(form)
        return self

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, K={self.K}, V={self.num_vertices}, "
                f"form={self.form!r}, bias={self.bias is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve.

        Args:
            x: (B, V, in_channels) float.

        Returns:
            (B, V, out_channels) float.
        """
        _check_signal(x, "x", self.num_vertices, self.in_channels)
        return self.vertex_major(x.transpose(0, 1)).transpose(0, 1)

    def vertex_major(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve a vertex-major signal (what networks use inside, to skip transposes).

        Args:
            x: (V, B, in_channels) float.

        Returns:
            (V, B, out_channels) float, contiguous.
        """
        v, c = self.num_vertices, self.in_channels
        if not torch.jit.is_tracing() and (x.ndim != 3 or x.shape[0] != v or x.shape[2] != c):
            raise InvalidInputError(f"expected x ({v}, B, {c}) vertex-major, "
                                    f"got {tuple(x.shape)}")
        x = x.contiguous()
        if self.K == 1:
            y = torch.matmul(x, self.weight[0])
        elif self.out_channels < self.in_channels:
            y = self._clenshaw(x)
        else:
            y = self._forward_recurrence(x)
        return y if self.bias is None else y + self.bias

    def _forward_recurrence(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_k T_k(L) x W_k``: the T_k recurrence on the input channels. x: (V, B, Cin)."""
        v, c = self.num_vertices, self.in_channels
        lap, form, w = self.laplacian, self.form, self.weight
        t0 = x.view(v, -1)  # (V, B*C): one matrix product for the whole batch
        t1 = lap(t0, form)
        # (V*B, C) rows times W_k, accumulated in place of a (V, B, K*C) concatenation
        y = torch.addmm(torch.mm(x.view(-1, c), w[0]), t1.view(-1, c), w[1])
        for k in range(2, self.K):
            t0, t1 = t1, lap.addmm(t0, t1, form, alpha=2.0, beta=-1.0)  # 2 L T_{k-1} - T_{k-2}
            y = torch.addmm(y, t1.view(-1, c), w[k])
        return y.view(v, -1, self.out_channels)

    def _clenshaw(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_k T_k(L) (x W_k)`` by Clenshaw's recurrence on the (fewer) output channels.

        ``b_k = c_k + 2 L b_{k+1} - b_{k+2}`` from ``k = K - 1`` down to 1 (``b_K = b_{K+1} =
        0``), then ``y = c_0 + L b_1 - b_2``; ``c_k = x W_k``. x: (V, B, Cin).
        """
        v, o, k_ = self.num_vertices, self.out_channels, self.K
        lap, form = self.laplacian, self.form
        # c_k for every k in one product: (V, B, Cin) @ (Cin, K*out) -> (V, B, K, out)
        c = torch.matmul(x, self.weight.permute(1, 0, 2).reshape(self.in_channels, k_ * o))
        c = c.view(v, -1, k_, o)

        def coef(k: int) -> torch.Tensor:
            return c[:, :, k, :].reshape(v, -1)  # (V, B*out)

        b2: torch.Tensor | None = None
        b1 = coef(k_ - 1)
        for k in range(k_ - 2, 0, -1):
            base = coef(k) if b2 is None else coef(k) - b2
            b1, b2 = lap.addmm(base, b1, form, alpha=2.0), b1
        base = coef(0) if b2 is None else coef(0) - b2
        return lap.addmm(base, b1, form).view(v, -1, o)


class GraphResample(nn.Module):
    """Move a per-vertex signal between levels: ``y = M x`` with a ``down[l]`` or ``up[l]`` map.

    Pooling is ``GraphResample(graph.down[l])`` (level ``l`` to ``l + 1``), unpooling
    ``GraphResample(graph.up[l])`` (level ``l + 1`` to ``l``); both maps interpolate
    barycentrically (rows non-negative, summing to 1).

    Args:
        matrix: (V_out, V_in) :class:`GraphMatrix` (shared) or scipy.sparse matrix.
        form: ``"sparse"`` or ``"gather"``; :meth:`set_form` changes it.
    """

    def __init__(self, matrix: GraphMatrix | sp.spmatrix, *, form: GraphForm = "sparse") -> None:
        super().__init__()
        self.matrix = _as_matrix(matrix, "matrix")
        self.form = _check_form(form)

    @property
    def in_vertices(self) -> int:
        return self.matrix.shape[1]

    @property
    def out_vertices(self) -> int:
        return self.matrix.shape[0]

    def set_form(self, form: GraphForm) -> GraphResample:
        """Use ``"sparse"`` or ``"gather"`` from now on (this module only); returns self."""
        self.form = _check_form(form)
        return self

    def extra_repr(self) -> str:
        return f"{self.in_vertices} -> {self.out_vertices}, form={self.form!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resample.

        Args:
            x: (B, V_in, C) float.

        Returns:
            (B, V_out, C) float.
        """
        if not torch.jit.is_tracing() and (not isinstance(x, torch.Tensor) or x.ndim != 3
                                           or x.shape[1] != self.in_vertices):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(f"expected x (B, {self.in_vertices}, C), got {got}")
        return self.vertex_major(x.transpose(0, 1)).transpose(0, 1)

    def vertex_major(self, x: torch.Tensor) -> torch.Tensor:
        """Resample a vertex-major signal.

        Args:
            x: (V_in, B, C) float.

        Returns:
            (V_out, B, C) float, contiguous.
        """
        if not torch.jit.is_tracing() and (x.ndim != 3 or x.shape[0] != self.in_vertices):
            raise InvalidInputError(f"expected x ({self.in_vertices}, B, C) vertex-major, "
                                    f"got {tuple(x.shape)}")
        c = x.shape[2]
        y = self.matrix(x.reshape(self.in_vertices, -1), self.form)
        return y.view(self.out_vertices, -1, c)


def set_graph_form(module: nn.Module, form: GraphForm) -> nn.Module:
    """Switch every :class:`ChebConv` and :class:`GraphResample` inside ``module`` to ``form``.

    Only that module tree changes; other networks sharing the same :class:`GraphMatrix` buffers
    keep their forms. Returns ``module``.
    """
    _check_form(form)
    for m in module.modules():
        if isinstance(m, ChebConv | GraphResample):
            m.set_form(form)
    return module


def graph_forms(module: nn.Module) -> set[str]:
    """The forms used by the :class:`ChebConv` and :class:`GraphResample` modules inside."""
    return {m.form for m in module.modules() if isinstance(m, ChebConv | GraphResample)}


@contextmanager
def persistent_graph_buffers(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the graph buffers inside ``module`` count as persistent.

    For ONNX export: the TorchScript exporter turns every tensor that is not in the state dict
    into a Constant node per use, so a Laplacian shared by several convolutions would be stored
    many times. Inside this block each :class:`GraphMatrix` buffer is in the state dict, and the
    exporter writes it once as an initializer that every use shares. Restored on exit (the
    state dict then holds only learned weights again)::

        with persistent_graph_buffers(set_graph_form(net, "gather")):
            torch.onnx.export(net, (x,), path, dynamo=False, ...)

    Yields:
        ``module``.
    """
    changed: list[tuple[GraphMatrix, str]] = []
    try:
        for m in module.modules():
            if isinstance(m, GraphMatrix):
                for name, buf in list(m.named_buffers(recurse=False)):
                    if name in m._non_persistent_buffers_set:
                        m.register_buffer(name, buf, persistent=True)
                        changed.append((m, name))
        yield module
    finally:
        for m, name in changed:
            m.register_buffer(name, getattr(m, name), persistent=False)
