"""Shared cases for the image I/O tests: the mixed batch's expected properties and small helpers."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

from gwm_desktop.core.image_io import LoadedImage

# name -> (has alpha, bit depth, greyscale, Pillow format)
GOOD_PROPERTIES = {
    "photo_rgb.jpg": (False, 8, False, "JPEG"),
    "progressive_rot6.jpg": (False, 8, False, "JPEG"),
    "print_cmyk.jpg": (False, 8, False, "JPEG"),
    "scan_grey16.png": (False, 16, True, "PNG"),
    "painting_rgb16.png": (False, 16, False, "PNG"),
    "palette_transparent.png": (True, 8, False, "PNG"),
    "sketch_rgba.png": (True, 8, False, "PNG"),
    "ink_grey_alpha.png": (True, 8, True, "PNG"),
    "photo.webp": (False, 8, False, "WEBP"),
    "scan.tif": (False, 8, False, "TIFF"),
    "drawing.bmp": (False, 8, False, "BMP"),
    "ポートレート_é.png": (False, 8, False, "PNG"),
    "icon_64.png": (True, 8, False, "PNG"),
}
BAD_REASONS = {
    "corrupt.jpg": "corrupt JPEG file",
    "truncated.png": "truncated PNG file",
    "truncated.jpg": "truncated JPEG file",
    "empty.png": "empty file (0 bytes)",
    "notes.png": "not an image (looks like text)",
    "animated.gif": "animated image with 3 frames is not supported",
    "animated.webp": "animated image with 4 frames is not supported",
}


def exif_of(data: bytes | None) -> Image.Exif:
    exif = Image.Exif()
    if data:
        exif.load(data)
    return exif


def watermarked(loaded: LoadedImage) -> np.ndarray:
    """Stand-in for the watermark: a small signed pattern, equal on all channels of a grey image."""
    height, width = loaded.rgb.shape[:2]
    amplitude = 3 if loaded.bit_depth == 8 else 3 * 257
    y, x = np.mgrid[0:height, 0:width]
    delta = np.round(amplitude * np.sin(x * 0.7) * np.cos(y * 0.3)).astype(np.int32)[..., None]
    if not loaded.is_grey:
        delta = delta * np.array([1, -1, 1], dtype=np.int32)
    top = 255 if loaded.bit_depth == 8 else 65535
    return np.clip(loaded.rgb.astype(np.int32) + delta, 0, top).astype(loaded.rgb.dtype)


def png_with_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))


