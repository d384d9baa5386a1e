"""Decoding players' photos: JPEG, PNG, WebP, BMP, TIFF and binary PGM/PPM bytes to a float RGB
array.

Photos arrive in every state: rotated by an EXIF tag, grayscale, CMYK from a print workflow,
16-bit from a raw converter, with a transparent background, cut off half-way by a failed upload,
or not an image at all. :func:`decode_image` (bytes) and :func:`read_image` (a file) turn all of
them into one :class:`DecodedImage` or raise :class:`ImageDecodeError` naming the source and what
is wrong with the file (never the decoder's internals). Nothing is ever written to disk.

Pipeline:

1. **Sniff and parse the header** (pure Python, :mod:`struct`; only the container's headers and
   metadata are read, never the pixel data). This gives the format, width, height, channels,
   sample size and EXIF orientation, and catches empty input, text, HTML pages, unsupported
   formats (GIF, HEIC, AVIF, ...) and files cut off before their end marker.
2. **Check the cost before decoding**: the input size (``max_bytes``), the declared pixels
   (``max_pixels``: a 50 kB PNG claiming 30000x30000) and the memory the decode would take
   (``memory_budget``: a 1 KB RLE BMP or a 116 KB PNG declaring 6300x6300, under the pixel
   limit, would still need ~600 MB) are all checked from the header alone, and refused with
   :class:`ImageTooLargeError` (a :class:`~facecraft.sdk.errors.PhotoTooLargeError`). A JPEG
   can be read at 1/2, 1/4 or 1/8 size in the DCT domain (``cv2.IMREAD_REDUCED_*``), so a large
   JPEG is read only as large as the caller needs (``max_side``) or the budget allows. A photo
   under 16 px on a side is refused too.
3. **Decode** with OpenCV (``cv2.imdecode``, ``IMREAD_UNCHANGED``: keeps 16-bit samples and
   alpha; converts CMYK and YCCK JPEGs to RGB assuming Adobe's inverted CMYK, which is what
   Photoshop and every other common writer store); binary PGM/PPM rasters are read directly by
   NumPy (a view of the bytes, big-endian 16-bit samples included).
4. **Normalise**, vectorised in blocks of ~1 M pixels (so temporaries stay small): resize to
   ``max_side`` (area averaging), BGR -> RGB, gray -> RGB, samples / (2**bit_depth - 1) (PGM/PPM:
   / maxval) -> float32 in [0, 1], alpha composited over white, EXIF orientation applied (all 8
   values; for TIFF OpenCV applies the Orientation tag itself).

Colour values stay sRGB-encoded as in the file (no linearisation, no ICC conversion: an embedded
profile is ignored, which is correct for the overwhelming majority of photos, tagged sRGB or
untagged).

Formats: JPEG (baseline, progressive, gray, CMYK/YCCK, 12-bit where OpenCV supports it), PNG
(1- to 16-bit, gray, palette, alpha, ``eXIf`` orientation), WebP (lossy, lossless, alpha,
``EXIF`` chunk), BMP (uncompressed and RLE), TIFF (first page) and binary PGM/PPM (``P5``/``P6``,
maxval up to 65535). GIF, HEIC/HEIF, AVIF, JPEG 2000, PSD, PDF, SVG, plain-text PNM (``P1``-
``P3``), PBM and PAM are refused with a message saying to convert the photo to JPEG or PNG.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceCraftError, InvalidInputError, PhotoTooLargeError

__all__ = ["DecodedImage", "ImageDecodeError", "ImageTooLargeError", "decode_image",
           "read_image", "MIN_SIDE", "MAX_PIXELS", "MAX_BYTES", "MEMORY_BUDGET"]

#: Smallest accepted width and height, in pixels (a face needs more than this to be fitted).
MIN_SIDE = 16
#: Default largest width x height a header may declare (covers every phone camera).
MAX_PIXELS = 40_000_000
#: Default largest input, bytes.
MAX_BYTES = 64 * 2 ** 20
#: Default most bytes one decode may allocate (decoder buffer + float output); see
#: :func:`decode_image` for the cost model and what it means in time.
MEMORY_BUDGET = 256 * 2 ** 20

_SUPPORTED = "JPEG, PNG, WebP, BMP, TIFF or binary PGM/PPM"


class ImageDecodeError(InvalidInputError):
    """Photo bytes are empty, not an image, unsupported, corrupt, truncated, too large or too
    small; the message names the source and says what is wrong and how to fix it."""


class ImageTooLargeError(PhotoTooLargeError, ImageDecodeError):
    """A photo over a size limit (bytes, declared pixels, or decode memory), refused from its
    size or header before any pixel is decoded. Catch it as
    :class:`~facecraft.sdk.errors.PhotoTooLargeError` (the service answers RESOURCE_EXHAUSTED);
    it is also an :class:`ImageDecodeError`, so code that skips unreadable photos skips it."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded photo, upright (EXIF orientation applied), in RGB order.

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1], sRGB-encoded as stored in the file (not linear). Row 0
            is the top of the upright picture. Where the file has alpha, the colour is already
            composited over white: ``rgb = alpha * colour + (1 - alpha) * 1``; to put the photo
            on another background ``b`` use ``rgb - (1 - alpha[..., None]) * (1 - b)``.
        alpha: (H, W) float32 in [0, 1] (straight, 1 = opaque), upright like ``rgb``; None when
            the file has no alpha channel.
        format: "jpeg", "png", "webp", "bmp", "tiff", "pgm" or "ppm" (from the bytes, not the
            file name).
        orientation: the EXIF orientation value that was applied, 1..8 (1 = none or no tag).
        bit_depth: bits per sample of the decoded data before scaling to [0, 1]: 8 for most
            photos (1-, 2- and 4-bit and palette images are expanded to 8), 16 for 16-bit PNG,
            TIFF and PGM/PPM (maxval > 255; samples are scaled by maxval), 12 for 12-bit JPEG.
        source: where the bytes came from (a path or a caller-given label), for messages.
        scale: output pixels per file pixel: 1.0, or less when the photo was read smaller
            (``max_side``, or a JPEG over the memory budget). A point at file pixel ``p`` (upright)
            is at ``p * scale`` here; the header's size is ``size / scale`` (rounded).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    orientation: int
    bit_depth: int
    source: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.float32:
            raise InvalidInputError(f"expected rgb (H, W, 3) float32, got {self.rgb.shape} "
                                    f"{self.rgb.dtype}")
        if self.alpha is not None and (self.alpha.shape != self.rgb.shape[:2]
                                       or self.alpha.dtype != np.float32):
            raise InvalidInputError(f"expected alpha {self.rgb.shape[:2]} float32, got "
                                    f"{self.alpha.shape} {self.alpha.dtype}")
        if not 1 <= self.orientation <= 8:
            raise InvalidInputError(f"expected orientation 1..8, got {self.orientation}")
        if not 0.0 < self.scale <= 1.0:
            raise InvalidInputError(f"expected scale in (0, 1], got {self.scale}")

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels, upright."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    def to_uint8(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, ``round(rgb * 255)`` (alpha already composited over white)."""
        return np.rint(np.clip(self.rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- header parsing
@dataclass(frozen=True)
class _Header:
    format: str
    width: int  # as stored, before orientation
    height: int
    orientation: int = 1
    precision: int = 8  # JPEG sample precision (8 or 12)
    min_length: int = 0  # bytes an uncompressed file must have (BMP, PNM), checked after the size
    channels: int = 4  # channels of the decoder's output buffer (an upper bound)
    sample_bytes: int = 1  # bytes per sample of the decoder's output buffer
    gray: bool = False  # a one-component JPEG (reduced decoding keeps it gray)
    raster: int = -1  # PNM: byte offset of the raw samples (decoded by NumPy, not OpenCV)
    maxval: int = 255  # PNM: the largest sample value


def _fail(source: str, what: str) -> ImageDecodeError:
    return ImageDecodeError(f"cannot decode {source}: {what}")


def _tiff_ifd0(buf: bytes) -> dict[int, int]:
    """First value of each SHORT/LONG tag in a TIFF (or EXIF) block's IFD0; {} when malformed.

    Loops over metadata entries (a few dozen), never over pixels.
    """
    if len(buf) < 8 or buf[:2] not in (b"II", b"MM"):
        return {}
    e = "<" if buf[:2] == b"II" else ">"
    magic, off = struct.unpack_from(e + "HI", buf, 2)
    if magic != 42 or off + 2 > len(buf):
        return {}
    (n,) = struct.unpack_from(e + "H", buf, off)
    tags: dict[int, int] = {}
    for i in range(min(n, 1024)):
        p = off + 2 + 12 * i
        if p + 12 > len(buf):
            break
        tag, typ, count = struct.unpack_from(e + "HHI", buf, p)
        if typ not in (3, 4) or count < 1:
            continue
        size = 2 if typ == 3 else 4
        vp = p + 8
        if count * size > 4:  # values stored elsewhere; the field holds their offset
            (vp,) = struct.unpack_from(e + "I", buf, p + 8)
            if vp + size > len(buf):
                continue
        (tags[tag],) = struct.unpack_from(e + ("H" if typ == 3 else "I"), buf, vp)
    return tags


def _exif_orientation(block: bytes) -> int:
    """Orientation (1..8) from an EXIF block (with or without the ``Exif\\0\\0`` prefix)."""
    if block.startswith(b"Exif\0\0"):
        block = block[6:]
    try:
        o = _tiff_ifd0(block).get(274, 1)
    except struct.error:  # broken EXIF is common and harmless: ignore it
        return 1
    return o if 1 <= o <= 8 else 1


def _parse_jpeg(data: bytes, source: str) -> _Header:
    n, pos = len(data), 2
    orientation, frame, sos = 1, None, -1
    exif_seen = False
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise _fail(source, f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            pos += 2
            continue
        if marker == 0xD9:
            break
        (seglen,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + seglen
        if seglen < 2 or end > n:
            raise _fail(source, "truncated JPEG: a header segment runs past the end of the data "
                                "(the file was cut off; upload it again)")
        seg = data[pos + 4:end]
        if marker == 0xE1 and not exif_seen and seg.startswith(b"Exif\0\0"):
            orientation, exif_seen = _exif_orientation(seg), True
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(seg) >= 6:
            precision, h, w, ncomp = struct.unpack_from(">BHHB", seg)
            frame = (w, h, precision, ncomp)
        elif marker == 0xDA:
            sos = pos
            break
        pos = end
    if frame is None:
        raise _fail(source, "corrupt or truncated JPEG: no frame header (SOF) before the data")
    if sos < 0:
        raise _fail(source, "truncated JPEG: the image data never starts (the file was cut off; "
                            "upload it again)")
    if data.find(b"\xff\xd9", sos) < 0:
        raise _fail(source, "truncated JPEG: the end-of-image marker is missing, so the bottom "
                            "of the photo would be grey (the file was cut off; upload it again)")
    w, h, precision, ncomp = frame
    if h == 0:
        raise _fail(source, "unsupported JPEG: height given after the data (DNL marker)")
    return _Header("jpeg", w, h, orientation, precision, channels=1 if ncomp == 1 else 3,
                   sample_bytes=2 if precision > 8 else 1, gray=ncomp == 1)


def _parse_png(data: bytes, source: str) -> _Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _fail(source, "corrupt or truncated PNG: no IHDR header chunk")
    (length,) = struct.unpack_from(">I", data, 8)
    (crc,) = struct.unpack_from(">I", data, 29)
    if length != 13 or zlib.crc32(data[12:29]) != crc:
        raise _fail(source, "corrupt PNG: the IHDR header chunk fails its checksum")
    w, h, depth, color_type = struct.unpack_from(">IIBB", data, 16)
    orientation, pos, n, ended = 1, 8, len(data), False
    while pos + 8 <= n:  # walk chunk headers only (the pixel data is skipped)
        (length,) = struct.unpack_from(">I", data, pos)
        ctype = data[pos + 4:pos + 8]
        if ctype == b"eXIf":
            orientation = _exif_orientation(data[pos + 8:pos + 8 + length])
        if ctype == b"IEND":
            ended = True
            break
        pos += 12 + length
    if not ended:
        raise _fail(source, "truncated PNG: the IEND end chunk is missing (the file was cut off; "
                            "upload it again)")
    channels = {0: 1, 2: 3}.get(color_type, 4)  # palette and gray+alpha decode to 4 channels
    return _Header("png", w, h, orientation, channels=channels, sample_bytes=2 if depth > 8 else 1)


def _parse_webp(data: bytes, source: str) -> _Header:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if len(data) < 8 + riff_size:
        raise _fail(source, f"truncated WebP: {len(data)} bytes of the {8 + riff_size} its "
                            "header announces (the file was cut off; upload it again)")
    pos, end = 12, 8 + riff_size
    dims, orientation = None, 1
    while pos + 8 <= end:
        ctype = data[pos:pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        p = data[pos + 8:pos + 8 + min(length, 64)] if ctype != b"EXIF" else \
            data[pos + 8:pos + 8 + length]
        if ctype == b"VP8X" and len(p) >= 10:
            dims = (1 + int.from_bytes(p[4:7], "little"), 1 + int.from_bytes(p[7:10], "little"))
        elif ctype == b"VP8L" and dims is None and len(p) >= 5 and p[0] == 0x2F:
            (bits,) = struct.unpack_from("<I", p, 1)
            dims = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif ctype == b"VP8 " and dims is None and len(p) >= 10 and p[3:6] == b"\x9d\x01\x2a":
            w, h = struct.unpack_from("<HH", p, 6)
            dims = (w & 0x3FFF, h & 0x3FFF)
        elif ctype == b"EXIF":
            orientation = _exif_orientation(p)
        pos += 8 + length + (length & 1)
    if dims is None:
        raise _fail(source, "corrupt WebP: no VP8/VP8L/VP8X image chunk")
    return _Header("webp", dims[0], dims[1], orientation)


def _parse_bmp(data: bytes, source: str) -> _Header:
    if len(data) < 26:
        raise _fail(source, "truncated BMP: the header is incomplete")
    (offset,) = struct.unpack_from("<I", data, 10)
    (dib,) = struct.unpack_from("<I", data, 14)
    if dib == 12:
        w, h, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    elif dib >= 40:
        if len(data) < 54:
            raise _fail(source, "truncated BMP: the header is incomplete")
        w, h, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    else:
        raise _fail(source, f"corrupt BMP: unknown info-header size {dib}")
    h = abs(h)  # negative height = rows stored top-down
    if w <= 0 or h <= 0 or bits not in (1, 4, 8, 16, 24, 32):
        raise _fail(source, f"corrupt BMP: width {w}, height {h}, {bits} bits per pixel")
    need = offset + (w * bits + 31) // 32 * 4 * h if compression in (0, 3) else 0
    # RLE (compression 1, 2) is not bounded by the file size (2 bytes may paint every pixel);
    # the decode-memory budget in decode_image bounds it like every other format.
    return _Header("bmp", w, h, min_length=need, channels=4 if bits == 32 else 3)


def _parse_tiff(data: bytes, source: str) -> _Header:
    try:
        tags = _tiff_ifd0(data)
    except struct.error:
        tags = {}
    if 256 not in tags or 257 not in tags:
        raise _fail(source, "corrupt or truncated TIFF: no width/height in the first directory")
    o = tags.get(274, 1)
    bits = max(tags.get(258, 8), 1)  # bits per sample (first value)
    return _Header("tiff", tags[256], tags[257], o if 1 <= o <= 8 else 1, channels=4,
                   sample_bytes=1 if bits <= 8 else (2 if bits <= 16 else 4))


# "P5"/"P6", whitespace or comments, width, height, maxval, then exactly one whitespace byte
_PNM_SEP = rb"(?:\s|#[^\r\n]*[\r\n])+"
_PNM_HEADER = re.compile(rb"P([56])" + _PNM_SEP + rb"(\d{1,10})" + _PNM_SEP + rb"(\d{1,10})"
                         + _PNM_SEP + rb"(\d{1,5})\s")


def _parse_pnm(data: bytes, source: str) -> _Header:
    """Binary PGM (P5, gray) and PPM (P6, RGB), 8-bit or 16-bit big-endian (maxval > 255)."""
    name = "pgm" if data[1:2] == b"5" else "ppm"
    m = _PNM_HEADER.match(data, 0, 1 << 16)  # a header is short; comments included
    if m is None:
        raise _fail(source, f"corrupt or truncated {name.upper()}: the header needs width, "
                            "height and maxval")
    w, h, maxval = (int(g) for g in m.groups()[1:])
    if not 1 <= maxval <= 65535:
        raise _fail(source, f"corrupt {name.upper()}: maxval {maxval} is not in 1..65535")
    ch, sb = (1 if name == "pgm" else 3), (1 if maxval < 256 else 2)
    return _Header(name, w, h, min_length=m.end() + w * h * ch * sb, channels=ch,
                   sample_bytes=sb, raster=m.end(), maxval=maxval)


_UNSUPPORTED = (  # (magic test, name)
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), "GIF"),
    (lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"avif", b"avis"), "AVIF"),
    (lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis",
                                                 b"mif1", b"msf1"), "HEIC/HEIF"),
    (lambda d: d[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or d[:4] == b"\xff\x4f\xff\x51",
     "JPEG 2000"),
    (lambda d: d[:4] == b"8BPS", "Photoshop PSD"),
    (lambda d: d[:5] == b"%PDF-", "PDF"),
    (lambda d: d[:8] == b"\x8aMNG\r\n\x1a\n", "MNG"),
    (lambda d: d[:1] == b"P" and d[1:2] in (b"1", b"2", b"3") and d[2:3].isspace(),
     "Plain-text (ASCII) PBM/PGM/PPM"),
    (lambda d: d[:2] in (b"P4", b"P7") and d[2:3].isspace(), "PBM bitmap / PAM"),
)


def _describe_unknown(data: bytes) -> str:
    head = data[:256]
    for test, name in _UNSUPPORTED:
        if test(data):
            return (f"{name} is not supported; export or convert the photo to JPEG or PNG "
                    "(on phones: Settings > Camera > Formats > Most Compatible)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text.rstrip("\0")):
        low = text.lstrip().lower()
        if low.startswith(("<!doctype html", "<html")):
            kind = "an HTML page (was an error page or a web page saved instead of the photo?)"
        elif low.startswith(("<svg", "<?xml")):
            kind = "XML/SVG text (vector drawings are not supported; export a PNG)"
        else:
            kind = "text"
        preview = " ".join(text.split())[:40]
        return f"not an image: it looks like {kind}, starting {preview!r}"
    return (f"not a recognised image format (first bytes {data[:8].hex(' ')}); expected "
            f"{_SUPPORTED}")


def _parse_header(data: bytes, source: str) -> _Header:
    """Sniff the format from the magic number and parse the header (no pixel decoding)."""
    try:
        if data[:2] == b"\xff\xd8":
            return _parse_jpeg(data, source)
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return _parse_png(data, source)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _parse_webp(data, source)
        if data[:2] == b"BM":
            return _parse_bmp(data, source)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _parse_tiff(data, source)
        if data[:2] in (b"P5", b"P6") and (data[2:3].isspace() or data[2:3] == b"#"):
            return _parse_pnm(data, source)
    except struct.error:
        raise _fail(source, "truncated or corrupt image header") from None
    raise _fail(source, _describe_unknown(data))


# --------------------------------------------------------------------------- pixel conversion
def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W[, C]) array stored as in the file (views only)."""
    if orientation in (5, 6, 7, 8):
        a = a.swapaxes(0, 1)  # transpose: stored column c becomes displayed row c
    flip_rows, flip_cols = {1: (False, False), 2: (False, True), 3: (True, True),
                            4: (True, False), 5: (False, False), 6: (False, True),
                            7: (True, True), 8: (True, False)}[orientation]
    if flip_rows:
        a = a[::-1]
    if flip_cols:
        a = a[:, ::-1]
    return a


def _mp(pixels: float) -> str:
    return f"{pixels / 1e6:.3g} MP"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2 ** 20:.0f} MiB"


#: Pixels normalised per block (bounds the float temporaries to a few MB).
_BLOCK_PIXELS = 1 << 20
_JPEG_SCALES = (1, 2, 4, 8)  # libjpeg's DCT-domain reductions (IMREAD_REDUCED_*)


@dataclass(frozen=True)
class _Plan:
    """How to decode: reduction ``k`` (JPEG), decoded and output size, estimated peak bytes."""

    k: int
    decoded: tuple[int, int]  # (w, h) the decoder produces, stored orientation
    out: tuple[int, int]  # (w, h) after the max_side resize, stored orientation
    cost: int


def _fit(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _plan(hdr: _Header, max_side: int | None, budget: int) -> _Plan | None:
    """The cheapest-to-read plan that keeps the most pixels within ``budget`` bytes, or None.

    Cost model (bytes): the decoder's buffer (decoded pixels x channels x sample bytes), the
    resized copy when ``max_side`` shrinks it, the float32 output (12 bytes per output pixel, 16
    with alpha) and one normalisation block. JPEG can be decoded at 1/2, 1/4 or 1/8 size in the
    DCT domain, so a JPEG over the budget is read smaller; other formats decode at full size.
    """
    w, h = hdr.width, hdr.height
    ks = _JPEG_SCALES if hdr.format == "jpeg" else (1,)
    if max_side is not None:  # no finer than needed: the largest reduction still >= max_side
        start = max(k for k in ks if k == 1 or -(-max(w, h) // k) >= max_side)
        ks = ks[ks.index(start):]
    for k in ks:
        dw, dh = -(-w // k), -(-h // k)
        ow, oh = _fit(dw, dh, max_side)
        ch = hdr.channels if k == 1 else (1 if hdr.gray else 3)
        sb = hdr.sample_bytes if k == 1 else 1
        buf = dw * dh * ch * sb
        resized = ow * oh * ch * sb if (ow, oh) != (dw, dh) else 0
        out = ow * oh * (16 if ch in (2, 4) else 12)
        cost = buf + resized + out + _BLOCK_PIXELS * 16
        if cost <= budget:
            return _Plan(k, (dw, dh), (ow, oh), cost)
    return None


def _too_large(source: str, what: str) -> ImageTooLargeError:
    return ImageTooLargeError(f"cannot decode {source}: {what}")


def _unreadable(source: str, what: str) -> ImageDecodeError:
    return _fail(source, f"not a photo FaceCraft can read: {what}")


def _decode_pixels(data: bytes, hdr: _Header, plan: _Plan, source: str) -> np.ndarray:
    """The decoder's output, stored orientation: (h, w[, c]) uint8/uint16/float, BGR(A) order
    for OpenCV formats, RGB for PNM."""
    w, h = hdr.width, hdr.height
    if hdr.raster >= 0:  # binary PNM: the raster is the pixels; a view, no decoder
        dt = np.dtype(np.uint8) if hdr.sample_bytes == 1 else np.dtype(">u2")
        flat = np.frombuffer(data, dt, count=w * h * hdr.channels, offset=hdr.raster)
        arr = flat.reshape((h, w) if hdr.channels == 1 else (h, w, hdr.channels))
        return np.minimum(arr.astype(dt.newbyteorder("=")), hdr.maxval)

    import cv2  # deferred: keeps `import facecraft.sdk` light

    if plan.k == 1:
        flags = cv2.IMREAD_UNCHANGED
    else:
        kind = "GRAYSCALE" if hdr.gray else "COLOR"
        flags = getattr(cv2, f"IMREAD_REDUCED_{kind}_{plan.k}") | cv2.IMREAD_IGNORE_ORIENTATION
    fmt = hdr.format.upper()
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:  # its text names OpenCV's sources, not the file's problem
        arr = None
    if arr is None or arr.size == 0:
        raise _unreadable(source, f"corrupt {fmt} data (the pixel data is damaged or cut "
                                       f"off, or uses a {fmt} variant that cannot be decoded; "
                                       "upload the original photo again or save it as JPEG)")
    # OpenCV's TIFF decoder applies the TIFF Orientation tag itself; for the others we do.
    dw, dh = plan.decoded
    want = (dh, dw) if hdr.format != "tiff" or hdr.orientation < 5 else (dw, dh)
    if arr.shape[:2] != want:
        raise _unreadable(source, f"corrupt {fmt} data: the header says {w}x{h} but the "
                                       f"pixels decode to {arr.shape[1]}x{arr.shape[0]}")
    return arr


def _normalise(arr: np.ndarray, peak: np.float32, bgr: bool, is_float: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(h, w[, c]) samples -> rgb (h, w, 3) float32 in [0, 1] composited over white, and alpha
    (h, w) float32 or None; in blocks of rows so temporaries stay small (no per-pixel loop)."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    rgb = np.empty((h, w, 3), np.float32)
    alpha = np.empty((h, w), np.float32) if c in (2, 4) else None
    rows = max(1, _BLOCK_PIXELS // max(w, 1))
    for r in range(0, h, rows):  # blocks of ~1 M pixels
        src, dst = arr[r:r + rows], rgb[r:r + rows]
        if c <= 2:
            dst[...] = (src if c == 1 else src[..., 0])[..., None]
        else:
            dst[...] = src[..., 2::-1] if bgr else src[..., :3]
        dst /= peak
        if alpha is not None:
            a = alpha[r:r + rows]
            a[...] = src[..., -1]
            a /= peak
            dst *= a[..., None]
            dst += 1 - a[..., None]  # composite over white
            if is_float:
                np.clip(np.nan_to_num(a, copy=False, nan=1.0), 0.0, 1.0, out=a)
        if is_float:
            np.clip(np.nan_to_num(dst, copy=False, nan=0.0), 0.0, 1.0, out=dst)
    return rgb, alpha


def _check_args(data: object, source: object, limits: dict[str, int | None]) -> bytes:
    if not isinstance(source, str):
        raise InvalidInputError(f"expected source as str, got {type(source).__name__}")
    for name, val in limits.items():
        if val is None and name == "max_side":
            continue
        low = MIN_SIDE if name == "max_side" else 1
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise InvalidInputError(f"expected {name} as an int >= {low}, got {val!r}")
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidInputError(f"expected data as bytes (the file's content), got "
                                f"{type(data).__name__}; to read a file use read_image(path)")
    return data


def decode_image(data: bytes | bytearray | memoryview, *, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_BYTES, memory_budget: int = MEMORY_BUDGET,
                 max_side: int | None = None, source: str = "<bytes>") -> DecodedImage:
    """Decode photo bytes into an upright RGB float image, refusing anything unsafe or broken.

    Every limit is checked from the header, before any pixel is decoded, and each refusal is a
    typed error (:class:`ImageTooLargeError`, a
    :class:`~facecraft.sdk.errors.PhotoTooLargeError`), never a message to parse.

    Worst case of one call (``python benchmarks/ingest.py --decode``; one core of a shared
    x86-64 dev box):

    * **memory**: at most ``memory_budget`` (default 256 MiB) above the input bytes, whatever the
      header claims. The estimate (decoder buffer + resized copy + 12 bytes per output pixel, 16
      with alpha, + one 16 MiB block) is checked first; measured peaks sit at the estimate
      (a 4700x3500 RGB PNG, the largest the default budget takes: 253 MB).
    * **time**: grows with the pixels decoded, so the budget bounds it too: 0.25 s for that PNG,
      0.44 s for a 1 KB RLE8 BMP declaring 4000x4000, 0.2 s for a 39.9 MP JPEG (read at 1/2
      size, 161 MB; with ``max_side=2048``: 0.22 s, 75 MB).
    * **hostile headers** (a 1 KB RLE8 BMP or a small PNG declaring 6300x6300, under the pixel
      limit but ~600 MB to decode): refused from the header in under 1 ms, nothing allocated.

    Args:
        data: the whole file's bytes (JPEG, PNG, WebP, BMP, TIFF, binary PGM/PPM; sniffed from
            the content, the name or extension plays no part).
        max_pixels: largest accepted width x height the header may declare (40 MP covers every
            phone camera).
        max_bytes: largest accepted input, bytes (64 MiB by default).
        memory_budget: most bytes the decode may allocate (see above). A JPEG whose full-size
            decode needs more is read at 1/2, 1/4 or 1/8 size (``scale`` says which); any other
            format over it is refused.
        max_side: longest side the caller needs, pixels (>= :data:`MIN_SIDE`), or None for the
            full size. A larger photo is downscaled to it (area averaging); a JPEG is first read
            at the smallest DCT reduction that still covers it, so a 48 MP JPEG read for
            ``max_side=2048`` never holds more than 12 MP.
        source: label used in error messages, e.g. the file name or an upload id.

    Returns:
        :class:`DecodedImage`: ``rgb`` (H, W, 3) float32 in [0, 1] (sRGB-encoded), ``alpha``
        (H, W) float32 or None, ``format``, the applied EXIF ``orientation``, ``bit_depth`` and
        ``scale`` (output pixels per file pixel; 1.0 unless reduced).

    Raises:
        ImageTooLargeError: more than ``max_bytes`` bytes, more than ``max_pixels`` pixels, or a
            decode that cannot fit ``memory_budget`` (also an :class:`ImageDecodeError` and a
            :class:`~facecraft.sdk.errors.PhotoTooLargeError`).
        ImageDecodeError: empty input, not an image, unsupported format, corrupt or truncated
            data, or a side under :data:`MIN_SIDE` pixels.
        InvalidInputError: ``data`` is not bytes-like or a limit is not a positive int.
    """
    data = _check_args(data, source, {"max_pixels": max_pixels, "max_bytes": max_bytes,
                                      "memory_budget": memory_budget, "max_side": max_side})
    if not data:
        raise _fail(source, f"the data is empty (0 bytes); expected a {_SUPPORTED} photo")
    if len(data) > max_bytes:
        raise _too_large(source, f"the file is {_mb(len(data))}, above the {_mb(max_bytes)} "
                                 f"limit (max_bytes={max_bytes}); send a smaller JPEG")
    hdr = _parse_header(data, source)
    w, h = hdr.width, hdr.height
    if w * h > max_pixels:
        raise _too_large(source, f"photo is {w}x{h} = {_mp(w * h)}, above the {_mp(max_pixels)} "
                                 f"limit (max_pixels={max_pixels}); downscale it before uploading")
    if min(w, h) < MIN_SIDE:
        raise _fail(source, f"photo is only {w}x{h} pixels; need at least {MIN_SIDE} on each "
                            "side (a usable face photo is 256 px or more)")
    if len(data) < hdr.min_length:
        raise _fail(source, f"truncated {hdr.format.upper()}: {len(data)} bytes of the "
                            f"{hdr.min_length} its header needs (the file was cut off; upload it "
                            "again)")
    plan = _plan(hdr, max_side, memory_budget)
    if plan is None:
        raise _too_large(source, f"decoding this {w}x{h} {hdr.format.upper()} would take more "
                                 f"than the {_mb(memory_budget)} memory budget "
                                 f"(memory_budget={memory_budget}); downscale the photo or save "
                                 "it as JPEG")
    return _finish(_decode_pixels(data, hdr, plan, source), hdr, plan, source)


def _finish(arr: np.ndarray, hdr: _Header, plan: _Plan, source: str) -> DecodedImage:
    """Resize to the plan's output size, orient, and convert to :class:`DecodedImage`."""
    if arr.dtype == np.uint8:
        bit_depth = 8
    elif arr.dtype == np.uint16:
        bit_depth = hdr.precision if hdr.format == "jpeg" and 8 < hdr.precision < 16 else 16
    elif arr.dtype == np.float32 or arr.dtype == np.float64:
        bit_depth = 32
    else:
        raise _fail(source, f"unsupported {hdr.format.upper()} sample type {arr.dtype}; "
                            "save the photo as 8- or 16-bit")
    if hdr.raster >= 0:
        peak = np.float32(hdr.maxval)
    else:
        peak = np.float32(1.0 if bit_depth == 32 else 2 ** bit_depth - 1)  # exact rounding
    if plan.out != plan.decoded:
        import cv2

        arr = cv2.resize(arr, plan.out, interpolation=cv2.INTER_AREA)
    orient_here = hdr.format != "tiff"
    if orient_here:
        arr = _orient(arr, hdr.orientation)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels not in (1, 2, 3, 4):
        raise _fail(source, f"unsupported {hdr.format.upper()} with {channels} channels")
    rgb, alpha = _normalise(arr, peak, bgr=hdr.raster < 0, is_float=bit_depth == 32)
    return DecodedImage(rgb=rgb, alpha=alpha, format=hdr.format, orientation=hdr.orientation,
                        bit_depth=bit_depth, source=source, scale=plan.out[0] / hdr.width)


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_BYTES, memory_budget: int = MEMORY_BUDGET,
               max_side: int | None = None, source: str | None = None) -> DecodedImage:
    """Read and decode a photo file; see :func:`decode_image` (``source`` defaults to the path).

    A file larger than ``max_bytes`` is refused from its size, before it is read.

    Raises:
        FaceCraftError: the file cannot be read ("cannot read PATH: reason").
        ImageTooLargeError, ImageDecodeError: as :func:`decode_image`.
    """
    p = Path(path)
    label = str(p) if source is None else source
    try:
        size = p.stat().st_size
        if isinstance(max_bytes, int) and 0 < max_bytes < size:
            raise _too_large(label, f"the file is {_mb(size)}, above the {_mb(max_bytes)} "
                                    f"limit (max_bytes={max_bytes}); send a smaller JPEG")
        data = p.read_bytes()
    except OSError as e:
        raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    return decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes,
                        memory_budget=memory_budget, max_side=max_side, source=label)
