"""The output and file-system side of image I/O: formats, metadata carried over, encoding, finding
input files and naming outputs (writes go through `core.atomic`) (Qt-free; Pillow + numpy only).

`encode_image` turns the watermarked RGB array plus the untouched parts of the source (alpha, bit
depth, greyscale-ness, ICC, EXIF, dpi) into the bytes of the output file. The public names are
re-exported from `gwm_desktop.core.image_io`; import them from there.

Pillow 13 has no 16-bit RGB mode, so 16-bit colour PNGs are written by the small encoder below
(`encode_png16`); 16-bit greyscale goes through the same encoder for one tested path.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gwm_desktop.core.loaded_image import LoadedImage

__all__ = [
    "IMAGE_EXTENSIONS", "EncodeOptions", "decode_bytes", "dpi_for_output", "encode_image", "encode_png16",
    "exif_for_output", "iter_image_files", "output_extension", "output_format", "output_names", "output_path_for",
    "to_uint8", "webp_is_lossless",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
# Formats 'same' writes back as themselves; anything else (GIF, AVIF, PPM, ...) becomes PNG, because
# those formats either cannot be written by Pillow or would destroy the watermark (GIF's 256 colours).
_SAME_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "BMP"})
_EXPLICIT_FORMATS = {
    "png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF", "bmp": "BMP",
}
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_LOSSLESS_TIFF = frozenset({"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"})
_TIFF_KEPT_TAGS = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)
_EXIF_SUBIFDS = (0x8769, 0x8825)
_BAND_PIXELS = 1 << 22  # rows are processed in bands of ~4 M pixels to bound temporary memory


@dataclass
class EncodeOptions:
    """How to write the output file.

    format: 'same' (keep the source format where it can hold the result), 'png', 'jpeg' or 'webp'
        ('tiff' and 'bmp' are accepted too).
    jpeg_quality: 1-95+; JPEG is always written 4:4:4 (no chroma subsampling), because subsampling
        halves the colour resolution the watermark lives in.
    webp_quality: quality for lossy WebP.
    webp_lossless: None means "lossless only when the source is a lossless WebP" (a lossless original
        should not silently become lossy); True/False force it.
    keep_metadata: keep the ICC profile and EXIF (orientation reset to 1); False strips both.
    """

    format: str = "same"
    jpeg_quality: int = 95
    webp_quality: int = 95
    webp_lossless: bool | None = None
    keep_metadata: bool = True


def output_format(loaded: LoadedImage, options: EncodeOptions) -> str:
    """Pillow format name that `encode_image` will write for this image and these options.

    'same' keeps PNG/JPEG/WEBP/TIFF/BMP (camera MPO files count as JPEG) and maps everything else to
    PNG. A 16-bit colour TIFF becomes PNG, because Pillow cannot write 16-bit RGB TIFF and dropping to
    8 bits would silently lose the artist's precision.
    """
    requested = options.format.strip().lower()
    if requested != "same":
        if requested not in _EXPLICIT_FORMATS:
            raise ValueError(f"unknown output format {options.format!r}: use same, png, jpeg or webp")
        return _EXPLICIT_FORMATS[requested]
    source = "JPEG" if loaded.format == "MPO" else loaded.format
    if source not in _SAME_FORMATS or (source == "BMP" and loaded.alpha is not None):
        return "PNG"  # Pillow writes BMP alpha in a form it (and most apps) read back as opaque
    if source == "TIFF" and loaded.bit_depth == 16 and not (loaded.is_grey and loaded.alpha is None):
        return "PNG"
    return source


def output_extension(fmt: str) -> str:
    """File extension (with dot) for a Pillow format name returned by `output_format`."""
    try:
        return _EXTENSIONS[fmt.upper()]
    except KeyError:
        raise ValueError(f"no output extension for format {fmt!r}") from None


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by keeping the high byte (v >> 8), the same mapping Pillow uses when it reads a
    16-bit colour PNG, so verification against Pillow's decode is consistent. uint8 passes through."""
    if array.dtype == np.uint8:
        return array
    if array.dtype != np.uint16:
        raise TypeError(f"expected uint8 or uint16 pixels, got {array.dtype}")
    return (array >> 8).astype(np.uint8)


def encode_image(rgb: np.ndarray, loaded: LoadedImage, options: EncodeOptions) -> bytes:
    """Encode watermarked pixels as the bytes of the output file.

    rgb: (H, W, 3) array with the same shape and dtype as `loaded.rgb` (uint8 0-255 or uint16 0-65535).
    The source's alpha is re-attached bit-exactly; 16-bit stays 16-bit in PNG (and greyscale TIFF);
    greyscale sources are written as greyscale (luma of `rgb`) except in WebP, which has no grey mode.
    Raises ValueError when the combination cannot be written, e.g. an image with transparency to JPEG.
    """
    if rgb.shape != loaded.rgb.shape or rgb.dtype != loaded.rgb.dtype:
        raise ValueError(
            f"watermarked pixels are {rgb.shape} {rgb.dtype}, expected {loaded.rgb.shape} {loaded.rgb.dtype}"
        )
    fmt = output_format(loaded, options)
    alpha = loaded.alpha
    if alpha is not None and fmt in ("JPEG", "BMP"):
        raise ValueError(
            f"{fmt} cannot store transparency and this image has an alpha channel: "
            "choose PNG or WebP output (or 'same') to keep it"
        )
    sixteen = rgb.dtype == np.uint16 and (fmt == "PNG" or (fmt == "TIFF" and loaded.is_grey and alpha is None))
    if rgb.dtype == np.uint16 and not sixteen:
        rgb = to_uint8(rgb)
        alpha = None if alpha is None else to_uint8(alpha)
    grey = loaded.is_grey and fmt != "WEBP"
    pixels = _compose(rgb, alpha, grey)

    icc = loaded.icc_profile if options.keep_metadata else None
    if icc is not None and _icc_colour_space(icc) != ("GRAY" if grey else "RGB"):
        icc = None  # e.g. a grey profile on a WebP that had to be written as RGB
    exif = loaded.exif if options.keep_metadata else None
    dpi = loaded.dpi

    if sixteen and fmt == "PNG":
        return encode_png16(pixels, icc_profile=icc, exif=exif, dpi=dpi)
    image = Image.fromarray(pixels)
    params: dict[str, object] = {}
    if icc is not None and fmt != "BMP":
        params["icc_profile"] = icc
    if dpi is not None:
        params["dpi"] = dpi
    if fmt == "JPEG":
        params.update(quality=options.jpeg_quality, subsampling=0)
    elif fmt == "WEBP":
        lossless = loaded.webp_lossless if options.webp_lossless is None else options.webp_lossless
        params.update(quality=options.webp_quality, lossless=lossless, method=4, exact=True)
    elif fmt == "TIFF":
        compression = loaded.tiff_compression if loaded.tiff_compression in _LOSSLESS_TIFF else None
        params["compression"] = compression or "tiff_adobe_deflate"
        if exif is not None and params["compression"] != "raw":
            exif = _exif_without_subifds(exif)  # libtiff refuses EXIF sub-IFDs when compressing
    if exif is not None and fmt != "BMP":
        params["exif"] = exif
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def exif_for_output(image: Image.Image, orientation: int) -> bytes | None:
    """EXIF of an opened source to write back with the pixels already upright (Orientation 1).

    Always in the "Exif\\0\\0"-prefixed form every Pillow writer accepts; None when there is none.
    """
    try:
        exif = image.getexif()
        if image.format == "TIFF":  # TIFF 'EXIF' is the file's own IFD: keep only descriptive tags
            clean = Image.Exif()
            for tag in _TIFF_KEPT_TAGS:
                if tag in exif:
                    clean[tag] = exif[tag]
            for tag in _EXIF_SUBIFDS:
                if tag in exif and exif.get_ifd(tag):
                    clean[tag] = dict(exif.get_ifd(tag))
            return clean.tobytes() if len(clean) else None
        raw = image.info.get("exif")
        if not raw or not len(exif):
            return None
        if orientation == 1:
            return raw if raw.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + raw
        exif[274] = 1
        return exif.tobytes()
    except Exception:
        return None  # unreadable EXIF is dropped rather than failing the image


def dpi_for_output(value: tuple[float, float] | None, swap: bool) -> tuple[float, float] | None:
    """(x, y) dots per inch as floats, swapped for a 90-degree orientation; None when absent or bogus."""
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):  # absent, or a bogus tag value
        return None
    return None if x <= 0 or y <= 0 else (y, x) if swap else (x, y)


def _compose(rgb: np.ndarray, alpha: np.ndarray | None, grey: bool) -> np.ndarray:
    """(H, W[, C]) array in the layout of the written mode: L/LA (luma) or RGB/RGBA, same dtype."""
    if not grey and alpha is None:
        return np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    channels = (1 if grey else 3) + (alpha is not None)
    out = np.empty((height, width, channels), dtype=rgb.dtype)
    rows = max(1, _BAND_PIXELS // max(width, 1))
    for y0 in range(0, height, rows):
        band = rgb[y0 : y0 + rows]
        if grey:
            # ITU-R 601 luma with integer maths (as Pillow's RGB->L), so a grey input maps back exactly.
            wide = band.astype(np.uint32)
            out[y0 : y0 + rows, :, 0] = (wide[..., 0] * 299 + wide[..., 1] * 587 + wide[..., 2] * 114 + 500) // 1000
        else:
            out[y0 : y0 + rows, :, :3] = band
        if alpha is not None:
            out[y0 : y0 + rows, :, -1] = alpha[y0 : y0 + rows]
    return out[..., 0] if channels == 1 else out


def _icc_colour_space(profile: bytes) -> str:
    """Data colour space from the ICC header ('RGB', 'GRAY', 'CMYK', ...), '' when unreadable."""
    return profile[16:20].decode("ascii", "replace").strip() if len(profile) >= 20 else ""


def _exif_without_subifds(exif: bytes) -> bytes:
    """Keep only the first-level EXIF tags (artist, copyright, ...) for compressed TIFF output."""
    source = Image.Exif()
    source.load(exif)
    kept = Image.Exif()
    for tag, value in source.items():
        if tag not in (0x8769, 0x8825, 0xA005):  # Exif, GPS, Interop sub-IFD pointers
            kept[tag] = value
    return kept.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(
    pixels: np.ndarray,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> bytes:
    """Encode a 16-bit PNG. pixels: (H, W) grey, (H, W, 2) grey+alpha, (H, W, 3) RGB or (H, W, 4) RGBA,
    uint16. Rows use the PNG 'Up' filter and are compressed band by band to bound memory."""
    if pixels.dtype != np.uint16:
        raise TypeError(f"encode_png16 needs uint16 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if icc_profile:
        parts.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if dpi:
        per_metre = [max(1, round(value / 0.0254)) for value in dpi]
        parts.append(_png_chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1)))
    if exif:
        parts.append(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    compressor = zlib.compressobj(6)
    row_bytes = width * channels * 2
    previous = np.zeros(row_bytes, dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // max(width, 1))
    for y0 in range(0, height, rows):
        band = pixels[y0 : y0 + rows].astype(">u2").reshape(-1, width * channels).view(np.uint8)
        filtered = np.empty((band.shape[0], row_bytes + 1), dtype=np.uint8)
        filtered[:, 0] = 2  # 'Up': byte minus the byte above, modulo 256
        np.subtract(band[0], previous, out=filtered[0, 1:])
        np.subtract(band[1:], band[:-1], out=filtered[1:, 1:])
        previous = band[-1].copy()
        data = compressor.compress(filtered.tobytes())
        if data:
            parts.append(_png_chunk(b"IDAT", data))
    parts.append(_png_chunk(b"IDAT", compressor.flush()))
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


def decode_bytes(data: bytes) -> Image.Image:
    """Fully decoded Pillow image of encoded bytes, to verify what is about to be written."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _resolved_key(path: Path) -> str:
    """A comparable key for `path`: real path (no error on symlink loops), case-folded as on macOS/Windows."""
    return os.path.realpath(path).casefold()


def output_names(input_path: Path, out_dir: Path, fmt: str, taken: set[Path] | None = None) -> Iterator[Path]:
    """Output names for `input_path` in `out_dir`, best first: same name with the extension for `fmt`,
    then 'name (1).png', 'name (2).png', ...

    Never the input itself, a name that exists now, or a path in `taken` (compared case-insensitively).
    A name can still be taken by another process before it is written: hand the series to
    `atomic.write_new`, which takes the first name that is really free.
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    source = _resolved_key(input_path)
    taken_keys = {_resolved_key(Path(p)) for p in (taken or ())}
    stem, extension = input_path.stem, output_extension(fmt)
    counter = 0
    while True:
        name = f"{stem}{extension}" if counter == 0 else f"{stem} ({counter}){extension}"
        candidate = out_dir / name
        key = _resolved_key(candidate)
        if key != source and key not in taken_keys and not os.path.lexists(candidate):
            yield candidate
        counter += 1


def output_path_for(input_path: Path, out_dir: Path, fmt: str, taken: set[Path] | None = None) -> Path:
    """The first of `output_names`: where the output would go if nobody else writes there first."""
    return next(output_names(input_path, out_dir, fmt, taken))


def iter_image_files(inputs: Iterable[str | Path], recursive: bool = True,
                     empty_folders: bool = False) -> Iterator[Path]:
    """Files to process from command-line/drop inputs, in a stable order, each at most once.

    Folders expand to image-like files (sorted; hidden files and folders skipped). Explicit files are
    always yielded, whatever their extension, and missing paths too, so the caller reports each one.
    ``empty_folders``: also yield an explicit folder that holds no image (a batch job then reports
    it, e.g. a folder named 'x.png', instead of being silently empty). Symlink loops never stop the
    walk: such a path is yielded, and reading it fails for that file alone.
    """
    seen: set[str] = set()

    def fresh(path: Path) -> bool:
        key = os.path.realpath(path)
        if key in seen:
            return False
        seen.add(key)
        return True

    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            if fresh(path):
                yield path
            continue
        found = False
        for folder, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
            for name in sorted(filenames):
                candidate = Path(folder) / name
                if not name.startswith(".") and candidate.suffix.lower() in IMAGE_EXTENSIONS and fresh(candidate):
                    found = True
                    yield candidate
        if empty_folders and not found and fresh(path):
            yield path


def webp_is_lossless(source: Path | bytes) -> bool:
    """True when the WebP's image chunk is VP8L (lossless); walks the RIFF chunk headers only."""
    try:
        with open(source, "rb") if isinstance(source, Path) else io.BytesIO(source) as stream:
            header = stream.read(12)
            if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
                return False
            while chunk := stream.read(8):
                if len(chunk) < 8:
                    return False
                kind, length = chunk[:4], int.from_bytes(chunk[4:], "little")
                if kind in (b"VP8L", b"VP8 "):
                    return kind == b"VP8L"
                stream.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return False
    return False
