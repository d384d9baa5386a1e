from __future__ import annotations

import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh import vertex_normals, vertex_normals_np
from facecraft.sdk.models.morphable_model import landmarks_from_vertices


def test_zero_coefficients_decode_to_mean(tiny_model):
    m = tiny_model
    np.testing.assert_array_equal(m.shape(), m.mean_shape)
    np.testing.assert_array_equal(m.shape(np.zeros(m.num_identity), np.zeros(m.num_expression)),
                                  m.mean_shape)
    layer = m.to_torch()
    out = layer(torch.zeros(2, m.num_identity), torch.zeros(2, m.num_expression))
    assert out.shape == (2, m.num_vertices, 3)
    torch.testing.assert_close(out[1], torch.from_numpy(m.mean_shape))
    np.testing.assert_array_equal(m.albedo(), m.albedo_mean)


def test_decode_is_linear_and_numpy_matches_torch(tiny_model):
    m = tiny_model
    rng = np.random.default_rng(1)
    ci = rng.normal(size=(3, m.num_identity)).astype(np.float32)
    ce = rng.random((3, m.num_expression)).astype(np.float32)
    ref = (m.mean_shape[None] + np.einsum("bk,kvd->bvd", ci, m.identity_basis)
           + np.einsum("bk,kvd->bvd", ce, m.expression_basis))
    np.testing.assert_allclose(m.shape(ci, ce), ref, atol=1e-6)
    got = m.to_torch()(torch.from_numpy(ci), torch.from_numpy(ce)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    ct = rng.normal(size=(3, m.num_albedo)).astype(np.float32)
    np.testing.assert_allclose(m.to_torch().albedo(torch.from_numpy(ct)).numpy(),
                               m.albedo(ct), atol=1e-6)
    # fewer coefficients than modes: the rest are zero
    np.testing.assert_allclose(m.shape(ci[0, :2]),
                               m.shape(np.r_[ci[0, :2], np.zeros(m.num_identity - 2)]),
                               atol=1e-7)


def test_torch_decode_is_differentiable(tiny_model):
    layer = tiny_model.to_torch()
    ci = torch.zeros(1, tiny_model.num_identity, requires_grad=True)
    verts = layer(ci)
    lm = layer.landmarks(verts)
    lm.sum().backward()
    assert ci.grad is not None and torch.isfinite(ci.grad).all() and ci.grad.abs().sum() > 0


def test_bad_coefficients_raise(tiny_model):
    with pytest.raises(InvalidInputError, match="identity"):
        tiny_model.shape(np.zeros(tiny_model.num_identity + 1))
    with pytest.raises(InvalidInputError, match="expression"):
        tiny_model.to_torch()(None, torch.zeros(2, 3, 4))


def test_landmarks_barycentric_and_vertex_form_agree(tiny_model):
    m = tiny_model
    np.testing.assert_allclose(m.landmarks(m.mean_shape), m.mean_shape[m.landmark_vertices()],
                               atol=1e-7)
    t = m.to_torch().landmarks(torch.from_numpy(m.mean_shape)[None])[0].numpy()
    np.testing.assert_allclose(t, m.landmarks(m.mean_shape), atol=1e-7)
    with pytest.raises(InvalidInputError, match="no triangle"):
        landmarks_from_vertices([m.num_vertices + 5], m.triangles)


def test_normals_point_outward_and_agree(tiny_model):
    m = tiny_model
    n = m.normals()
    radial = m.mean_shape / np.linalg.norm(m.mean_shape, axis=1, keepdims=True)
    assert (np.sum(n * radial, axis=1) > 0.9).all()
    t = vertex_normals(torch.from_numpy(m.mean_shape), torch.from_numpy(m.triangles).long())
    np.testing.assert_allclose(t.numpy(), n, atol=1e-5)
    np.testing.assert_allclose(vertex_normals_np(m.mean_shape[None], m.triangles)[0], n)


def test_validation_names_the_problem(tiny_model):
    with pytest.raises(InvalidInputError, match="identity_basis"):
        tiny_model.replace(identity_basis=np.zeros((2, 5, 3)))
    with pytest.raises(InvalidInputError, match="identity_names"):
        tiny_model.replace(identity_names=("a",))
    with pytest.raises(InvalidInputError, match="landmark_faces"):
        tiny_model.replace(landmark_faces=np.zeros(10, np.int32))
    with pytest.raises(InvalidInputError, match="outside"):
        tiny_model.replace(triangles=tiny_model.triangles + 1000)


def test_submesh_keeps_geometry_and_remaps(tiny_model):
    m = tiny_model
    keep = np.arange(m.num_vertices)[m.mean_shape[:, 1] > -0.095]  # drop the bottom cap
    lm_v = set(m.landmark_vertices().tolist())
    # keep every landmark's triangle
    keep = np.union1d(keep, m.triangles[m.landmark_faces].ravel())
    sub = m.submesh(keep)
    assert sub.num_vertices == len(keep)
    np.testing.assert_array_equal(sub.mean_shape, m.mean_shape[keep])
    np.testing.assert_allclose(sub.landmarks(sub.mean_shape), m.landmarks(m.mean_shape))
    assert sub.identity_basis.shape[1] == len(keep)
    assert lm_v  # sanity
    assert len(sub.uv_triangles) == len(sub.triangles)
