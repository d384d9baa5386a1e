"""``facecraft eval regressor``: metric functions against known values, the report of a tiny
random regressor on synthetic faces and annotated photos, the CLI and its errors."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.photo.landmark_eval import inter_ocular_nme
from facecraft.sdk.render.cameras import euler_to_matrix
from facecraft.training.eval_regressor import (
    NOW_LANDMARKS,
    ErrorStats,
    RegressorEvalSettings,
    box_nme,
    coefficient_errors,
    evaluate,
    fit_similarity,
    now_vertex_errors,
    rotation_error_deg,
    write_report,
)
from facecraft.training.losses import psnr, ssim
from facecraft.training.regressor import (
    CoeffLayout,
    Coeffs3DMM,
    InputSpec,
    coeff_regressor,
    save_regressor,
)
from facecraft.training.synthetic import SyntheticFaces, SyntheticSettings, template_translation

from ..conftest import ASSETS, assets_or_skip, make_tiny_model

CROP = 64
#: A gt_manual photo with one face and a model_pred photo with two (3 annotated faces).
PHOTOS = ("photos/eos-300w/image_0010.png", "photos/pascal-voc-groups/2008_001009.jpg")


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def starter():
    return load_default_model()


def _regressor(model, *, random_head: bool):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reg = coeff_regressor(layout=CoeffLayout.from_model(model), backbone="resnet18", width=8,
                              input_spec=InputSpec(crop_size=CROP),
                              translation_offset=tuple(template_translation(model, CROP)))
        if random_head:  # small outputs, translation kept: the face stays in the crop
            with torch.no_grad():
                reg.head.weight.normal_(0.0, 0.002)
                reg.head.weight[reg.layout.slices()["translation"]] = 0.0
    return reg


@pytest.fixture(scope="module")
def checkpoint(starter, tmp_path_factory):
    """A random-weight regressor (random head too) on the starter model, 64 px crops."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_regressor(_regressor(starter, random_head=True), path,
                   extra_meta={"face_model": starter.name, "step": 3})
    return path


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    """Two photos of landmarks68.json, paths relative to the assets folder."""
    src = assets_or_skip("landmarks68.json")
    images = json.loads(src.read_text())["images"]
    path = tmp_path_factory.mktemp("ann") / "subset.json"
    path.write_text(json.dumps({"images": {k: images[k] for k in PHOTOS}}))
    return path


@pytest.fixture(scope="module")
def report(checkpoint, annotations):
    return evaluate(checkpoint, synthetic_count=8, annotations=annotations, photo_root=ASSETS,
                    settings=RegressorEvalSettings(batch_size=8, tile_size=64))


@pytest.fixture(scope="module")
def truth():
    """Four synthetic faces of the tiny sphere model with their true coefficients."""
    model = make_tiny_model()
    faces = SyntheticFaces(model, SyntheticSettings(image_size=32), length=4, seed=5)
    b = faces.render_batch(range(4))
    c = Coeffs3DMM(identity=b.identity, expression=b.expression, albedo=b.albedo,
                   angles=b.angles, lighting=b.lighting, translation=b.translation)
    layer = model.to_torch()
    return model, layer, c, layer(c.identity, c.expression)


# ------------------------------------------------------------------------ metric functions
def _anchors(layer, verts):
    return layer.landmarks(verts)[:, list(NOW_LANDMARKS)]


def test_now_error_zero_for_truth_positive_for_mean_face(truth):
    model, layer, _, verts = truth
    region = torch.from_numpy(model.regions["face"].astype(np.int64))
    same = now_vertex_errors(verts, verts, _anchors(layer, verts), _anchors(layer, verts),
                             region=region)
    assert same.shape == (4, len(region)) and float(same.max()) < 1e-6
    mean = layer.mean_shape.reshape(1, -1, 3).expand_as(verts)
    err = now_vertex_errors(mean, verts, _anchors(layer, mean), _anchors(layer, verts),
                            region=region)
    assert float(err.mean()) > 1e-4  # metres; identity modes move vertices by millimetres


def test_now_alignment_removes_a_similarity_only_with_scale(truth):
    _, layer, _, verts = truth
    rot = euler_to_matrix(torch.tensor([[0.2, -0.5, 0.1]]).expand(4, 3))
    moved = 1.1 * verts @ rot.transpose(1, 2) + torch.tensor([0.01, -0.02, 0.3])
    with_scale = now_vertex_errors(moved, verts, _anchors(layer, moved), _anchors(layer, verts))
    assert float(with_scale.max()) < 1e-5
    rigid = now_vertex_errors(moved, verts, _anchors(layer, moved), _anchors(layer, verts),
                              scale=False)
    assert float(rigid.mean()) > 1e-3
    s, r, _ = fit_similarity(_anchors(layer, moved), _anchors(layer, verts))
    assert torch.allclose(s, torch.full((4,), 1 / 1.1, dtype=s.dtype), atol=1e-5)
    assert torch.allclose(r.float(), rot.transpose(1, 2), atol=1e-5)


def test_coefficient_errors_known_values(truth):
    _, _, c, _ = truth
    zero = coefficient_errors(c, c)
    for k, v in zero.items():
        assert v.shape == (4,) and float(v.abs().max()) < 1e-3, k
    ident = c.identity.clone()
    ident[:, 0] += 2.0  # one of 5 modes off by 2: RMSE 2 / sqrt(5)
    off = coefficient_errors(dataclasses.replace(c, identity=ident,
                                                 translation=c.translation + 0.003), c)
    assert torch.allclose(off["identity_rmse"], torch.full((4,), 2 / math.sqrt(5)), atol=1e-5)
    assert torch.allclose(off["translation_error_mm"], torch.full((4,), 3 * math.sqrt(3)),
                          atol=1e-3)
    # fewer predicted modes count the missing ones as zero
    short = coefficient_errors(dataclasses.replace(c, identity=c.identity[:, :2]), c)
    expect = (c.identity[:, 2:] ** 2).sum(1).div(5).sqrt()
    assert torch.allclose(short["identity_rmse"], expect, atol=1e-6)


def test_rotation_error_deg():
    a = torch.tensor([[0.0, math.radians(30), 0.0], [0.3, -0.2, 0.1]])
    b = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]])
    err = rotation_error_deg(a, b)
    assert err[0] == pytest.approx(30.0, abs=1e-4) and err[1] == pytest.approx(0.0, abs=1e-3)
    assert torch.allclose(rotation_error_deg(b, a), err, atol=1e-4)


def test_box_and_inter_ocular_nme():
    rng = np.random.default_rng(0)
    gt = rng.uniform(100, 200, (68, 2))
    assert box_nme(gt, gt) == 0.0 and inter_ocular_nme(gt, gt, gt) == 0.0
    w, h = gt.max(0) - gt.min(0)
    assert box_nme(gt + [3.0, 4.0], gt) == pytest.approx(5.0 / math.sqrt(w * h))
    with pytest.raises(InvalidInputError):
        box_nme(gt[:5], gt)


def test_psnr_ssim_behave():
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(2, 24, 24, 3, generator=rng)
    mask = torch.zeros(2, 24, 24, dtype=torch.bool)
    mask[:, 6:18, 6:18] = True
    assert torch.isinf(psnr(a, a, mask)).all()
    assert torch.allclose(ssim(a, a, mask), torch.ones(2))
    b = (a + 0.1).clamp(0, 1)
    mse = ((a - b) ** 2).mean(-1)[mask.nonzero(as_tuple=True)].reshape(2, -1).mean(1)
    assert torch.allclose(psnr(a, b, mask), 10 * torch.log10(1 / mse), atol=1e-4)
    noisy = (a + 0.3 * torch.randn(a.shape, generator=rng)).clamp(0, 1)
    assert (ssim(a, noisy, mask) < ssim(a, b, mask)).all()


def test_error_stats():
    s = ErrorStats.of(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert (s.mean, s.median) == (2.5, 2.5) and s.p90 == pytest.approx(3.7)
    assert math.isnan(ErrorStats.of(np.array([])).mean)


# ------------------------------------------------------------------------------ evaluate
def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


def test_report_synthetic_fields(report):
    for m in (report.synthetic, report.mean_face):
        assert m.count == 8
        v = m.vertex_error_mm
        assert _finite(v.mean, v.median, v.p90, m.rigid_vertex_error_mm, m.identity_rmse,
                       m.expression_rmse, m.albedo_rmse, m.lighting_rmse, m.rotation_error_deg,
                       m.angle_mae_deg, m.translation_error_mm, m.landmark_nme)
        assert 0 < v.median <= v.p90 and v.mean > 0
    # the random head moves the prediction away from the mean face
    assert report.synthetic.identity_rmse != report.mean_face.identity_rmse
    assert (report.face_model, report.crop_size, report.step) == ("facecraft-starter", CROP, 3)


def test_report_photo_fields(report):
    rows = {r.kind: r for r in report.landmarks}
    assert set(rows) == {"gt_manual", "model_pred"}
    assert (rows["gt_manual"].faces, rows["model_pred"].faces) == (1, 2)
    for r in rows.values():
        assert r.matched == r.faces and _finite(r.nme_box, r.nme_iod)
        assert 0 < r.nme_box < r.nme_iod  # sqrt(w h) of the box exceeds the eye distance
    p = report.photometric
    assert p.faces == 3 and _finite(p.psnr_db, p.ssim) and p.psnr_db > 0 and -1 <= p.ssim <= 1
    assert report.photos == 2 and len(report.faces) == 3
    assert report.contact_sheet.shape == (3 * 64 + 2 * 2, 3 * 64, 3)
    json.dumps(report.to_dict(), allow_nan=False)


def test_write_report(report, tmp_path):
    files = write_report(report, tmp_path / "out")
    assert [f.name for f in files] == ["report.json", "contact_sheet.png"]
    d = json.loads(files[0].read_text())
    assert d["synthetic"]["vertex_error_mm"]["mean"] == report.synthetic.vertex_error_mm.mean
    assert cv2.imread(str(files[1])).shape == report.contact_sheet.shape
    assert "mean face" in report.format_table() and "gt_manual" in report.format_table()


def test_zero_head_regressor_is_the_mean_face(starter):
    """An untrained regressor outputs the mean face: its row equals the baseline's."""
    r = evaluate(_regressor(starter, random_head=False), synthetic_count=4,
                 settings=RegressorEvalSettings(seed=11), model=starter)
    assert r.annotations is None and r.landmarks == () and r.contact_sheet is None
    a, b = dataclasses.asdict(r.synthetic), dataclasses.asdict(r.mean_face)
    assert a.pop("vertex_error_mm") == pytest.approx(b.pop("vertex_error_mm"), rel=1e-5)
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_evaluate_errors(starter, checkpoint, tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        evaluate(tmp_path / "nope.safetensors", synthetic_count=1)
    with pytest.raises(InvalidInputError, match="nothing to evaluate"):
        evaluate(checkpoint, synthetic_count=0)
    other = tmp_path / "other.safetensors"
    save_regressor(_regressor(starter, random_head=False), other,
                   extra_meta={"face_model": "someone-elses-model"})
    with pytest.raises(InvalidInputError, match="someone-elses-model"):
        evaluate(other, synthetic_count=1)
    with pytest.raises(InvalidInputError, match="modes"):  # the starter's layout on a tiny model
        evaluate(_regressor(starter, random_head=False), synthetic_count=1,
                 model=make_tiny_model().replace(name=starter.name))
    with pytest.raises(InvalidInputError, match="unknown synthetic"):
        RegressorEvalSettings(synthetic={"nope": 1})


# ----------------------------------------------------------------------------------- CLI
def test_cli_writes_report_and_sheet(checkpoint, annotations, tmp_path, capsys):
    absolute = json.loads(annotations.read_text())["images"]
    ann = tmp_path / "abs.json"  # the CLI resolves photo paths against the file's folder
    ann.write_text(json.dumps({"images": {str(ASSETS / k): v for k, v in absolute.items()}}))
    out = tmp_path / "eval"
    code = main(["eval", "regressor", str(checkpoint), "--synthetic", "4", "--annotations",
                 str(ann), "--out", str(out), "--sheet-faces", "2", "-q"])
    text = capsys.readouterr().out
    assert code == 0
    assert "vertex error mean (mm, NoW)" in text and "model_pred" in text
    d = json.loads((out / "report.json").read_text())
    assert d["synthetic"]["count"] == 4 and len(d["faces"]) == 3
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] == 2 * 128 + 2  # two faces, one column


def test_cli_missing_checkpoint_one_line_error(tmp_path, capsys):
    code = main(["eval", "regressor", str(tmp_path / "missing.safetensors")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert err.startswith("facecraft: error:") and err.strip().count("\n") == 0
    assert "missing.safetensors" in err and "Traceback" not in err
