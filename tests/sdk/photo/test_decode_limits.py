"""decode_image's cost limits, its error text, and binary PGM/PPM.

Hostile files are crafted here with struct/zlib: an RLE8 BMP whose 2-byte pixel stream paints a
6300x6300 image, and a ~116 KB PNG that inflates to 6300x6300 RGB (both under the 40 MP pixel
limit, both ~600 MB to decode). PGM/PPM files are written to disk by OpenCV and by hand.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import PhotoTooLargeError
from facecraft.sdk.photo.image_io import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    read_image,
)

from .test_image_io import _enc, _png_chunk, _synthetic


def _rle8_bmp(w: int, h: int) -> bytes:
    """A palette BMP, RLE8-compressed; its pixel data is one end-of-bitmap escape (2 bytes)."""
    pixels = b"\x00\x01"
    offset = 14 + 40 + 256 * 4
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return (b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info
            + bytes(256 * 4) + pixels)


def _png_bomb(w: int, h: int) -> bytes:
    """An 8-bit RGB PNG of zeros at deflate's best ratio (~1030:1)."""
    co = zlib.compressobj(9)
    row = bytes(1 + 3 * w)
    body = b"".join(co.compress(row) for _ in range(h)) + co.flush()
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def _refused_cheaply(data: bytes, **kw) -> PhotoTooLargeError:
    """Decode ``data`` expecting PhotoTooLargeError within 0.5 s and 20 MB of Python-visible
    allocations (NumPy and OpenCV's NumPy-backed buffers are traced)."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(PhotoTooLargeError) as ei:
            decode_image(data, source="upload-7", **kw)
        elapsed = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5, f"refusal took {elapsed:.2f} s"
    assert peak < 20 * 2 ** 20, f"refusal allocated {peak / 2 ** 20:.0f} MB"
    assert isinstance(ei.value, ImageDecodeError)  # callers that skip bad photos skip it too
    assert "upload-7" in str(ei.value)
    return ei.value


# --------------------------------------------------------------------------- defect 9: cost
def test_rle8_bmp_declaring_6300x6300_is_refused_from_its_header():
    bomb = _rle8_bmp(6300, 6300)
    assert len(bomb) < 1200 and 6300 * 6300 < 40_000_000  # under the pixel limit
    e = _refused_cheaply(bomb)
    assert "6300x6300 BMP" in str(e) and "memory_budget" in str(e)


def test_small_png_inflating_to_6300x6300_is_refused_from_its_header():
    bomb = _png_bomb(6300, 6300)
    assert len(bomb) < 130_000
    e = _refused_cheaply(bomb)
    assert "6300x6300 PNG" in str(e)


def test_pixel_and_byte_limits_are_typed(tmp_path):
    png = _enc(".png", _synthetic())
    e = _refused_cheaply(png, max_pixels=100)
    assert type(e) is ImageTooLargeError and "max_pixels=100" in str(e)
    e = _refused_cheaply(png, max_bytes=len(png) - 1)
    assert "max_bytes" in str(e)
    assert decode_image(png, max_bytes=len(png)).size == (48, 64)
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    with pytest.raises(PhotoTooLargeError, match="max_bytes"):
        read_image(path, max_bytes=100)  # refused from the file size, before reading it


def test_budget_refuses_other_formats_and_reads_a_jpeg_smaller():
    rgb = cv2.resize(_synthetic(), (640, 480))
    png, jpeg = _enc(".png", rgb), _enc(".jpg", rgb, (cv2.IMWRITE_JPEG_QUALITY, 95))
    full = decode_image(jpeg)
    assert (full.size, full.scale) == ((480, 640), 1.0)
    budget = 18 * 2 ** 20  # fits a 320x240 read (~17 MiB with the block), not 640x480
    _refused_cheaply(png, memory_budget=budget)
    half = decode_image(jpeg, memory_budget=budget)
    assert (half.size, half.scale) == ((240, 320), 0.5)
    ref = cv2.resize(full.rgb, (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(half.rgb - ref).mean() < 0.02
    _refused_cheaply(jpeg, memory_budget=2 ** 20)  # not even 1/8 fits


def test_max_side_reads_a_large_jpeg_reduced_in_bounded_memory():
    rgb = cv2.resize(_synthetic(), (1600, 1200))
    jpeg = _enc(".jpg", rgb, (cv2.IMWRITE_JPEG_QUALITY, 95))
    peaks = {}
    for side in (None, 300):
        tracemalloc.start()
        dec = decode_image(jpeg, max_side=side)
        peaks[side] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert dec.size == (225, 300) and dec.scale == pytest.approx(300 / 1600)
    assert peaks[300] < peaks[None] / 4, peaks  # read at 1/4 (400x300), then 300x225
    ref = cv2.resize(rgb, (300, 225), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    assert np.abs(dec.rgb - ref).mean() < 0.02


def test_max_side_downscales_other_formats_with_alpha_and_orientation():
    rgba = np.dstack([cv2.resize(_synthetic(), (200, 100)), np.full((100, 200), 128, np.uint8)])
    dec = decode_image(_enc(".png", rgba), max_side=50)
    assert dec.size == (25, 50) and dec.alpha is not None and dec.alpha.shape == (25, 50)
    np.testing.assert_allclose(dec.alpha, 128 / 255, atol=1e-6)
    assert decode_image(_enc(".png", rgba), max_side=400).size == (100, 200)  # never enlarged
    with pytest.raises(ValueError, match="max_side"):
        decode_image(_enc(".png", rgba), max_side=8)


# --------------------------------------------------------------------------- defect 10: text
def _message(data: bytes, **kw) -> str:
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data, source="p.img", **kw)
    return str(ei.value)


def _damaged_copies(data: bytes) -> list[bytes]:
    scrambled = bytearray(data)
    scrambled[len(data) // 3:-8:7] = bytes(b ^ 0x5A for b in scrambled[len(data) // 3:-8:7])
    return [data[:len(data) // 2], data[:len(data) - 3], bytes(scrambled)]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tiff", ".ppm", ".pgm"])
def test_broken_files_never_expose_decoder_internals(ext):
    rgb = (np.random.default_rng(3).random((64, 80, 3)) * 255).astype(np.uint8)
    data = _enc(ext, rgb[..., 0] if ext == ".pgm" else rgb)
    for bad in _damaged_copies(data):
        try:
            decode_image(bad)
        except ImageDecodeError as e:
            assert "OpenCV" not in str(e) and ".cpp" not in str(e), str(e)


def test_decoder_failures_say_what_is_wrong_with_the_file():
    # a header OpenCV's own size check refuses (when the caller lifts FaceCraft's limits)
    huge = _png_bomb(16, 16).replace(struct.pack(">II", 16, 16), struct.pack(">II", 40000, 40000))
    ihdr = huge[12:29]
    huge = huge[:8] + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + huge[33:]
    msg = _message(huge, max_pixels=10 ** 10, memory_budget=10 ** 13)
    assert "OpenCV" not in msg and ".cpp" not in msg, msg
    assert "not a photo FaceCraft can read" in msg and "corrupt PNG data" in msg
    # a PNG whose pixel data is scrambled (libpng stops on a bad filter byte)
    png = bytearray(_enc(".png", _synthetic()))
    idat = png.index(b"IDAT") + 4
    png[idat + 2:idat + 40] = bytes(range(38))
    msg = _message(bytes(png))
    assert "not a photo FaceCraft can read: corrupt PNG data" in msg and "OpenCV" not in msg


# --------------------------------------------------------------------------- defect 14: PNM
def test_binary_ppm_and_pgm_files_decode_exactly(tmp_path):
    rgb = _synthetic()
    for name, img, want in (("a.ppm", rgb[..., ::-1], rgb), ("a.pgm", rgb[..., 1], rgb[..., 1])):
        path = tmp_path / name
        assert cv2.imwrite(str(path), np.ascontiguousarray(img))
        assert path.read_bytes()[:2] == (b"P6" if name.endswith("ppm") else b"P5")
        dec = read_image(path)
        assert (dec.format, dec.bit_depth, dec.size) == (name[-3:], 8, (48, 64))
        ref = (want if want.ndim == 3 else np.repeat(want[..., None], 3, 2)) / np.float32(255)
        np.testing.assert_array_equal(dec.rgb, ref.astype(np.float32))


def test_16bit_and_odd_maxval_pnm_with_comments(tmp_path):
    rgb16 = (_synthetic().astype(np.uint16) * 257) ^ 0x00FF  # uses the low byte too
    path = tmp_path / "deep.ppm"
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb16[..., ::-1]))
    dec = read_image(path)
    assert (dec.format, dec.bit_depth) == ("ppm", 16)
    np.testing.assert_allclose(dec.rgb, rgb16 / 65535.0, atol=1e-6)
    # by hand: comments in the header, 10-bit samples (maxval 1023) stored big-endian
    gray = (np.arange(48 * 64).reshape(48, 64) % 1024).astype(">u2")
    data = b"P5\n# scanner v2\n64 48\n# ten bits\n1023\n" + gray.tobytes()
    (tmp_path / "ten.pgm").write_bytes(data)
    dec = read_image(tmp_path / "ten.pgm")
    np.testing.assert_allclose(dec.rgb[..., 0], gray / 1023.0, atol=1e-6)
    assert (dec.rgb[..., 0] == dec.rgb[..., 2]).all()


def test_pnm_refusals():
    with pytest.raises(ImageDecodeError, match="truncated PPM"):
        decode_image(b"P6 64 48 255\n" + bytes(64 * 48 * 3 - 1))
    # the header is checked against the pixel limit before anything else
    e = _refused_cheaply(b"P6\n60000 60000\n65535\n" + bytes(100))
    assert "60000x60000" in str(e)
    pgm = b"P5 2000 2000 65535\n" + bytes(2000 * 2000 * 2)  # ~72 MB to decode
    e = _refused_cheaply(pgm, memory_budget=32 * 2 ** 20)
    assert "memory_budget" in str(e)
    with pytest.raises(ImageDecodeError, match="maxval"):
        decode_image(b"P5 64 48 0\n" + bytes(64 * 48))
    with pytest.raises(ImageDecodeError, match="corrupt or truncated PGM"):
        decode_image(b"P5 64\n")
    with pytest.raises(ImageDecodeError, match="Plain-text"):
        decode_image(b"P3\n2 2\n255\n0 0 0 1 1 1 2 2 2 3 3 3\n")
