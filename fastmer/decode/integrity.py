"""Is an image file complete? Checks on the encoded bytes, shared by the image engines.

OpenCV's ``cv2.imread`` decodes a truncated JPEG without failing: libjpeg fills the missing
rows with grey and only prints "Premature end of JPEG file" on stderr. DALI refuses the file
but says only "Failed to decode sample #0 :". So before any decoder sees a file:

* :func:`check_complete` (the hot path) looks at the bytes already read: a JPEG must end
  with its end-of-image marker ``FF D9`` (padding or other data after it is allowed, as
  libjpeg allows it). A complete file costs two byte comparisons.
* :func:`diagnose` (only after a decoder has failed) says what is wrong in words: a PNG
  chunk that is cut off or fails its CRC, a BMP shorter than its header promises, a
  header that is no image format at all.

What no engine can detect: a JPEG whose entropy-coded data is damaged in the middle
(libjpeg decodes it with warnings on stderr, which neither OpenCV nor DALI report), and
a damaged BMP of the right size (BMP has no checksum).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from fastmer.errors import ClipError

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_BMP = b"BM"
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI
_STANDALONE = {0x01, *range(0xD0, 0xDA)}


def read_file(path: str) -> np.ndarray:
    """The bytes of ``path`` as a uint8 array (what the decoders are fed).

    Raises:
        ClipError: stage ``decode`` naming the file when it is missing, unreadable or empty.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ClipError("decode", f"cannot read {path} ({error.strerror or error})") from error
    if data.size == 0:
        raise ClipError("decode", f"cannot read {path}: empty file")
    return data


def image_format(data: np.ndarray | bytes) -> str | None:
    """``"JPEG"``, ``"PNG"`` or ``"BMP"`` from the file's signature, else None."""
    head = bytes(data[:8])
    if head.startswith(_JPEG):
        return "JPEG"
    if head == _PNG:
        return "PNG"
    if head.startswith(_BMP) and len(data) >= 26:
        return "BMP"
    return None


def check_complete(path: str, data: np.ndarray) -> None:
    """ClipError (stage ``decode``) naming ``path`` when ``data`` is a JPEG without its end.

    Cheap enough to run on every frame: a complete JPEG ending in ``FF D9`` costs two byte
    comparisons; only files that do not are looked at further. Other formats pass: their
    decoders fail on a truncated file, and :func:`diagnose` then says why.
    """
    if data.size >= 2 and data[-1] == 0xD9 and data[-2] == 0xFF:
        return
    if image_format(data) == "JPEG":
        reason = _jpeg_truncation(data.tobytes())
        if reason:
            raise ClipError("decode", f"cannot decode {path}: {reason}")


def diagnose(data: np.ndarray | bytes) -> str:
    """What is wrong with image bytes a decoder refused, in a few words (never empty)."""
    data = bytes(data)
    kind = image_format(data)
    if not data:
        return "empty file"
    if kind is None:
        return f"not a JPEG, PNG or BMP file (it starts with {data[:8].hex(' ')})"
    reason = {"JPEG": _jpeg_truncation, "PNG": _png_defect, "BMP": _bmp_truncation}[kind](data)
    return reason or f"corrupt {kind} data (its structure looks complete, but its {len(data):,} bytes do not decode)"


def _jpeg_truncation(data: bytes) -> str | None:
    """Why a JPEG is incomplete, or None when its image data ends with an EOI marker."""
    n = len(data)
    if data.rstrip(b"\x00\xff").endswith(b"\xff\xd9"):  # EOI, then padding
        return None
    cut = f"truncated JPEG (the file ends in its headers, after {n:,} bytes)"
    pos = 2  # after SOI: walk the marker segments to the first scan (SOS)
    while True:
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 2 > n:
            return cut
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker == 0xD9:
            return None  # no marker where one should be, or EOI before any scan: corrupt, not cut short
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 > n or end > n:
            return cut
        if marker == 0xDA:  # SOS: image data follows; EOI cannot occur inside it (FF is stuffed)
            if data.find(b"\xff\xd9", end) >= 0:
                return None  # complete, followed by other data (ignored by libjpeg)
            return (f"truncated JPEG (no end-of-image marker FF D9: the file ends after {n:,} bytes, "
                    "inside the image data)")
        pos = end


def _png_defect(data: bytes) -> str | None:
    """A PNG chunk cut off or failing its CRC, or a missing IEND; None when all chunks check out."""
    n, pos = len(data), 8
    while pos + 8 <= n:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        name = kind.decode("latin-1")
        end = pos + 12 + length
        if end > n:
            return (f"truncated PNG (the file ends inside its {name} chunk at byte {pos:,}: "
                    f"it has {n:,} bytes, the chunk ends at byte {end:,})")
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"corrupt PNG (CRC mismatch in its {name} chunk at byte {pos:,})"
        if kind == b"IEND":
            return None
        pos = end
    return f"truncated PNG (no IEND chunk: the file ends after {n:,} bytes)"


def _bmp_truncation(data: bytes) -> str | None:
    """A BMP shorter than its header says its uncompressed pixels need, else None."""
    n = len(data)
    offset, header = struct.unpack("<II", data[10:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack("<HHHH", data[18:26])
        compression = 0
    elif header >= 40 and n >= 34:
        width, height, _, bpp, compression = struct.unpack("<iiHHI", data[18:34])
    else:
        return None
    if compression not in (0, 3, 6) or width <= 0 or bpp not in (1, 4, 8, 16, 24, 32):
        return None  # compressed (RLE, JPEG, PNG inside) or odd: the decoder's verdict stands
    need = offset + (width * bpp + 31) // 32 * 4 * abs(height)
    if n < need:
        return (f"truncated BMP ({width}x{abs(height)} at {bpp} bits per pixel needs {need:,} bytes, "
                f"the file has {n:,})")
    return None
