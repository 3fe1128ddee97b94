"""Reading artists' images for watermarking and scanning (Qt-free; Pillow + numpy only).

Everything a user may drop on the app goes through here: PNG (8/16-bit, palette, alpha), JPEG (CMYK,
progressive, EXIF orientation, camera MPO), WebP, TIFF, BMP, greyscale, 64 px to 100+ megapixels.
Failures become `ImageLoadError` with a reason a person can act on. Input files are only ever read.
Writing and the file-system helpers live in `image_encode`; its public names are re-exported here,
so callers import everything from `image_io`.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from gwm_desktop.core.image_encode import (
    IMAGE_EXTENSIONS,
    EncodeOptions,
    decode_bytes,
    dpi_for_output,
    encode_image,
    encode_png16,
    exif_for_output,
    iter_image_files,
    output_extension,
    output_format,
    output_names,
    output_path_for,
    to_uint8,
    webp_is_lossless,
)
from gwm_desktop.core.loaded_image import LoadedImage

__all__ = [
    "IMAGE_EXTENSIONS", "EncodeOptions", "ImageLoadError", "LoadedImage", "centred_square", "decode_bytes",
    "encode_image", "encode_png16", "iter_image_files", "load_image", "load_image_bytes", "load_luma_resized",
    "load_rgb_resized", "load_thumbnail", "output_extension", "output_format", "output_names", "output_path_for",
    "probe_image", "resize_frame", "to_rgb8",
]

DEFAULT_MAX_PIXELS = 250_000_000
# Only plugins for real picture formats: never EPS/PDF (EPS would run Ghostscript on a stranger's file).
_OPEN_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "DIB", "GIF", "AVIF", "PPM", "TGA", "QOI", "JPEG2000")
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"), (b"RIFF", "WEBP"),
)
# numpy views that undo an EXIF orientation: writing the stored image into `view(display)` leaves
# `display` upright without a second whole-canvas copy.
_UNDO_ORIENTATION = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, 1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, -1),
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BAND_BYTES = 64 << 20
_PIXEL_LIMIT_LOCK = threading.Lock()  # Pillow's limit is a module global; set it per call, one at a time


class ImageLoadError(Exception):
    """Clear, user-readable reason why a file cannot be protected (e.g. 'truncated JPEG file')."""


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode an image file for watermarking; raises ImageLoadError with a readable reason."""
    path = Path(path)
    with _open(path, max_pixels) as image:
        return _decode(image, path, path)


def load_image_bytes(data: bytes, name: str = "<memory>", max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Like `load_image` for encoded bytes, at full precision (used to verify 16-bit output exactly)."""
    with _open(data, max_pixels) as image:
        return _decode(image, data, Path(name))


def probe_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) after EXIF orientation without decoding pixels; raises ImageLoadError."""
    with _open(Path(path), max_pixels) as image:
        width, height = image.size
        return (height, width) if _orientation(image, cheap=True) in (5, 6, 7, 8) else (width, height)


def centred_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(width, height) -> the (left, top, right, bottom) box of the centred square of the shorter side:
    what an isotropic model's detector reads."""
    side = min(size)
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    return left, top, left + side, top + side


def load_rgb_resized(path: str | Path, size: tuple[int, int], centre_square: bool = False) -> np.ndarray:
    """(h, w, 3) uint8 upright image stretched to exactly `size` = (w, h), alpha dropped.

    Fast for the scanner: JPEGs are decoded at a reduced DCT scale (Image.draft) close to `size`, then
    Lanczos-resampled; 16-bit sources are scaled (>> 8), not clipped. ``centre_square``: the centred
    square of the shorter side is what is resized (an isotropic model's frame), never stretched.
    """
    return _load_resized(Path(path), size, centre_square, "RGB")


def load_luma_resized(path: str | Path, size: tuple[int, int], centre_square: bool = False) -> np.ndarray:
    """(h, w) uint8 luma (ITU-R 601: the detector's ``spectrum.luma`` weights) read as ``load_rgb_resized``
    reads colour: all the scanner needs (the watermark is grey). A colour JPEG is decoded to its luma
    channel alone, and one channel is resized instead of three: about half the cost of a colour read."""
    return _load_resized(Path(path), size, centre_square, "L")


def _load_resized(path: Path, size: tuple[int, int], centre_square: bool, mode: str) -> np.ndarray:
    with _open(path, DEFAULT_MAX_PIXELS) as image:
        orientation = _orientation(image, cheap=True)
        wanted = size if orientation < 5 else (size[1], size[0])
        if centre_square:  # decode with the shorter side >= the frame
            scale = max(wanted) / max(1, min(image.size))
            wanted = (math.ceil(image.width * scale), math.ceil(image.height * scale))
        if image.format in ("JPEG", "MPO"):
            image.draft(mode, wanted)  # decode at 1/2, 1/4 or 1/8 scale, still >= wanted (and "L": luma only)
        _load_pixels(image)
        frame = image if image.mode == mode == "L" else _rgb8_image(image, keep_alpha=False)
        frame = frame if frame.mode == mode else frame.convert(mode)
        if orientation in _TRANSPOSE:
            frame = frame.transpose(_TRANSPOSE[orientation])
        return np.asarray(resize_frame(frame, size, centre_square))


def resize_frame(image: Image.Image, size: tuple[int, int], centre_square: bool = False) -> Image.Image:
    """``image`` Lanczos-resampled to ``size`` (its centred square of the shorter side with
    ``centre_square``); unchanged when it is that already. The scanner's resize, which ``gwm eval`` shares."""
    box = centred_square(image.size) if centre_square else None
    if image.size == tuple(size) and (box is None or box == (0, 0, *image.size)):
        return image
    return image.resize(tuple(size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def load_thumbnail(path: str | Path, max_side: int) -> Image.Image:
    """Upright RGB or RGBA thumbnail no larger than max_side on either side (fast JPEG draft decode)."""
    with _open(Path(path), DEFAULT_MAX_PIXELS) as image:
        orientation = _orientation(image, cheap=True)
        if image.format in ("JPEG", "MPO"):
            image.draft(None, (max_side, max_side))
        _load_pixels(image)
        thumb = _rgb8_image(image, keep_alpha=True)
        thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        return thumb.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else thumb


def to_rgb8(image_or_array: Image.Image | np.ndarray) -> Image.Image:
    """8-bit RGB Pillow image for metrics. 16-bit data is scaled (>> 8); Pillow's own I;16->RGB clips."""
    if isinstance(image_or_array, Image.Image):
        return _rgb8_image(image_or_array, keep_alpha=False)
    array = to_uint8(np.asarray(image_or_array))
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]))


# --- internals -------------------------------------------------------------------------------------


def _open(source: Path | bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) with clear errors; rejects animations and images over max_pixels."""
    try:
        if isinstance(source, Path) and source.is_dir():
            raise ImageLoadError("this is a folder, not an image file")
        if (source.stat().st_size if isinstance(source, Path) else len(source)) == 0:
            raise ImageLoadError("empty file (0 bytes)")
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except PermissionError:
        raise ImageLoadError("permission denied: the file cannot be read") from None
    except OSError as error:
        raise ImageLoadError(f"cannot read the file ({error.strerror or error})") from None
    try:
        image = _pillow_open(source, max_pixels, _OPEN_FORMATS)
    except Image.DecompressionBombError:
        raise ImageLoadError(f"image is too large (over {max_pixels / 1e6:.0f} megapixels)") from None
    except PermissionError:
        raise ImageLoadError("permission denied: the file cannot be read") from None
    except (OSError, SyntaxError, ValueError, EOFError):  # includes UnidentifiedImageError
        raise ImageLoadError(_describe_unreadable(source)) from None
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageLoadError(
                f"image is too large: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                f"the limit is {max_pixels / 1e6:.0f}"
            )
        if width == 0 or height == 0:
            raise ImageLoadError("image has no pixels (zero width or height)")
        frames = getattr(image, "n_frames", 1) if image.format != "MPO" else 1  # MPO: photo + preview
        if frames > 1 and image.format == "TIFF":
            raise ImageLoadError(f"multi-page TIFF with {frames} pages is not supported: save each page separately")
        if frames > 1:
            raise ImageLoadError(f"animated image with {frames} frames is not supported: only still images can be protected")
    except ImageLoadError:
        image.close()
        raise
    except Exception as error:  # n_frames walks the whole file and may hit damage
        image.close()
        raise ImageLoadError(f"corrupt {image.format} file ({error})") from None
    return image


def _pillow_open(source: Path | bytes, max_pixels: int, formats: tuple[str, ...]) -> Image.Image:
    """Image.open under a per-call pixel limit: Pillow's limit is a module global, so calls take turns."""
    Image.init()  # registers every plugin, so `formats` can name them
    with _PIXEL_LIMIT_LOCK:
        previous_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we raise our own error
                stream = source if isinstance(source, Path) else io.BytesIO(source)
                return Image.open(stream, formats=[name for name in formats if name in Image.OPEN])
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit


def _describe_unreadable(source: Path | bytes) -> str:
    """Why Pillow could not identify the file, guessed from its first bytes."""
    try:
        with open(source, "rb") if isinstance(source, Path) else io.BytesIO(source) as stream:
            head = stream.read(1024)
    except OSError:
        return "the file cannot be read"
    for signature, name in _SIGNATURES:
        if head.startswith(signature) and (name != "WEBP" or head[8:12] == b"WEBP"):
            return f"corrupt {name} file: it starts like a {name} but its header is damaged"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "not an image (looks like a web page saved as HTML)"
    if head.startswith(b"%PDF"):
        return "not an image (looks like a PDF document)"
    if head.startswith(b"PK\x03\x04"):
        return "not an image (looks like a ZIP archive)"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "not an image (looks like text)"
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 3:  # only a multi-byte character cut at the end
                return "not an image (looks like text)"
    return "not an image, or an unsupported or corrupt image format"


def _load_pixels(image: Image.Image) -> None:
    """Decode pixel data, turning decoder failures into readable reasons (never LOAD_TRUNCATED_IMAGES)."""
    fmt = image.format or "image"
    try:
        image.load()
    except MemoryError:
        raise ImageLoadError("not enough memory to open this image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        text = str(error).lower()
        if isinstance(error, EOFError) or "truncated" in text or "premature end" in text:
            raise ImageLoadError(f"truncated {fmt} file: it ends early (incomplete download or copy?)") from None
        raise ImageLoadError(f"corrupt {fmt} file ({error})") from None


def _orientation(image: Image.Image, cheap: bool = False) -> int:
    if cheap and image.format == "PNG" and "exif" not in image.info:
        return 1  # PNG.getexif() would decode the whole image to look for a late eXIf chunk
    try:
        value = image.getexif().get(274, 1)
    except Exception:
        return 1  # damaged EXIF must not block an otherwise good picture
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _swap_rawmode(rawmode: str) -> str:
    """Rawmode that unpacks the *other* byte of each 16-bit sample (Pillow keeps only the high one)."""
    native = "L" if np.little_endian else "B"
    order = {"L": "B", "B": "L", "N": {"L": "B", "B": "L"}[native]}[rawmode[-1]]
    return rawmode[:-1] + order


def _colour16_rawmode(image: Image.Image) -> str | None:
    """'RGB;16B'-style rawmode when Pillow is about to reduce a 16-bit image to 8 bits per sample
    (16-bit RGB(A), and 16-bit grey+alpha PNG, which Pillow reads as 8-bit RGBA from 'LA;16B')."""
    if image.mode not in ("RGB", "RGBA") or len(image.tile) == 0:
        return None
    args = image.tile[0].args
    rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
    return rawmode if isinstance(rawmode, str) and rawmode[-3:] in ("16B", "16L", "16N") else None


def _reread(source: Path | bytes, fmt: str, rawmode: str, pixels: int) -> Image.Image:
    """Decode the same file again with another rawmode: the same bytes, unpacked differently. For
    'RGB;16B' -> 'RGB;16L' that yields the low byte of every sample; for 'LA;16B' -> 'RGBA' the four
    bytes grey-high, grey-low, alpha-high, alpha-low."""
    image = _pillow_open(source, pixels, (fmt,))
    image.tile = [tile._replace(args=(rawmode,) + tuple(tile.args[1:])) if isinstance(tile.args, tuple)
                  else tile._replace(args=rawmode) for tile in image.tile]
    _load_pixels(image)
    return image


def _to_rgb_mode(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert 8-bit colour modes to RGB/RGBA; CMYK through its ICC profile when it has one."""
    mode = image.mode
    if mode == "CMYK":
        if icc:
            try:
                return ImageCms.profileToProfile(
                    image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB"
                )
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass  # broken or mismatched profile: fall back to Pillow's plain conversion
        return image.convert("RGB")
    if mode in ("RGB", "RGBA"):
        return image.convert("RGBA") if mode == "RGB" and "transparency" in image.info else image
    has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
    try:
        return image.convert("RGBA" if has_alpha else "RGB")
    except (ValueError, OSError):
        raise ImageLoadError(f"unsupported colour mode {mode}") from None


def _grey_or_colour(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bool]:
    """(image in L, LA, I;16*, I, RGB or RGBA mode, is_grey)."""
    mode = image.mode
    if mode == "F":
        raise ImageLoadError("32-bit floating-point images are not supported: export as 8 or 16 bits per channel")
    if mode.startswith("I") or mode in ("L", "LA"):
        return (image.convert("LA") if mode == "L" and "transparency" in image.info else image), True
    if mode in ("1", "La"):
        return image.convert("L" if mode == "1" else "LA"), True
    return _to_rgb_mode(image, icc), False


def _decode(image: Image.Image, source: Path | bytes, path: Path) -> LoadedImage:
    fmt, source_mode = image.format or "", image.mode
    rawmode16 = _colour16_rawmode(image)  # must be read before load() consumes the tile list
    _load_pixels(image)  # before EXIF: PNG may keep its eXIf chunk after the pixel data
    orientation = _orientation(image)
    icc = image.info.get("icc_profile") or None
    packed_la16 = rawmode16 == "LA;16B"
    low = None
    if rawmode16:
        other = "RGBA" if packed_la16 else _swap_rawmode(rawmode16)
        low = _reread(source, fmt, other, image.width * image.height)
    pixels, is_grey = (low, True) if packed_la16 else _grey_or_colour(image, icc)
    if packed_la16:
        source_mode, low = "LA", None
    if low is not None and low.mode != pixels.mode:
        low = low.convert(pixels.mode)  # 16-bit RGB with a tRNS colour: alpha becomes 0 or 65535
    sixteen = rawmode16 is not None or pixels.mode.startswith("I")
    space = icc[16:20] if icc and len(icc) >= 20 else b""
    if space not in (b"RGB ", b"GRAY") or (space == b"GRAY") != is_grey:
        icc = None  # e.g. a CMYK profile no longer describes the converted RGB pixels
    rgb, alpha = _to_arrays(pixels, low, sixteen, orientation, packed_la16)
    if low is not None:
        low.close()
    dpi = dpi_for_output(image.info.get("dpi"), swap=orientation >= 5)
    return LoadedImage(
        path=path, format=fmt, rgb=rgb, alpha=alpha, bit_depth=16 if sixteen else 8, is_grey=is_grey,
        icc_profile=icc, exif=exif_for_output(image, orientation), source_mode=source_mode, dpi=dpi,
        webp_lossless=fmt == "WEBP" and webp_is_lossless(source),
        tiff_compression=image.info.get("compression") if fmt == "TIFF" else None,
    )


def _to_arrays(
    pixels: Image.Image, low: Image.Image | None, sixteen: bool, orientation: int, packed_la16: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Copy decoded pixels band by band into upright (H, W, 3) rgb and (H, W) alpha arrays."""
    width, height = pixels.size
    has_alpha = pixels.mode in ("LA", "RGBA")
    dtype = np.uint16 if sixteen else np.uint8
    shape = (height, width) if orientation < 5 else (width, height)
    rgb = np.empty((*shape, 3), dtype=dtype)
    alpha = np.empty(shape, dtype=dtype) if has_alpha else None
    rgb_view = _UNDO_ORIENTATION[orientation](rgb)
    alpha_view = _UNDO_ORIENTATION[orientation](alpha) if alpha is not None else None
    colours = 1 if pixels.mode in ("L", "LA") or pixels.mode.startswith("I") or packed_la16 else 3
    rows = max(1, _BAND_BYTES // (width * 8))
    for y0 in range(0, height, rows):
        box = (0, y0, width, min(height, y0 + rows))
        band = np.asarray(pixels.crop(box))
        if pixels.mode == "I":
            band = np.clip(band, 0, 65535)
        if low is not None:
            band = (band.astype(np.uint16) << 8) | np.asarray(low.crop(box))
        elif packed_la16:  # bytes: grey high, grey low, alpha high, alpha low
            band = (band[..., 0::2].astype(np.uint16) << 8) | band[..., 1::2]
        if band.ndim == 2:
            band = band[..., None]
        rgb_view[y0 : box[3]] = band[..., :colours]
        if alpha_view is not None:
            alpha_view[y0 : box[3]] = band[..., -1]
    return rgb, alpha


def _rgb8_image(image: Image.Image, keep_alpha: bool) -> Image.Image:
    """8-bit RGB (or RGBA when keep_alpha and present) view of any decoded Pillow image."""
    if image.mode.startswith("I"):
        grey = np.asarray(image)
        grey = np.clip(grey, 0, 65535).astype(np.uint16) if image.mode == "I" else grey.astype(np.uint16)
        return Image.fromarray(to_uint8(grey)).convert("RGB")
    if image.mode == "F":
        raise ImageLoadError("32-bit floating-point images are not supported: export as 8 or 16 bits per channel")
    converted = _to_rgb_mode(image, image.info.get("icc_profile"))
    if converted.mode == "RGBA" and not keep_alpha:
        return converted.convert("RGB")
    return converted
