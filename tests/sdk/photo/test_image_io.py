"""decode_image / read_image: every odd format a player uploads, and every broken one.

The odd-format copies are written here, in memory, from a real CelebA photo (skipped when
../shared/assets is absent) and from a synthetic image: cv2 writes PNG, WebP, BMP, TIFF and JPEG;
CMYK/YCCK JPEGs are assembled from four cv2-encoded grayscale JPEGs (one scan per component);
EXIF APP1 segments, PNG chunks and WebP/BMP headers are packed with struct.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.photo.image_io import DecodedImage, ImageDecodeError, decode_image, read_image

ASSETS = Path(__file__).resolve().parents[3].parent / "shared" / "assets"
PHOTO = ASSETS / "photos" / "celeba-5pt" / "000002.jpg"


# --------------------------------------------------------------------------- fixtures / writers
def _synthetic(h: int = 48, w: int = 64) -> np.ndarray:
    """(H, W, 3) uint8 RGB, asymmetric (catches flips, transposes and BGR/RGB swaps), smooth
    enough for JPEG to keep it close."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1),
                     (128 + 100 * np.sin(x / 9.0 + y / 13.0)).astype(int)], -1).astype(np.uint8)


def _photo() -> np.ndarray:
    if not PHOTO.exists():
        pytest.skip("../shared/assets not present (a user's own clone has no shared assets; "
                    "CI always has them)")
    return cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)[..., ::-1].copy()


@pytest.fixture(params=["synthetic", "photo"])
def rgb8(request) -> np.ndarray:
    return _synthetic() if request.param == "synthetic" else _photo()


def _enc(ext: str, rgb: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    img = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        img = rgb[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), list(params))
    assert ok
    return buf.tobytes()


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + ctype + payload
            + struct.pack(">I", zlib.crc32(ctype + payload)))


def _png(arr: np.ndarray, color_type: int, depth: int = 8, extra: bytes = b"") -> bytes:
    """A PNG written by hand (cv2 cannot write gray+alpha), filter 0 on every row."""
    h, w = arr.shape[:2]
    raw = arr.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    raw = np.hstack([np.zeros((h, 1), np.uint8), raw]).tobytes()
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
            + extra + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def _exif(orientation: int, order: str = "<") -> bytes:
    """A minimal EXIF block (``Exif\\0\\0`` + TIFF header + IFD0 with one Orientation SHORT)."""
    bo = b"II" if order == "<" else b"MM"
    ifd = struct.pack(order + "H", 1) + struct.pack(order + "HHIH2x", 274, 3, 1, orientation)
    return b"Exif\0\0" + bo + struct.pack(order + "HI", 42, 8) + ifd + struct.pack(order + "I", 0)


def _with_app1(jpeg: bytes, exif: bytes) -> bytes:
    """Insert an APP1 segment after the JFIF APP0 (as cameras that also write JFIF do)."""
    assert jpeg[:4] == b"\xff\xd8\xff\xe0"
    app0_end = 4 + struct.unpack_from(">H", jpeg, 4)[0]
    return jpeg[:app0_end] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[app0_end:]


# Stored pixels for orientation k = _STORE[k](upright pixels); the decoder must undo it.
_STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, 1),   # camera rotated; reader must turn it 90 deg clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),  # reader must turn it 90 deg counter-clockwise
}


def _split_gray_jpeg(jpeg: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(DQT payload, DHT payloads, entropy-coded scan) of a baseline 1-component JPEG."""
    pos, dqt, dhts = 2, b"", []
    while True:
        marker = jpeg[pos + 1]
        (n,) = struct.unpack_from(">H", jpeg, pos + 2)
        payload = jpeg[pos + 4:pos + 2 + n]
        if marker == 0xDB:
            dqt = payload
        elif marker == 0xC4:
            dhts.append(payload)
        elif marker == 0xDA:
            assert jpeg.endswith(b"\xff\xd9")
            return dqt, dhts, jpeg[pos + 2 + n:-2]
        pos += 2 + n


def _seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _four_component_jpeg(planes: np.ndarray, transform: int) -> bytes:
    """A 4-component baseline JPEG (Adobe APP14 transform 0 = CMYK, 2 = YCCK) built from four
    cv2-encoded grayscale JPEGs: one non-interleaved scan per component, its own tables."""
    h, w = planes.shape[1:]
    out = [b"\xff\xd8", _seg(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform))]
    scans = []
    for i, plane in enumerate(planes):
        dqt, dhts, scan = _split_gray_jpeg(_enc(".jpg", plane, (cv2.IMWRITE_JPEG_QUALITY, 95)))
        assert len(dqt) == 65 and dqt[0] == 0  # one 8-bit table, id 0
        out.append(_seg(0xDB, bytes([i]) + dqt[1:]))
        scans += [_seg(0xC4, d) for d in dhts]
        scans += [_seg(0xDA, struct.pack(">BBBBBB", 1, i + 1, 0x00, 0, 63, 0)), scan]
    sof = struct.pack(">BHHB", 8, h, w, 4) + b"".join(bytes([i + 1, 0x11, i]) for i in range(4))
    return b"".join(out + [_seg(0xC0, sof)] + scans + [b"\xff\xd9"])


def _adobe_cmyk(rgb: np.ndarray) -> np.ndarray:
    """(4, H, W) uint8 inverted (Adobe) CMYK with black: k = max(rgb), c = 255 r / k, ..."""
    k = rgb.max(axis=2).astype(np.float64)
    cmy = np.where(k[..., None] > 0, rgb * 255.0 / np.maximum(k, 1)[..., None], 0)
    return np.rint(np.concatenate([cmy, k[..., None]], axis=2)).clip(0, 255).astype(
        np.uint8).transpose(2, 0, 1)


def _mad(dec: DecodedImage, rgb8: np.ndarray) -> float:
    return float(np.abs(dec.rgb - rgb8.astype(np.float32) / 255).mean())


# --------------------------------------------------------------------------- formats
@pytest.mark.parametrize("ext,params,fmt", [
    (".png", (), "png"),
    (".bmp", (), "bmp"),
    (".tiff", (), "tiff"),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "webp"),  # lossless
])
def test_lossless_formats_are_exact(rgb8, ext, params, fmt):
    dec = decode_image(_enc(ext, rgb8, params), source="upload.bin")
    assert (dec.format, dec.orientation, dec.bit_depth, dec.alpha) == (fmt, 1, 8, None)
    assert dec.rgb.dtype == np.float32 and dec.rgb.flags.c_contiguous
    assert dec.size == rgb8.shape[:2]
    np.testing.assert_array_equal(dec.to_uint8(), rgb8)


@pytest.mark.parametrize("ext,params,fmt", [
    (".jpg", (cv2.IMWRITE_JPEG_QUALITY, 92), "jpeg"),
    (".jpg", (cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "jpeg"),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90), "webp"),  # lossy VP8
])
def test_lossy_formats_are_close(rgb8, ext, params, fmt):
    data = _enc(ext, rgb8, params)
    dec = decode_image(data)
    assert dec.format == fmt and dec.source == "<bytes>"
    assert _mad(dec, rgb8) < 0.02
    assert 0.0 <= dec.rgb.min() and dec.rgb.max() <= 1.0


def test_grayscale_jpeg_becomes_rgb(rgb8):
    gray = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)
    dec = decode_image(_enc(".jpg", gray, (cv2.IMWRITE_JPEG_QUALITY, 95)))
    assert dec.rgb.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(dec.rgb[..., 0], dec.rgb[..., 2])
    assert float(np.abs(dec.rgb[..., 1] - gray / 255).mean()) < 0.02
    # and it is still the same picture as the colour original (in luma)
    luma = rgb8 @ np.array([0.299, 0.587, 0.114]) / 255
    assert float(np.abs(dec.rgb[..., 1] - luma).mean()) < 0.02


@pytest.mark.parametrize("transform", [0, 2], ids=["cmyk", "ycck"])
def test_cmyk_and_ycck_jpeg_become_rgb(rgb8, transform):
    cmyk = _adobe_cmyk(rgb8)
    if transform == 2:  # YCCK: YCbCr of (255 - C, 255 - M, 255 - Y), K as is
        ycc = cv2.cvtColor(np.ascontiguousarray(255 - cmyk[2::-1].transpose(1, 2, 0)),
                           cv2.COLOR_BGR2YCrCb)  # input BGR-ordered (y, m, c) -> (Y, Cr, Cb)
        planes = np.stack([ycc[..., 0], ycc[..., 2], ycc[..., 1], cmyk[3]])
    else:
        planes = cmyk
    data = _four_component_jpeg(planes, transform)
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.shape == (*rgb8.shape[:2], 3)  # valid JPEG for libjpeg
    dec = decode_image(data)
    assert dec.format == "jpeg" and dec.bit_depth == 8
    assert _mad(dec, rgb8) < 0.03


def test_16bit_png_keeps_precision(rgb8):
    rng = np.random.default_rng(0)
    rgb16 = rgb8.astype(np.uint16) * 256 + rng.integers(0, 256, rgb8.shape, dtype=np.uint16)
    dec = decode_image(_enc(".png", rgb16))
    assert (dec.format, dec.bit_depth) == ("png", 16)
    np.testing.assert_array_equal(np.rint(dec.rgb * 65535).astype(np.uint16), rgb16)
    assert np.unique(dec.rgb[..., 0]).size > 256  # more than 8 bits survived
    assert _mad(dec, rgb8) < 0.005


def test_16bit_grayscale_png():
    g16 = (np.linspace(0, 65535, 40 * 50).reshape(40, 50)).astype(np.uint16)
    dec = decode_image(_png(g16, color_type=0, depth=16))
    assert dec.bit_depth == 16 and dec.alpha is None
    np.testing.assert_allclose(dec.rgb, np.repeat(g16[..., None] / 65535, 3, 2), atol=1e-6)


def test_rgba_png_is_composited_over_white_and_alpha_kept(rgb8):
    h, w = rgb8.shape[:2]
    a8 = np.broadcast_to((np.arange(w) * 255 // (w - 1)).astype(np.uint8), (h, w))
    dec = decode_image(_enc(".png", np.dstack([rgb8, a8])))
    a = a8.astype(np.float32) / 255
    np.testing.assert_array_equal(dec.alpha, a)
    want = rgb8 / 255 * a[..., None] + (1 - a[..., None])
    np.testing.assert_allclose(dec.rgb, want, atol=1e-6)
    # opaque columns are the original exactly; transparent ones are white
    np.testing.assert_array_equal(dec.to_uint8()[:, -1], rgb8[:, -1])
    np.testing.assert_array_equal(dec.rgb[:, 0], 1.0)
    # re-compositing on black recovers premultiplied colour, as documented
    np.testing.assert_allclose(dec.rgb - (1 - a[..., None]), rgb8 / 255 * a[..., None],
                               atol=1e-6)


def test_fully_opaque_rgba_png_equals_rgb(rgb8):
    dec = decode_image(_enc(".png", np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])))
    np.testing.assert_array_equal(dec.alpha, 1.0)
    np.testing.assert_array_equal(dec.to_uint8(), rgb8)


def test_gray_alpha_png_and_webp_alpha():
    rgb8 = _synthetic()
    g = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)
    dec = decode_image(_png(np.dstack([g, np.full_like(g, 128)]), color_type=4))
    np.testing.assert_allclose(dec.rgb[..., 1], g / 255 * (128 / 255) + (1 - 128 / 255),
                               atol=1e-6)
    assert dec.alpha is not None and np.allclose(dec.alpha, 128 / 255)
    rgba = np.dstack([rgb8, np.full(g.shape, 200, np.uint8)])
    dec = decode_image(_enc(".webp", rgba, (cv2.IMWRITE_WEBP_QUALITY, 101)))
    assert dec.format == "webp" and dec.alpha is not None
    np.testing.assert_array_equal(dec.alpha, np.float32(200) / 255)
    np.testing.assert_allclose(dec.rgb, rgb8 / 255 * (200 / 255) + (1 - 200 / 255), atol=1e-6)


def test_palette_and_1bit_bmp_and_top_down_bmp():
    rgb8 = _synthetic()
    bmp = bytearray(_enc(".bmp", rgb8))
    # top-down BMP: negative height, rows in reading order
    h, w = rgb8.shape[:2]
    off = struct.unpack_from("<I", bmp, 10)[0]
    stride = (w * 3 + 3) // 4 * 4
    rows = np.frombuffer(bytes(bmp[off:off + stride * h]), np.uint8).reshape(h, stride)
    struct.pack_into("<i", bmp, 22, -h)
    bmp[off:off + stride * h] = rows[::-1].tobytes()
    dec = decode_image(bytes(bmp))
    np.testing.assert_array_equal(dec.to_uint8(), rgb8)


# --------------------------------------------------------------------------- EXIF orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation(rgb8, orientation):
    stored = np.ascontiguousarray(_STORE[orientation](rgb8))
    jpeg = _with_app1(_enc(".jpg", stored, (cv2.IMWRITE_JPEG_QUALITY, 95)), _exif(orientation))
    dec = decode_image(jpeg)
    assert dec.orientation == orientation
    assert dec.size == rgb8.shape[:2]
    assert _mad(dec, rgb8) < 0.02
    # agrees exactly with OpenCV's own EXIF handling (same JPEG decoder underneath)
    ref = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(dec.to_uint8(), ref)


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_exif_orientation_lossless_and_big_endian(orientation):
    rgb8 = _synthetic()
    stored = np.ascontiguousarray(_STORE[orientation](rgb8))
    png = _png(stored, color_type=2, extra=_png_chunk(b"eXIf", _exif(orientation, ">")[6:]))
    dec = decode_image(png)
    assert dec.orientation == orientation
    np.testing.assert_array_equal(dec.to_uint8(), rgb8)
    jpeg = _with_app1(_enc(".jpg", stored), _exif(orientation, ">"))
    assert decode_image(jpeg).orientation == orientation


def _tiff_with_orientation(tiff: bytes, orientation: int) -> bytes:
    """cv2's TIFF with its PlanarConfiguration entry (284, default 1) swapped for Orientation
    (274), the IFD0 entries re-sorted by tag as TIFF requires."""
    b = bytearray(tiff)
    off = struct.unpack_from("<I", b, 4)[0]
    (n,) = struct.unpack_from("<H", b, off)
    entries = [bytes(b[off + 2 + 12 * i:off + 14 + 12 * i]) for i in range(n)]
    entries = [struct.pack("<HHIH2x", 274, 3, 1, orientation)
               if struct.unpack_from("<H", e)[0] == 284 else e for e in entries]
    b[off + 2:off + 2 + 12 * n] = b"".join(sorted(entries, key=lambda e: e[:2][::-1]))
    return bytes(b)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation(orientation):
    rgb8 = _synthetic()
    stored = np.ascontiguousarray(_STORE[orientation](rgb8))
    dec = decode_image(_tiff_with_orientation(_enc(".tiff", stored), orientation))
    assert (dec.format, dec.orientation) == ("tiff", orientation)
    np.testing.assert_array_equal(dec.to_uint8(), rgb8)


def test_broken_or_odd_exif_is_ignored():
    rgb8 = _synthetic()
    jpeg = _enc(".jpg", rgb8)
    for block in (b"Exif\0\0II*\0\xff\xff\xff\xff", b"Exif\0\0garbage", _exif(9), _exif(0)):
        dec = decode_image(_with_app1(jpeg, block))
        assert dec.orientation == 1 and dec.size == rgb8.shape[:2]


# --------------------------------------------------------------------------- refusals
def _refuse(data: bytes, *needles: str, **kw) -> str:
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data, source="player.jpg", **kw)
    msg = str(ei.value)
    assert "player.jpg" in msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_empty_random_and_text_bytes():
    _refuse(b"", "empty")
    _refuse(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
            "not a recognised image")
    _refuse(b"hello, this is my photo\n", "not an image", "text", "hello")
    _refuse(b"<!DOCTYPE html><html><body>404</body></html>", "HTML page")
    _refuse(b"GIF89a" + bytes(50), "GIF is not supported", "JPEG or PNG")
    _refuse(b"\0\0\0\x18ftypheic" + bytes(40), "HEIC")


def test_truncated_files(rgb8):
    for ext, params in ((".jpg", ()), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
                        (".png", ()), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90)), (".bmp", ())):
        data = _enc(ext, rgb8, params)
        _refuse(data[:len(data) // 2], "truncated")
    jpeg = _enc(".jpg", rgb8)
    _refuse(jpeg[:10], "JPEG")  # cut inside the headers
    _refuse(jpeg[:3], "JPEG")
    _refuse(_enc(".png", rgb8)[:20], "PNG")


def test_corrupt_headers():
    rgb8 = _synthetic()
    png = bytearray(_enc(".png", rgb8))
    png[18] ^= 0x40  # width changed, CRC no longer matches
    _refuse(bytes(png), "checksum")
    jpeg = bytearray(_enc(".jpg", rgb8))
    jpeg[2:4] = b"\x00\x00"  # first marker destroyed
    _refuse(bytes(jpeg), "corrupt JPEG")
    bmp = bytearray(_enc(".bmp", rgb8))
    struct.pack_into("<I", bmp, 14, 7)
    _refuse(bytes(bmp), "BMP")


def test_decompression_bomb_refused_before_decoding(monkeypatch):
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    bomb = (b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", zlib.compress(b"\0" * 30001))
            + _png_chunk(b"IEND", b""))
    assert len(bomb) < 200

    def _no_decoding(*a, **k):
        raise AssertionError("cv2.imdecode must not run on a bomb")

    monkeypatch.setattr(cv2, "imdecode", _no_decoding)
    msg = _refuse(bomb, "30000x30000 = 900 MP", "40 MP limit")
    assert "downscale" in msg
    # the same for a JPEG header claiming 60000x60000 and a lossless WebP claiming 16384^2
    sof = _seg(0xC0, struct.pack(">BHHB", 8, 60000, 60000, 1) + bytes([1, 0x11, 0]))
    _refuse(b"\xff\xd8" + sof + _seg(0xDA, bytes([1, 1, 0, 0, 63, 0])) + b"\0\xff\xd9",
            "60000x60000")
    vp8l = b"\x2f" + struct.pack("<I", 16383 | (16383 << 14)) + bytes(16)
    webp = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    _refuse(b"RIFF" + struct.pack("<I", 4 + len(webp)) + b"WEBP" + webp, "16384x16384")
    _refuse(b"BM" + struct.pack("<IHHIIiiHHI", 0, 0, 0, 54, 40, 20000, -20000, 1, 24, 0)
            + bytes(24), "20000x20000")


def test_max_pixels_is_configurable(rgb8):
    data = _enc(".png", rgb8)
    h, w = rgb8.shape[:2]
    _refuse(data, f"{w}x{h}", max_pixels=h * w - 1)
    assert decode_image(data, max_pixels=h * w).size == (h, w)


def test_too_small_images():
    _refuse(_png(np.zeros((1, 1, 3), np.uint8), color_type=2), "1x1", "at least 16")
    _refuse(_enc(".jpg", np.zeros((15, 200, 3), np.uint8)), "200x15")
    assert decode_image(_enc(".png", np.zeros((16, 16, 3), np.uint8))).size == (16, 16)


def test_bad_arguments():
    png = _enc(".png", _synthetic())
    with pytest.raises(InvalidInputError, match="bytes"):
        decode_image("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_pixels"):
        decode_image(png, max_pixels=0)
    assert decode_image(bytearray(png)).format == "png"
    assert decode_image(memoryview(png)).format == "png"
    assert issubclass(ImageDecodeError, InvalidInputError)
    assert issubclass(ImageDecodeError, ValueError)


# --------------------------------------------------------------------------- files, dataclass
def test_read_image(tmp_path, rgb8):
    p = tmp_path / "wrong-extension.png"
    p.write_bytes(_with_app1(_enc(".jpg", np.ascontiguousarray(_STORE[6](rgb8))), _exif(6)))
    dec = read_image(p)
    assert (dec.format, dec.orientation, dec.source) == ("jpeg", 6, str(p))
    assert dec.size == rgb8.shape[:2]
    with pytest.raises(FaceCraftError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(ImageDecodeError, match="notes.txt"):
        read_image(tmp_path / "notes.txt")


def test_decoded_image_is_frozen_and_checked():
    dec = decode_image(_enc(".png", _synthetic()))
    with pytest.raises(AttributeError):
        dec.format = "jpeg"  # type: ignore[misc]
    with pytest.raises(InvalidInputError):
        DecodedImage(rgb=np.zeros((4, 4, 3)), alpha=None, format="png", orientation=1,
                     bit_depth=8, source="x")
    u8 = dec.to_uint8()
    assert u8.dtype == np.uint8 and u8.shape == (*dec.size, 3)
