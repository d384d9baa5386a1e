"""Real-photo data preparation: manifest and skip reasons, the PhotoFaces dataset, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.photo.align import CROP_TEMPLATE_224
from facecraft.sdk.photo.landmarker import Dlib68Landmarker
from facecraft.training.photo_data import (
    PHOTO_FACES_FORMAT,
    PhotoFaces,
    PrepareSettings,
    prepare_photos,
)

from ..conftest import assets_or_skip

HAS_68 = Dlib68Landmarker.available()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """4 faces from 5 real photos (one without a face) and a cut-off JPEG; a .txt is ignored."""
    celeba = assets_or_skip("photos", "celeba-5pt", "000002.jpg")
    views = assets_or_skip("photos", "multi-view-one-person")
    grass = assets_or_skip("photos", "no-face", "grass.jpg")
    extra = tmp_path_factory.mktemp("extra")
    (extra / "broken.jpg").write_bytes(celeba.read_bytes()[:3000])  # truncated JPEG
    (extra / "notes.txt").write_text("not a photo")
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare_photos([celeba, views, grass, extra], out, progress=False)
    return summary, out, {"celeba": celeba, "views": views, "grass": grass, "extra": extra}


def test_summary_and_manifest(prepared):
    summary, out, src = prepared
    assert (summary.photos, summary.photos_with_faces, summary.faces) == (6, 4, 4)
    assert dict(summary.skipped) == {"undecodable": 1, "no_face": 1}
    assert summary.landmarker == ("dlib68" if HAS_68 else "none")
    assert summary.crop_size == 224 and summary.out_dir == out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == PHOTO_FACES_FORMAT and manifest["crop_size"] == 224
    assert (out / manifest["tensor_file"]).is_file()
    assert manifest["summary"] == json.loads(json.dumps(summary.to_json()))
    assert manifest["sources"][0] == str(src["celeba"].resolve())
    assert len(manifest["sources"]) == 4 and len(manifest["items"]) == 4
    for i, item in enumerate(manifest["items"]):
        assert item["index"] == i and item["face"] == 0
        assert 0 <= item["source"] < 4 and 0.9 <= item["score"] <= 1.0
        x0, y0, x1, y1 = item["box"]
        assert x1 - x0 > 64 and y1 - y0 > 64
        assert item["landmark_kind"] == ("dlib68" if HAS_68 else "mesh468")
        assert item["mask_kind"] == "mesh468"  # the default front-end's regions, never dlib's
        assert 0.1 < item["skin_fraction"] < 0.7
    reasons = {s["source"]: (s["reason"], s["detail"]) for s in manifest["skipped"]}
    assert reasons[str(src["grass"].resolve())][0] == "no_face"
    reason, detail = reasons[str((src["extra"] / "broken.jpg").resolve())]
    assert reason == "undecodable" and "truncated" in detail
    assert not any("notes.txt" in s for s in reasons)


def test_dataset_at_crop_size(prepared):
    _, out, _ = prepared
    ds = PhotoFaces(out)
    assert len(ds) == 4 and ds.image_size == ds.crop_size == 224
    assert len(ds.sources) == 4 and len(ds.skipped) == 2
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (3, 224, 224) and it["image"].dtype == torch.float32
        assert 0.0 <= float(it["image"].min()) and float(it["image"].max()) <= 1.0
        assert it["landmarks"].shape == (68, 2) and it["landmarks_valid"].shape == (68,)
        assert it["skin_mask"].shape == (1, 224, 224) and it["skin_mask"].dtype == torch.bool
        assert 0.1 < float(it["skin_mask"].float().mean()) < 0.7
        assert int(it["index"]) == i and 0 <= int(it["source"]) < 4
        # the 5 points sit on the crop template (a least-squares similarity fit of them)
        err = np.linalg.norm(it["landmarks5"].numpy() - CROP_TEMPLATE_224, axis=1)
        assert err.mean() < 12.0, err
        if HAS_68:
            assert bool(it["landmarks_valid"].all())
            lm = it["landmarks"]
            inner = lm[17:]  # brows, eyes, nose, mouth; the jaw line may reach past the chin
            assert bool(((inner >= 0) & (inner <= 224)).all()), lm
            assert bool(((lm >= -0.1 * 224) & (lm <= 1.1 * 224)).all()), lm
            # the mask covers the cheeks: the midpoint between nose tip and jaw point 3
            x, y = ((lm[30] + lm[3]) / 2).long().tolist()
            assert bool(it["skin_mask"][0, y, x])


def test_dataset_resized(prepared):
    _, out, _ = prepared
    full, small = PhotoFaces(out), PhotoFaces(out, image_size=64)
    assert small.image_size == 64 and small.crop_size == 224
    b, ref = small.batch([2, 0, 2]), full.batch([2, 0, 2])
    assert b["image"].shape == (3, 3, 64, 64) and b["skin_mask"].shape == (3, 1, 64, 64)
    torch.testing.assert_close(b["landmarks"], ref["landmarks"] * (64 / 224))
    torch.testing.assert_close(b["landmarks5"], ref["landmarks5"] * (64 / 224))
    torch.testing.assert_close(b["image"][0], b["image"][2])
    assert b["index"].tolist() == [2, 0, 2]
    assert bool(b["skin_mask"].flatten(1).any(1).all())
    # the mean colour survives the resize
    torch.testing.assert_close(b["image"].mean((2, 3)), ref["image"].mean((2, 3)), atol=0.02,
                               rtol=0)
    loader = torch.utils.data.DataLoader(small, batch_size=2)
    first = next(iter(loader))
    for k, v in small.batch([0, 1]).items():
        assert torch.equal(first[k], v), k


def test_five_points_only_and_small_faces(tmp_path):
    celeba = assets_or_skip("photos", "celeba-5pt", "000002.jpg")
    s = prepare_photos(celeba, tmp_path / "five", PrepareSettings(landmarks68=False),
                       progress=False)
    assert s.landmarker == "none" and s.faces == 1
    it = PhotoFaces(tmp_path / "five", image_size=96)[0]
    assert not bool(it["landmarks_valid"].any()) and float(it["landmarks"].abs().sum()) == 0
    assert 0.1 < float(it["skin_mask"].float().mean()) < 0.7
    item = json.loads((tmp_path / "five" / "manifest.json").read_text())["items"][0]
    assert (item["landmark_kind"], item["mask_kind"]) == ("mesh468", "mesh468")
    s = prepare_photos(celeba, tmp_path / "mtcnn", PrepareSettings(landmarks68=False,
                                                                   front_end="mtcnn"),
                       progress=False)
    item = json.loads((tmp_path / "mtcnn" / "manifest.json").read_text())["items"][0]
    assert (item["landmark_kind"], item["mask_kind"]) == ("mtcnn5", "ellipse5")

    group = assets_or_skip("photos", "pascal-voc-groups", "2007_007763.jpg")
    s = prepare_photos(group, tmp_path / "group", PrepareSettings(landmarks68=False),
                       progress=False)
    assert (s.faces, dict(s.skipped)) == (0, {"face_too_small": 1})
    skipped = json.loads((tmp_path / "group" / "manifest.json").read_text())["skipped"]
    assert "below min_face_size 64 px" in skipped[0]["detail"]
    s = prepare_photos(group, tmp_path / "group", progress=False, settings=PrepareSettings(
        landmarks68=False, min_face_size=20, max_faces=3, crop_size=64))
    assert (s.faces, s.photos_with_faces) == (3, 1)
    ds = PhotoFaces(tmp_path / "group")
    assert len(ds) == 3 and ds.batch([0, 1, 2])["source"].tolist() == [0, 0, 0]


def test_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        prepare_photos(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no photos"):
        prepare_photos(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(InvalidInputError, match="not a prepared photo folder"):
        PhotoFaces(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="crop_size"):
        PrepareSettings(crop_size=8)
    with pytest.raises(InvalidInputError, match="max_faces"):
        PrepareSettings(max_faces=0)


def test_cli_prepare(tmp_path, capsys):
    celeba = assets_or_skip("photos", "celeba-5pt", "000006.jpg")
    grass = assets_or_skip("photos", "no-face")
    out = tmp_path / "out"
    code = main(["train", "prepare", str(celeba), str(grass), "-o", str(out), "--size", "128",
                 "-q", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["faces"] == 1 and summary["skipped"] == {"no_face": 1}
    assert summary["crop_size"] == 128 and summary["out_dir"] == str(out)
    assert PhotoFaces(out)[0]["image"].shape == (3, 128, 128)

    code = main(["train", "prepare", str(grass), "-o", str(out), "-q", "--no-landmarks68"])
    text = capsys.readouterr().out
    assert code == 0 and "skipped:" in text and "no_face 1" in text

    code = main(["train", "prepare", str(tmp_path / "missing.jpg"), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR and len(err) == 1
    assert err[0].startswith("facecraft: error:") and "missing.jpg does not exist" in err[0]
