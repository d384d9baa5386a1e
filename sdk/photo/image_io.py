"""Decoding players' photos: JPEG, PNG, WebP, BMP and TIFF bytes to a float RGB array.

Photos arrive in every state: rotated by an EXIF tag, grayscale, CMYK from a print workflow,
16-bit from a raw converter, with a transparent background, cut off half-way by a failed upload,
or not an image at all. :func:`decode_image` (bytes) and :func:`read_image` (a file) turn all of
them into one :class:`DecodedImage` or raise :class:`ImageDecodeError` naming the source and what
is wrong. Nothing is ever written to disk.

Pipeline:

1. **Sniff and parse the header** (pure Python, :mod:`struct`; only the container's headers and
   metadata are read, never the pixel data). This gives the format, width, height and EXIF
   orientation, and catches empty input, text, HTML pages, unsupported formats (GIF, HEIC, AVIF,
   ...) and files cut off before their end marker.
2. **Check the size before decoding**: a decompression bomb (a 50 kB PNG claiming 30000x30000)
   is refused from its header alone, as is a photo under 16 px on a side.
3. **Decode** with OpenCV (``cv2.imdecode``, ``IMREAD_UNCHANGED``: keeps 16-bit samples and
   alpha; converts CMYK and YCCK JPEGs to RGB assuming Adobe's inverted CMYK, which is what
   Photoshop and every other common writer store).
4. **Normalise**, vectorised: BGR -> RGB, gray -> RGB, samples / (2**bit_depth - 1) -> float32
   in [0, 1], alpha composited over white, EXIF orientation applied (all 8 values; for TIFF
   OpenCV applies the Orientation tag itself).

Colour values stay sRGB-encoded as in the file (no linearisation, no ICC conversion: an embedded
profile is ignored, which is correct for the overwhelming majority of photos, tagged sRGB or
untagged).

Formats: JPEG (baseline, progressive, gray, CMYK/YCCK, 12-bit where OpenCV supports it), PNG
(1- to 16-bit, gray, palette, alpha, ``eXIf`` orientation), WebP (lossy, lossless, alpha,
``EXIF`` chunk), BMP (uncompressed and RLE) and TIFF (first page). GIF, HEIC/HEIF, AVIF, JPEG
2000, PSD, PDF and SVG are refused with a message saying to convert the photo to JPEG or PNG.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecraft.sdk.errors import FaceCraftError, InvalidInputError

__all__ = ["DecodedImage", "ImageDecodeError", "decode_image", "read_image", "MIN_SIDE"]

#: Smallest accepted width and height, in pixels (a face needs more than this to be fitted).
MIN_SIDE = 16

_SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"


class ImageDecodeError(InvalidInputError):
    """Photo bytes are empty, not an image, unsupported, corrupt, truncated, too large or too
    small; the message names the source and says what is wrong and how to fix it."""


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
        format: "jpeg", "png", "webp", "bmp" or "tiff" (from the bytes, not the file name).
        orientation: the EXIF orientation value that was applied, 1..8 (1 = none or no tag).
        bit_depth: bits per sample of the decoded data before scaling to [0, 1]: 8 for most
            photos (1-, 2- and 4-bit and palette images are expanded to 8), 16 for 16-bit PNG and
            TIFF, 12 for 12-bit JPEG.
        source: where the bytes came from (a path or a caller-given label), for messages.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    orientation: int
    bit_depth: int
    source: str

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
    min_length: int = 0  # bytes an uncompressed file must have (BMP), checked after the size


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
            precision, h, w = struct.unpack_from(">BHH", seg)
            frame = (w, h, precision)
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
    w, h, precision = frame
    if h == 0:
        raise _fail(source, "unsupported JPEG: height given after the data (DNL marker)")
    return _Header("jpeg", w, h, orientation, precision)


def _parse_png(data: bytes, source: str) -> _Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _fail(source, "corrupt or truncated PNG: no IHDR header chunk")
    (length,) = struct.unpack_from(">I", data, 8)
    (crc,) = struct.unpack_from(">I", data, 29)
    if length != 13 or zlib.crc32(data[12:29]) != crc:
        raise _fail(source, "corrupt PNG: the IHDR header chunk fails its checksum")
    w, h = struct.unpack_from(">II", data, 16)
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
    return _Header("png", w, h, orientation)


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
    return _Header("bmp", w, h, min_length=need)


def _parse_tiff(data: bytes, source: str) -> _Header:
    try:
        tags = _tiff_ifd0(data)
    except struct.error:
        tags = {}
    if 256 not in tags or 257 not in tags:
        raise _fail(source, "corrupt or truncated TIFF: no width/height in the first directory")
    o = tags.get(274, 1)
    return _Header("tiff", tags[256], tags[257], o if 1 <= o <= 8 else 1)


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


def decode_image(data: bytes | bytearray | memoryview, *, max_pixels: int = 40_000_000,
                 source: str = "<bytes>") -> DecodedImage:
    """Decode photo bytes into an upright RGB float image, refusing anything unsafe or broken.

    Args:
        data: the whole file's bytes (JPEG, PNG, WebP, BMP or TIFF; sniffed from the content,
            the name or extension plays no part).
        max_pixels: largest accepted width x height, checked from the header before any pixel
            is decoded (decompression-bomb guard). 40 MP covers every phone camera; the decoded
            float image takes 12 bytes per pixel (480 MB at the limit) plus the decoder's buffer.
        source: label used in error messages, e.g. the file name or an upload id.

    Returns:
        :class:`DecodedImage`: ``rgb`` (H, W, 3) float32 in [0, 1] (sRGB-encoded), ``alpha``
        (H, W) float32 or None, ``format``, the applied EXIF ``orientation``, ``bit_depth``.

    Raises:
        ImageDecodeError: empty input, not an image, unsupported format, corrupt or truncated
            data, more than ``max_pixels`` pixels, or a side under :data:`MIN_SIDE` pixels.
        InvalidInputError: ``data`` is not bytes-like or ``max_pixels`` is not a positive int.
    """
    if not isinstance(source, str):
        raise InvalidInputError(f"expected source as str, got {type(source).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InvalidInputError(f"expected max_pixels as a positive int, got {max_pixels!r}")
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidInputError(f"expected data as bytes (the file's content), got "
                                f"{type(data).__name__}; to read a file use read_image(path)")
    if not data:
        raise _fail(source, f"the data is empty (0 bytes); expected a {_SUPPORTED} photo")

    hdr = _parse_header(data, source)
    w, h = hdr.width, hdr.height
    if w * h > max_pixels:
        raise _fail(source, f"photo is {w}x{h} = {_mp(w * h)}, above the {_mp(max_pixels)} "
                            f"limit (max_pixels={max_pixels}); downscale it before uploading")
    if min(w, h) < MIN_SIDE:
        raise _fail(source, f"photo is only {w}x{h} pixels; need at least {MIN_SIDE} on each "
                            "side (a usable face photo is 256 px or more)")

    if len(data) < hdr.min_length:
        raise _fail(source, f"truncated {hdr.format.upper()}: {len(data)} bytes of the "
                            f"{hdr.min_length} its header needs (the file was cut off; upload it "
                            "again)")

    import cv2  # deferred: keeps `import facecraft.sdk` light

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise _fail(source, f"corrupt {hdr.format.upper()}: the decoder failed ({msg})") from None
    if arr is None or arr.size == 0:
        raise _fail(source, f"corrupt {hdr.format.upper()}: the decoder rejected the data "
                            "(damaged or cut-off file; upload it again)")
    # OpenCV's TIFF decoder applies the TIFF Orientation tag itself; for the others we do.
    orient_here = hdr.format != "tiff"
    want = (h, w) if orient_here or hdr.orientation < 5 else (w, h)
    if arr.shape[:2] != want:
        raise _fail(source, f"corrupt {hdr.format.upper()}: the header says {w}x{h} but the "
                            f"data decodes to {arr.shape[1]}x{arr.shape[0]}")

    if arr.dtype == np.uint8:
        bit_depth = 8
    elif arr.dtype == np.uint16:
        bit_depth = hdr.precision if hdr.format == "jpeg" and 8 < hdr.precision < 16 else 16
    elif arr.dtype == np.float32 or arr.dtype == np.float64:
        bit_depth = 32
    else:
        raise _fail(source, f"unsupported {hdr.format.upper()} sample type {arr.dtype}; "
                            "save the photo as 8- or 16-bit")
    peak = np.float32(1.0 if bit_depth == 32 else 2 ** bit_depth - 1)  # v / peak: exact rounding

    if orient_here:
        arr = _orient(arr, hdr.orientation)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels == 1:
        rgb = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)
    elif channels in (3, 4):
        rgb = arr[..., 2::-1]  # BGR(A) -> RGB
    elif channels == 2:
        rgb = np.repeat(arr[..., :1], 3, axis=2)
    else:
        raise _fail(source, f"unsupported {hdr.format.upper()} with {channels} channels")
    rgb = rgb.astype(np.float32) / peak
    alpha = None
    if channels in (2, 4):
        alpha = arr[..., -1].astype(np.float32) / peak
        a = alpha[..., None]
        rgb = rgb * a + (np.float32(1.0) - a)  # composite over white
    if bit_depth == 32:
        rgb = np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0)
        alpha = None if alpha is None else np.clip(np.nan_to_num(alpha, nan=1.0), 0.0, 1.0)
    return DecodedImage(rgb=np.ascontiguousarray(rgb, dtype=np.float32),
                        alpha=None if alpha is None else np.ascontiguousarray(alpha),
                        format=hdr.format, orientation=hdr.orientation, bit_depth=bit_depth,
                        source=source)


def read_image(path: str | os.PathLike[str], *, max_pixels: int = 40_000_000,
               source: str | None = None) -> DecodedImage:
    """Read and decode a photo file; see :func:`decode_image` (``source`` defaults to the path).

    Raises:
        FaceCraftError: the file cannot be read ("cannot read PATH: reason").
        ImageDecodeError: as :func:`decode_image`.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    return decode_image(data, max_pixels=max_pixels, source=str(p) if source is None else source)
