"""Texture-net training and the ablation evaluation on a few real photos (small and fast)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from facecraft.sdk.cli import main
from facecraft.sdk.errors import InvalidInputError, ModelFileError
from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.training.eval_texture import COARSE_ROW, evaluate_texture
from facecraft.training.losses import LossWeights
from facecraft.training.photo_data import prepare_photos
from facecraft.training.regressor import CoeffLayout, InputSpec, coeff_regressor, save_regressor
from facecraft.training.synthetic import template_translation
from facecraft.training.texture_config import ABLATION_ROWS, TextureTrainConfig, ablation_configs
from facecraft.training.texture_io import load_texture_nets, save_texture_nets
from facecraft.training.texture_nets import FineTextureNet, TextureNetConfig
from facecraft.training.texture_stage import generator_terms, mirror_vertex_ids, texture_stage
from facecraft.training.train_texture import train_texture
from tests.conftest import assets_or_skip

CROP = 64
SMALL_NETS = {"decoder_widths": [8, 8, 8, 8], "refiner_widths": [8, 8, 16, 16],
              "refiner_stem_width": 8, "bottleneck": 32, "K": 3, "refiner_skips": 4}


@pytest.fixture(scope="module")
def starter():
    return load_default_model()


@pytest.fixture(scope="module")
def regressor_ckpt(starter, tmp_path_factory):
    """A random regressor (resnet18 width 8, small random head) on the starter model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reg = coeff_regressor(layout=CoeffLayout.from_model(starter), backbone="resnet18",
                              width=8, input_spec=InputSpec(crop_size=CROP),
                              translation_offset=tuple(template_translation(starter, CROP)))
        with torch.no_grad():
            reg.head.weight.normal_(0.0, 0.002)
            reg.head.weight[reg.layout.slices()["translation"]] = 0.0
    path = tmp_path_factory.mktemp("reg") / "reg.safetensors"
    save_regressor(reg, path, extra_meta={"face_model": starter.name, "step": 1})
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """5 prepared faces: 4 views of one person and a CelebA photo."""
    views = assets_or_skip("photos", "multi-view-one-person")
    celeba = assets_or_skip("photos", "celeba-5pt", "000002.jpg")
    out = tmp_path_factory.mktemp("photos")
    summary = prepare_photos([views, celeba], out, progress=False)
    assert summary.faces >= 4
    return out


def _config(regressor_ckpt, photos, out, **kw) -> TextureTrainConfig:
    base = dict(regressor=str(regressor_ckpt), photo_data=str(photos), holdout_every=0,
                batch_size=2, steps=4, lr=2e-3, critic_steps=1, nets=SMALL_NETS,
                recognizer="none", identity_feature=False, log_every=1, snapshot_every=0,
                checkpoint_every=0, snapshot_count=2, out_dir=str(out),
                loss_weights=LossWeights(photometric=1.0, landmark=0.0, identity=0.0,
                                         coefficient_reg=0.0, lighting_reg=0.0,
                                         albedo_variance=0.0))
    base.update(kw)
    return TextureTrainConfig(**base)


def test_config_validation(regressor_ckpt, photos, tmp_path):
    cfg = _config(regressor_ckpt, photos, tmp_path)
    assert TextureTrainConfig.from_dict(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(InvalidInputError, match="regressor term"):
        dataclasses.replace(cfg, loss_weights=LossWeights(landmark=1.0))
    with pytest.raises(InvalidInputError, match="unknown texture config keys"):
        TextureTrainConfig.from_dict({**cfg.to_json(), "stepz": 3})
    with pytest.raises(InvalidInputError, match="refiner_skips"):
        dataclasses.replace(cfg, nets={"refiner_skips": 9})


def test_ablation_rows_switch_terms(regressor_ckpt, photos, tmp_path):
    base = _config(regressor_ckpt, photos, tmp_path, loss_weights=LossWeights(
        photometric=1.0, landmark=0.0, identity=0.2, coefficient_reg=0.0, lighting_reg=0.0,
        albedo_variance=0.0, texture_vertex=0.2, adversarial=1e-3, gradient_penalty=10.0))
    rows = ablation_configs(base)
    assert list(rows) == list(ABLATION_ROWS)
    assert set(rows["L_pix"].loss_weights.active()) == {"photometric"}
    assert set(rows["+L_adv"].loss_weights.active()) == {"photometric", "identity",
                                                         "adversarial", "gradient_penalty"}
    assert rows["+L_vert"].loss_weights == base.loss_weights
    assert len({c.out_dir for c in rows.values()}) == 4
    with pytest.raises(InvalidInputError, match="needs"):
        ablation_configs(_config(regressor_ckpt, photos, tmp_path))  # no identity weight


def test_mirror_ids_are_an_involution_on_the_starter(starter):
    m = mirror_vertex_ids(starter.mean_shape)
    assert m.shape == (starter.num_vertices,) if hasattr(starter, "num_vertices") else True
    mirrored = starter.mean_shape[m] * np.array([-1, 1, 1])
    assert np.median(np.linalg.norm(mirrored - starter.mean_shape, axis=1)) < 1e-3  # metres
    assert np.mean(m[m] == np.arange(len(m))) > 0.9


def test_generator_terms_gradients_and_zero_cases(regressor_ckpt, photos, starter):
    from facecraft.training.photo_data import PhotoFaces
    from facecraft.training.regressor import load_regressor
    from facecraft.training.texture_nets import PatchDiscriminator

    reg = load_regressor(regressor_ckpt).eval()
    ds = PhotoFaces(photos, image_size=CROP)
    batch = ds.batch([0, 1])
    layer = starter.to_torch()
    cam = PerspectiveCamera.paper(CROP)
    stage = texture_stage(reg, layer, cam, batch["image"], batch["skin_mask"])
    assert stage.refiner_input.shape == (2, layer.mean_shape.numel() // 3, 7)
    assert stage.face_mask.any()
    weights = LossWeights(photometric=1.0, landmark=0.0, identity=0.0, coefficient_reg=0.0,
                          lighting_reg=0.0, albedo_variance=0.1, texture_vertex=1.0,
                          symmetry=0.5, adversarial=1.0)
    mirror = torch.from_numpy(mirror_vertex_ids(starter.mean_shape))
    skin = torch.as_tensor(np.asarray(starter.regions["skin"], np.int64))
    # the coarse texture itself: L_vert is exactly 0
    terms, _ = generator_terms(stage, stage.coarse, layer, cam, weights)
    assert float(terms["texture_vertex"]) == 0.0
    # a perturbed texture: every term has a finite, non-zero gradient
    noise = torch.randn(stage.coarse.shape, generator=torch.Generator().manual_seed(0))
    fine = (stage.coarse + 0.05 * noise).clamp(0, 1).requires_grad_(True)
    terms, _ = generator_terms(stage, fine, layer, cam, weights, critic=PatchDiscriminator(),
                               mirror=mirror, skin_ids=skin)
    assert set(terms) == {"photometric", "texture_vertex", "symmetry", "albedo_variance",
                          "adversarial"}
    for name, t in terms.items():
        (g,) = torch.autograd.grad(t, fine, retain_graph=True, allow_unused=True)
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    # a uniform grey albedo: no symmetry and no skin variance loss
    grey = torch.full_like(stage.coarse, 0.5)
    terms, _ = generator_terms(stage, grey, layer, cam, weights, mirror=mirror, skin_ids=skin)
    assert float(terms["symmetry"]) == 0.0
    assert float(terms["albedo_variance"]) < 1e-12


def test_training_lowers_the_pixel_loss_and_resumes(regressor_ckpt, photos, tmp_path):
    cfg = _config(regressor_ckpt, photos, tmp_path / "run", steps=12)
    first = train_texture(cfg, resume=False, progress=False, stop_after=6)
    assert first.step == 6 and first.checkpoint.is_file()
    done = train_texture(cfg, progress=False)
    assert done.start_step == 6 and done.step == 12
    loss = [h["photometric"] for h in done.history]
    assert len(loss) == 12
    assert np.mean(loss[-3:]) < np.mean(loss[:3])
    out = tmp_path / "run"
    for name in ("config.json", "metrics.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert list((out / "snapshots").glob("*.png"))
    assert list((out / "tb").iterdir())
    with pytest.raises(InvalidInputError, match="trained with other"):
        train_texture(dataclasses.replace(cfg, lr=1e-2), progress=False)


def test_adversarial_and_identity_run(regressor_ckpt, photos, tmp_path):
    cfg = _config(regressor_ckpt, photos, tmp_path / "adv", steps=2, recognizer="dlib",
                  identity_feature=True,
                  loss_weights=LossWeights(photometric=1.0, landmark=0.0, identity=0.2,
                                           coefficient_reg=0.0, lighting_reg=0.0,
                                           albedo_variance=0.0, texture_vertex=0.2,
                                           adversarial=1e-3, gradient_penalty=10.0))
    res = train_texture(cfg, resume=False, progress=False)
    last = res.history[-1]
    for key in ("photometric", "identity", "adversarial", "texture_vertex", "critic"):
        assert np.isfinite(last[key]), key
    net, meta = load_texture_nets(res.checkpoint)
    assert meta["identity_feature"] and meta["feature_dim"] == net.config.feature_dim


def test_checkpoint_round_trip_and_errors(starter, tmp_path):
    net = FineTextureNet(starter.graph, TextureNetConfig(**SMALL_NETS), feature_dim=5)
    path = tmp_path / "t.safetensors"
    save_texture_nets(net, path, meta={"face_model": starter.name, "feature_dim": 5})
    back, meta = load_texture_nets(path)
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ModelFileError, match="does not exist"):
        load_texture_nets(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelFileError):
        load_texture_nets(tmp_path / "junk.safetensors")


def test_eval_texture_cli_writes_the_table(regressor_ckpt, photos, tmp_path, capsys):
    run = tmp_path / "pix"
    train_texture(_config(regressor_ckpt, photos, run, steps=2, holdout_every=2),
                  resume=False, progress=False)
    report, sheet = evaluate_texture({"L_pix": run}, recognizer="none")
    assert [r.name for r in report.rows] == [COARSE_ROW, "L_pix"]
    assert all(np.isfinite(r.psnr_db) and 0 < r.ssim <= 1 for r in report.rows)
    assert sheet.ndim == 3 and sheet.dtype == np.uint8
    code = main(["eval", "texture", f"L_pix={run}", "--recognizer", "none",
                 "--out", str(tmp_path / "eval")])
    assert code == 0
    assert "| L_pix |" in capsys.readouterr().out
    for name in ("table.md", "report.json", "contact_sheet.png"):
        assert (tmp_path / "eval" / name).is_file()
    assert main(["eval", "texture", str(tmp_path / "missing")]) == 1
    assert "not a texture run" in capsys.readouterr().err


def test_albedo_model_from_photos(starter, photos, tmp_path, capsys):
    from facecraft.sdk.models.model_file import load_model, save_model
    from facecraft.training.albedo_model import AlbedoBuildSettings, build_albedo_model

    shape_only = dataclasses.replace(starter, albedo_mean=None, albedo_basis=None,
                                     albedo_names=())
    res = build_albedo_model(shape_only, photos, AlbedoBuildSettings(components=3))
    v = starter.mean_shape.shape[0]
    assert res.faces_used >= 4 and res.model.albedo_basis.shape == (3, v, 3)
    assert 0.3 < res.coverage <= 1.0
    assert np.all((res.model.albedo_mean >= 0) & (res.model.albedo_mean <= 1))
    assert np.all(np.diff(res.explained_variance) <= 1e-9)  # sorted modes
    with pytest.raises(InvalidInputError, match="at least"):
        build_albedo_model(shape_only, photos, AlbedoBuildSettings(min_faces=50))
    src = tmp_path / "shape_only.fcm"
    save_model(shape_only, src)
    out = tmp_path / "with_albedo.fcm"
    assert main(["train", "albedo", "--model", str(src), "--photos", str(photos), "-o",
                 str(out), "--components", "2", "-q", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces_used"] >= 4
    assert load_model(out).albedo_basis.shape == (2, v, 3)


@pytest.mark.slow
def test_torchrun_two_processes(regressor_ckpt, photos, tmp_path):
    import os
    import shutil
    import subprocess

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    cfg = _config(regressor_ckpt, photos, tmp_path / "ddp", steps=3, batch_size=1)
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(cfg.to_json()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                        "facecraft.sdk.cli", "train", "texture", "--config", str(path),
                        "--json", "-q"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    summaries = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["run"]["step"] == 3  # only rank 0 reports
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    load_texture_nets(tmp_path / "ddp" / "checkpoints" / "texture.safetensors")
