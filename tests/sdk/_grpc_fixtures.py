"""Fixtures for the gRPC server and client tests (imported by test_server.py / test_client.py).

A real :class:`~facecraft.sdk.pipeline.pipeline.FaceCraft` over a small random-weights package (the
export tests' ``random.fcpkg`` in the session's temp folder, built once), real photos from
../shared/assets downscaled to 160 px (cheap to reconstruct), and servers on loopback port 0.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.pipeline.pipeline import FaceCraft, PipelineSettings
from facecraft.sdk.serving.server import ServerSettings, create_server

from ..conftest import assets_or_skip

#: Photos with one clear face each (CelebA), and their 160 px copies' names.
FACE_PHOTOS = ("000002", "000006", "000007", "000031", "000033", "000037", "000050", "000055",
               "000114", "000125", "000126", "015259", "015270", "015309", "015310", "015384")
SMALL_SIDE = 160
#: Cheap pipeline settings: no baked texture unless asked, small sampling and depth buffers.
FAST = PipelineSettings(texture_size=0, sample_size=128, visibility_size=64)


def random_package_path(tmp_path_factory) -> Path:
    """The export tests' random-weights package (same path: built once per session)."""
    from facecraft.export.build_default import build_random_package

    out = tmp_path_factory.getbasetemp() / "random.fcpkg"
    if not (out / "manifest.json").is_file():
        photos = assets_or_skip("photos", "celeba-5pt")
        build_random_package(out, parity_photos=[photos])
    return out


def small_jpeg(path: Path, side: int = SMALL_SIDE, quality: int = 90) -> bytes:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    s = side / max(img.shape[:2])
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Pipelines run in server threads: one intra-op thread each (as ``facecraft serve`` sets),
    restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def package_path(tmp_path_factory) -> Path:
    return random_package_path(tmp_path_factory)


@pytest.fixture(scope="module")
def pipelines(package_path, one_torch_thread) -> list[FaceCraft]:
    """Two pipelines (two workers) over the random package."""
    from facecraft.sdk.pipeline.package import load_package

    pkg = load_package(package_path)
    return [FaceCraft(pkg, threads=1, settings=FAST) for _ in range(2)]


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """name -> 160 px JPEG bytes of a one-face photo."""
    folder = assets_or_skip("photos", "celeba-5pt")
    return {n: small_jpeg(folder / f"{n}.jpg") for n in FACE_PHOTOS}


@pytest.fixture(scope="module")
def no_face_photo() -> bytes:
    return small_jpeg(assets_or_skip("photos", "no-face", "grass.jpg"), 200)


@pytest.fixture(scope="module")
def group_photo() -> bytes:
    """A photo with two faces."""
    return small_jpeg(assets_or_skip("photos", "misc", "trump_hillary.jpg"), 240)


@contextlib.contextmanager
def running_server(pipelines, **settings):
    """A started server on 127.0.0.1, port 0; yields ``(server, "127.0.0.1:port")``."""
    st = ServerSettings(**{"port": 0, "grace_s": 2.0,
                           "max_pixels": pipelines[0].settings.max_pixels, **settings})
    server, port = create_server(st, pipelines=pipelines)
    with server:
        yield server, f"127.0.0.1:{port}"


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, C) uint8/uint16 RGB(A) or (H, W) gray -> PNG bytes."""
    img = rgb
    if rgb.ndim == 3:
        img = rgb[..., [2, 1, 0, 3]] if rgb.shape[2] == 4 else rgb[..., ::-1]
    return cv2.imencode(".png", np.ascontiguousarray(img))[1].tobytes()


def decode_rgb(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()


__all__ = ["FACE_PHOTOS", "FAST", "random_package_path", "small_jpeg", "one_torch_thread",
           "package_path", "pipelines", "photos", "no_face_photo", "group_photo",
           "running_server", "png_bytes", "decode_rgb"]
