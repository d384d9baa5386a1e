"""The random-weights model package the export tests share (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facecraft.export.build_default import build_random_package, write_random_regressor

from ..conftest import ASSETS

PHOTOS = ASSETS / "photos" / "celeba-5pt"


def random_package(tmp_path_factory) -> tuple[Path, Path]:
    """``(package, checkpoint)``: an untrained starter regressor (MobileNetV2 x0.5, 128 px) and
    its package, verified on real photos when ../shared/assets is present. Cached in the
    session's base temp folder, so every test module reuses one build."""
    base = tmp_path_factory.getbasetemp()
    out, ckpt = base / "random.fcpkg", base / "random_regressor.safetensors"
    if not ckpt.is_file():
        write_random_regressor(ckpt)
    if not (out / "manifest.json").is_file():
        build_random_package(out, parity_photos=[PHOTOS] if PHOTOS.is_dir() else None)
    return out, ckpt


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> tuple[Path, Path]:
    return random_package(tmp_path_factory)
