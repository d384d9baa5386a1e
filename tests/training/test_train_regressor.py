"""The regressor trainer: outputs, loss decrease, bit-exact resume, CLI, config; real-photo
batches with the weakly-supervised terms."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.render.cameras import euler_to_matrix
from facecraft.training.crop_recognizer import load_training_recognizer
from facecraft.training.losses import LossWeights
from facecraft.training.photo_data import PhotoFaces, prepare_photos
from facecraft.training.regressor import Coeffs3DMM, load_regressor
from facecraft.training.regressor_config import DEFAULT_TRAIN_LOSS_WEIGHTS, RegressorTrainConfig
from facecraft.training.regressor_metrics import procrustes_align
from facecraft.training.regressor_terms import PhotoTerms, RegressorTerms
from facecraft.training.synthetic import SyntheticFaces
from facecraft.training.train_regressor import PhotoSteps, build_regressor, train_regressor

from ..conftest import assets_or_skip

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "regressor_starter_tiny.json"
FULL = REPO / "configs" / "regressor_starter.json"


def _tiny(out: Path, **changes) -> RegressorTrainConfig:
    return dataclasses.replace(RegressorTrainConfig.from_json(TINY), out_dir=str(out), **changes)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The tiny config trained straight through (30 steps)."""
    out = tmp_path_factory.mktemp("straight")
    return train_regressor(_tiny(out), resume=False, progress=False)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_regressor(path).state_dict()


# ------------------------------------------------------------------------------- training
def test_tiny_run_trains_and_writes_every_output(straight_run):
    r = straight_run
    cfg = RegressorTrainConfig.from_json(TINY)
    assert (r.start_step, r.step) == (0, cfg.steps)
    assert [h["step"] for h in r.history] == list(range(1, cfg.steps + 1))
    totals = [h["total"] for h in r.history]
    assert all(math.isfinite(t) for t in totals)
    assert np.mean(totals[-5:]) < np.mean(totals[:5])
    for h in r.history:  # weighted terms add up to the total
        parts = sum(v for k, v in h.items() if k not in ("step", "lr", "total"))
        assert parts == pytest.approx(h["total"], rel=1e-4)
        assert set(h) == {"step", "lr", "total", "supervised_coeffs", "vertex", "landmark",
                          "photometric"}

    out = r.out_dir
    assert r.checkpoint == out / "checkpoints" / "last.safetensors" and r.checkpoint.is_file()
    assert (out / "checkpoints" / "last.state.pt").is_file()
    assert RegressorTrainConfig.from_json(out / "config.json") == _tiny(out)
    assert list((out / "tb").glob("events.out.tfevents.*"))
    snaps = sorted(p.name for p in (out / "snapshots").glob("*.png"))
    assert snaps == ["step_000015.png", "step_000030.png"]
    grid = cv2.imread(str(out / "snapshots" / "step_000030.png"))
    assert grid.shape == (cfg.snapshot_count * cfg.image_size, 2 * cfg.image_size, 3)
    curve = cv2.imread(str(out / "loss_curve.png"))
    assert curve is not None and curve.shape[2] == 3 and (curve < 250).any()

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(r.metrics))
    assert metrics["step"] == cfg.steps and metrics["finished"]
    val = metrics["val"]
    assert val["count"] == cfg.val_length
    for key in ("vertex_error_mm", "mean_face_vertex_error_mm", "landmark_nme",
                "landmark_error_px", "angle_error_deg"):
        assert math.isfinite(val[key]) and val[key] >= 0
    assert 0 < val["mean_face_vertex_error_mm"] < 50


def test_tensorboard_has_loss_scalars_and_images(straight_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(straight_run.out_dir / "tb"))
    acc.Reload()
    tags = acc.Tags()
    for t in ("loss/total", "loss/vertex", "loss/landmark", "loss/photometric",
              "loss/supervised_coeffs", "lr", "val/vertex_error_mm", "val/landmark_nme"):
        assert t in tags["scalars"], t
    assert len(acc.Scalars("loss/total")) == straight_run.step
    assert "snapshot" in tags["images"]


def test_checkpoint_reloads_and_predicts(straight_run):
    reg = load_regressor(straight_run.checkpoint)
    assert reg.extra_meta["step"] == straight_run.step
    assert reg.extra_meta["face_model"] == "facecraft-starter"
    assert reg.input_spec.crop_size == 64
    with torch.inference_mode():
        c = reg(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert isinstance(c, Coeffs3DMM) and c.batch_size == 2
    assert all(torch.isfinite(t).all() for t in (c.identity, c.angles, c.translation))


def test_resume_continues_bit_exactly(straight_run, tmp_path):
    cfg = _tiny(tmp_path)
    first = train_regressor(cfg, resume=False, progress=False, stop_after=20)
    assert (first.start_step, first.step) == (0, 20)
    assert not first.metrics["finished"]
    assert _state(first.checkpoint)["head.weight"].abs().sum() > 0
    second = train_regressor(cfg, progress=False)
    assert (second.start_step, second.step) == (20, 30)
    assert [h["step"] for h in second.history] == list(range(1, 31))
    a, b = _state(straight_run.checkpoint), _state(second.checkpoint)
    assert a.keys() == b.keys()
    for k in a:  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(a[k], b[k]), k
    assert [h["total"] for h in second.history] == [h["total"] for h in straight_run.history]
    # a finished run resumes to itself without training
    again = train_regressor(cfg, progress=False)
    assert (again.start_step, again.step) == (30, 30)


def test_resume_refuses_another_runs_checkpoint(straight_run, tmp_path):
    shutil.copytree(straight_run.out_dir / "checkpoints", tmp_path / "checkpoints")
    other = _tiny(tmp_path, lr=5e-4)
    with pytest.raises(InvalidInputError, match=r"other \['lr'\].*--no-resume"):
        train_regressor(other, progress=False)
    # steps may change: extending a finished run trains the extra steps only
    more = train_regressor(_tiny(tmp_path, steps=32, val_length=0), progress=False)
    assert (more.start_step, more.step) == (30, 32)


# ------------------------------------------------------------------------------------ CLI
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_trains_the_tiny_config(tmp_path):
    p = _cli("train", "regressor", "--config", str(TINY), "--out", "tmp", "--steps", "6",
             "--json", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["step"] == 6 and summary["start_step"] == 0
    assert (tmp_path / "tmp" / "checkpoints" / "last.safetensors").is_file()
    assert (tmp_path / "tmp" / "metrics.json").is_file()


@pytest.mark.parametrize("content, match", [
    ('{"lr": -1}', "expected lr a finite number > 0"),
    ('{"backbone": "vgg"}', "unknown backbone 'vgg'"),
    ('{"learning_rate": 0.1}', "unknown training config keys"),
    ("{not json", "not valid JSON"),
])
def test_cli_bad_config_is_one_line_exit_1(tmp_path, content, match):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    p = _cli("train", "regressor", "--config", str(bad), "--out", "o", cwd=tmp_path)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facecraft: error: ") and match in lines[0]
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------- config
def test_config_json_round_trip_and_defaults(tmp_path):
    for path in (TINY, FULL):
        cfg = RegressorTrainConfig.from_json(path)
        cfg.save_json(tmp_path / "c.json")
        assert RegressorTrainConfig.from_json(tmp_path / "c.json") == cfg
    full = RegressorTrainConfig.from_json(FULL)
    assert full.model == "starter" and full.image_size in (128, 224)
    cfg = RegressorTrainConfig.from_dict({"loss_weights": {"vertex": 5.0}})
    assert cfg.loss_weights == dataclasses.replace(DEFAULT_TRAIN_LOSS_WEIGHTS, vertex=5.0)
    assert cfg.synthetic_settings().image_size == cfg.image_size


@pytest.mark.parametrize("changes, match", [
    ({"loss_weights": {"identity": 0.2}}, r"\['identity'\] are not computed"),
    ({"loss_weights": {"vertx": 1.0}}, "unknown loss_weights"),
    ({"synthetic": {"yaw_max_deg": 120}}, "yaw_max_deg"),
    ({"synthetic": {"colour": 1}}, "unknown synthetic settings"),
    ({"synthetic": {"image_size": 96}}, "config's image_size"),
    ({"val_seed": 0}, "val_seed"),
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"device": "tpu"}, "device"),
    ({"batch_size": 0}, "batch_size"),
    ({"steps": 2.5}, "steps"),
])
def test_config_validation(changes, match):
    with pytest.raises(InvalidInputError, match=match):
        RegressorTrainConfig.from_dict(changes)


def test_all_zero_weights_are_refused():
    zero = {n: 0.0 for n in LossWeights.names()}
    with pytest.raises(InvalidInputError, match="nothing to train"):
        RegressorTrainConfig.from_dict({"loss_weights": zero})


def test_lr_schedules():
    cos = RegressorTrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    assert cos.lr_at(0) == pytest.approx(0.1) and cos.lr_at(9) == pytest.approx(1.0)
    assert cos.lr_at(10) == pytest.approx(1.0) and cos.lr_at(55) == pytest.approx(0.5)
    assert cos.lr_at(100) == pytest.approx(0.0, abs=1e-12)
    step = RegressorTrainConfig(lr=1.0, lr_schedule="step", lr_step_every=10, lr_step_gamma=0.5)
    assert [step.lr_at(s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert RegressorTrainConfig(lr=0.3, lr_schedule="constant").lr_at(1000) == 0.3


def test_procrustes_removes_a_rigid_motion():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 50, 3, generator=g)
    rot = euler_to_matrix(torch.tensor([[0.3, -0.8, 0.2], [1.0, 0.1, -0.5]]))
    source = target @ rot.transpose(1, 2) + torch.tensor([[0.1, 2.0, -1.0]])
    torch.testing.assert_close(procrustes_align(source, target), target, atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="expected source and target"):
        procrustes_align(source, target[:, :10])


def test_cuda_device_without_cuda_is_an_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        train_regressor(_tiny(tmp_path, device="cuda"), progress=False)


# ------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                        "facecraft.sdk.cli", "train", "regressor", "--config", str(TINY),
                        "--out", "ddp", "--steps", "6", "--json", "-q"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    summaries = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["step"] == 6  # only rank 0 reports
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert load_regressor(tmp_path / "ddp" / "checkpoints" / "last.safetensors")


# ----------------------------------------------------------------------------- photo data
_PHOTO_LOG = ("photo_photometric", "photo_landmark", "photo_identity", "photo_regularization",
              "photo_lighting_reg")


def _recognizer_spec() -> str:
    """``"dlib"`` when dlib's face-recognition model is installed, else ``"none"``."""
    try:
        load_training_recognizer("dlib", crop_size=64)
    except FaceCraftError:
        return "none"
    return "dlib"


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """4 real faces prepared at 224 px (the trainer resizes them to the tiny config's 64)."""
    photos = [assets_or_skip("photos", "celeba-5pt", "000002.jpg"),
              assets_or_skip("photos", "multi-view-one-person")]
    out = tmp_path_factory.mktemp("photos")
    assert prepare_photos(photos, out, progress=False).faces == 4
    return out


def _photo_only(out: Path, photo_folder: Path, **changes) -> RegressorTrainConfig:
    rec = _recognizer_spec()
    d = {**_tiny(out).to_json(), "photo_data": str(photo_folder), "photo_batch_size": 4,
         "loss_weights": {n: 0.0 for n in LossWeights.names()}, "lr_schedule": "constant",
         "val_length": 0, "snapshot_every": 0, "checkpoint_every": 0, "photo_recognizer": rec,
         "photo_identity": 0.2 if rec != "none" else 0.0, **changes}
    return RegressorTrainConfig.from_dict(d)


def test_photo_terms_give_finite_gradients(photo_folder, tmp_path):
    cfg = _photo_only(tmp_path, photo_folder)
    model = resolve_model(cfg.model)
    reg = build_regressor(cfg, model, SyntheticFaces(model, cfg.synthetic_settings(), length=1,
                                                     seed=0))
    with torch.no_grad():  # move off the zero-initialised head, where the priors are flat
        reg.head.weight.normal_(0.0, 1e-3, generator=torch.Generator().manual_seed(0))
    terms = RegressorTerms(model, cfg.image_size, torch.device("cpu"))
    rec = (load_training_recognizer("dlib", crop_size=cfg.image_size)
           if cfg.photo_recognizer == "dlib" else None)
    batch = PhotoFaces(photo_folder, image_size=cfg.image_size).batch([0, 3])
    out = PhotoTerms(terms, rec)(reg(batch["image"]), batch, cfg.photo_loss_weights())
    expected = {"photometric", "landmark", "coefficient_reg", "lighting_reg"}
    assert set(out) == expected | ({"identity"} if rec is not None else set())
    params = [p for p in reg.parameters() if p.requires_grad]
    for name, value in out.items():
        v = float(value.detach())
        assert value.ndim == 0 and math.isfinite(v) and v > 0, name
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        grads = [g for g in grads if g is not None]
        assert grads and all(bool(torch.isfinite(g).all()) for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_training_on_photos_lowers_the_photo_loss(photo_folder, tmp_path):
    # the identity term runs in the loop in the next test (it costs a ResNet per photo)
    cfg = _photo_only(tmp_path, photo_folder, steps=10, photo_identity=0.0)
    r = train_regressor(cfg, resume=False, progress=False)
    logged = set(_PHOTO_LOG) - {"photo_identity"}
    for h in r.history:
        assert set(h) == {"step", "lr", "total"} | logged
        assert all(math.isfinite(v) for v in h.values())
        parts = sum(v for k, v in h.items() if k not in ("step", "lr", "total"))
        assert parts == pytest.approx(h["total"], rel=1e-4)
    totals = [h["total"] for h in r.history]
    assert np.mean(totals[-3:]) < np.mean(totals[:3]), totals

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(r.out_dir / "tb"))
    acc.Reload()
    for name in logged:
        assert f"loss/{name}" in acc.Tags()["scalars"], name
    assert "snapshot_photos" in acc.Tags()["images"]
    grid = cv2.imread(str(r.out_dir / "snapshots" / "photos_step_000010.png"))
    assert grid.shape == (cfg.snapshot_count * 64, 2 * 64, 3)
    assert load_regressor(r.checkpoint).extra_meta["trainer"].endswith("+photo_weak")


def test_photo_batches_mix_into_synthetic_steps(photo_folder, tmp_path):
    rec = _recognizer_spec()
    cfg = _tiny(tmp_path, photo_data=str(photo_folder), photo_every=2, photo_batch_size=2,
                batch_size=2, steps=4, photo_recognizer=rec,
                photo_identity=0.2 if rec != "none" else 0.0, val_length=0, snapshot_every=0,
                checkpoint_every=0)
    r = train_regressor(cfg, resume=False, progress=False)
    synthetic = {"supervised_coeffs", "vertex", "landmark", "photometric"}
    photo = {n for n in _PHOTO_LOG if n != "photo_identity" or cfg.photo_identity}
    for h in r.history:  # photo batches join steps 0 and 2 (logged as steps 1 and 3)
        want = synthetic | (photo if h["step"] % 2 == 1 else set())
        assert set(h) - {"step", "lr", "total"} == want, h["step"]
        parts = sum(v for k, v in h.items() if k not in ("step", "lr", "total"))
        assert parts == pytest.approx(h["total"], rel=1e-4)


def test_photo_steps_depend_only_on_the_step(photo_folder):
    faces = PhotoFaces(photo_folder, image_size=32)
    a, b = PhotoSteps(faces, 2, 0, 1, seed=3), PhotoSteps(faces, 2, 0, 1, seed=3)
    assert [a.indices(p) for p in range(6)] == [b.indices(p) for p in reversed(range(6))][::-1]
    for epoch in range(3):  # every epoch visits every face once
        assert sorted(a.indices(2 * epoch) + a.indices(2 * epoch + 1)) == [0, 1, 2, 3]
    ranks = [PhotoSteps(faces, 4, r, 2, seed=3).indices(1) for r in range(2)]
    assert ranks[0] + ranks[1] == PhotoSteps(faces, 4, 0, 1, seed=3).indices(1)
    assert torch.equal(a(5)["image"], faces.batch(a.indices(5))["image"])


@pytest.mark.parametrize("changes, match", [
    ({"photo_data": "x", "photo_photometric": 0, "photo_landmark": 0, "photo_identity": 0,
      "photo_regularization": 0, "photo_lighting_reg": 0}, "every photo_\\* loss weight is 0"),
    ({"photo_data": "x", "photo_recognizer": "none"}, "photo_identity needs a face recognizer"),
    ({"photo_data": "x", "photo_every": 2, "loss_weights": {n: 0.0 for n in
                                                            LossWeights.names()}},
     "photo_every must be 1"),
    ({"photo_landmark": -1.0}, "photo_landmark"),
    ({"photo_batch_size": 0}, "photo_batch_size"),
    ({"photo_data": ""}, "photo_data"),
])
def test_photo_config_validation(changes, match):
    with pytest.raises(InvalidInputError, match=match):
        RegressorTrainConfig.from_dict(changes)


def test_photo_config_round_trip_and_old_checkpoints(tmp_path):
    cfg = RegressorTrainConfig.from_dict({"photo_data": "prepared", "photo_every": 3,
                                          "photo_recognizer": "none", "photo_identity": 0.0})
    cfg.save_json(tmp_path / "c.json")
    assert RegressorTrainConfig.from_json(tmp_path / "c.json") == cfg
    w = cfg.photo_loss_weights()
    assert (w.photometric, w.identity, w.coefficient_reg, w.vertex) == (1.92, 0.0, 3e-4, 0.0)
    # a run saved before the photo fields existed resumes under the defaults
    old = {k: v for k, v in RegressorTrainConfig().to_json().items()
           if not k.startswith("photo_")}
    assert RegressorTrainConfig().resume_mismatch(old) == []
    assert cfg.resume_mismatch(old) == ["photo_data", "photo_every", "photo_identity",
                                        "photo_recognizer"]


def test_other_recognizers_need_the_recognizers_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "facecraft.training.recognizers", None)
    with pytest.raises(InvalidInputError, match="facecraft.training.recognizers.*'dlib'"):
        load_training_recognizer("arcface", crop_size=64)
