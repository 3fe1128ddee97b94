"""Image encoding: every output format keeps alpha, depth, grey and metadata as the SPEC asks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from gwm_desktop.core import image_encode
from gwm_desktop.core.image_io import (
    EncodeOptions,
    decode_bytes,
    encode_image,
    encode_png16,
    load_image,
    load_image_bytes,
    output_extension,
    output_format,
)
from tests.core.image_cases import (
    GOOD_PROPERTIES,
    exif_of,
    watermarked,
)
from tests.fixtures.bad_batch import (
    ARTIST,
    exif_bytes,
    photo_like_u8,
    photo_like_u16,
    soft_alpha,
    srgb_profile,
)

# --- encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["same", "png", "webp", "jpeg"])
@pytest.mark.parametrize("name", sorted(GOOD_PROPERTIES))
def test_encode_round_trip_keeps_alpha_depth_grey_and_metadata(batch: Path, name: str, fmt: str) -> None:
    loaded = load_image(batch / name)
    marked = watermarked(loaded)
    options = EncodeOptions(format=fmt)
    if loaded.alpha is not None and fmt == "jpeg":
        with pytest.raises(ValueError, match="transparency"):
            encode_image(marked, loaded, options)
        return
    back = load_image_bytes(encode_image(marked, loaded, options))
    assert back.format == output_format(loaded, options)
    assert back.size == loaded.size
    if loaded.alpha is not None:
        assert back.alpha is not None and (back.alpha == loaded.alpha).all()
    if loaded.bit_depth == 16 and back.format == "PNG":
        assert back.bit_depth == 16
    if loaded.is_grey and back.format != "WEBP":
        assert back.is_grey
    if back.format in ("PNG", "TIFF", "BMP"):
        assert (back.rgb == marked).all()
    else:  # lossy; WebP is always 4:2:0, so the fixtures' colour grain costs it more than JPEG 4:4:4
        error = np.abs(back.rgb.astype(int) - image_encode.to_uint8(marked)).mean()
        assert error < (4 if back.format == "JPEG" else 6)
    if loaded.icc_profile is not None:
        assert back.icc_profile == loaded.icc_profile
    if loaded.exif is not None:
        exif = exif_of(back.exif)
        assert exif.get(0x0112, 1) == 1 and exif[0x013B] == ARTIST


@pytest.mark.parametrize("fmt", ["same", "png", "webp", "jpeg"])
def test_metadata_can_be_stripped(batch: Path, fmt: str) -> None:
    loaded = load_image(batch / "photo_rgb.jpg")
    assert loaded.icc_profile is not None and loaded.exif is not None
    back = load_image_bytes(encode_image(loaded.rgb, loaded, EncodeOptions(format=fmt, keep_metadata=False)))
    assert back.icc_profile is None and back.exif is None


def test_jpeg_is_written_without_chroma_subsampling_at_the_chosen_quality(batch: Path) -> None:
    loaded = load_image(batch / "photo_rgb.jpg")
    high = encode_image(loaded.rgb, loaded, EncodeOptions(format="jpeg"))
    written = decode_bytes(high)
    assert written.format == "JPEG" and JpegImagePlugin.get_sampling(written) == 0
    assert all(layer[1:3] == (1, 1) for layer in written.layer)
    low = encode_image(loaded.rgb, loaded, EncodeOptions(format="jpeg", jpeg_quality=60))
    assert len(low) < len(high)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])  # grey, grey+alpha, RGB, RGBA
def test_16_bit_png_is_exact_for_every_layout(channels: int) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 65536, (37, 29, channels), dtype=np.uint16)
    pixels[0, :5, 0] = [0, 255, 256, 65280, 65535]
    icc = srgb_profile()  # once: the profile's header carries its creation time, to the second
    data = encode_png16(pixels, icc_profile=icc if channels > 2 else None, exif=exif_bytes(1),
                        dpi=(300.0, 300.0))
    colour = pixels[..., :3] if channels > 2 else np.repeat(pixels[..., :1], 3, axis=2)
    alpha = pixels[..., -1] if channels in (2, 4) else None
    for _ in range(2):  # what we wrote, then what `encode_image` writes back from it with 'same'
        back = load_image_bytes(data)
        assert (back.bit_depth, back.is_grey, back.format) == (16, channels <= 2, "PNG")
        assert (back.rgb == colour).all()
        assert (back.alpha is None) if alpha is None else (back.alpha == alpha).all()
        assert exif_of(back.exif)[0x013B] == ARTIST and back.dpi == pytest.approx((300.0, 300.0), abs=0.05)
        if channels > 2:
            assert back.icc_profile == icc
            assert (np.asarray(decode_bytes(data)) == (pixels >> 8)).all()  # an independent decoder agrees
        data = encode_image(back.rgb, back, EncodeOptions())


def test_bmp_output_never_silently_drops_transparency(batch: Path) -> None:
    loaded = load_image(batch / "sketch_rgba.png")
    with pytest.raises(ValueError, match="BMP cannot store transparency"):
        encode_image(loaded.rgb, loaded, EncodeOptions(format="bmp"))
    assert output_format(dataclasses.replace(loaded, format="BMP"), EncodeOptions()) == "PNG"


def test_16_bit_tiff_keeps_its_precision(tmp_path: Path) -> None:
    grey = photo_like_u16(40, 60, seed=8, channels=1)[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey16.tif", compression="tiff_adobe_deflate")
    loaded = load_image(tmp_path / "grey16.tif")
    assert output_format(loaded, EncodeOptions()) == "TIFF"
    back = load_image_bytes(encode_image(loaded.rgb, loaded, EncodeOptions()))
    assert back.format == "TIFF" and back.is_grey and (back.rgb[..., 0] == grey).all()

    tifffile = pytest.importorskip("tifffile")  # Pillow cannot write 16-bit RGB TIFF; tifffile can
    colour = photo_like_u16(40, 60, seed=9)
    tifffile.imwrite(tmp_path / "rgb16.tif", colour, photometric="rgb", compression="zlib")
    loaded = load_image(tmp_path / "rgb16.tif")
    assert loaded.bit_depth == 16 and (loaded.rgb == colour).all()
    assert output_format(loaded, EncodeOptions()) == "PNG"  # documented: keeps 16 bits as PNG
    assert (load_image_bytes(encode_image(loaded.rgb, loaded, EncodeOptions())).rgb == colour).all()


def test_tiff_orientation_and_descriptive_tags_survive(batch: Path, tmp_path: Path) -> None:
    pixels = photo_like_u8(30, 40, seed=21)
    Image.fromarray(pixels).save(tmp_path / "scan.tif", exif=exif_bytes(6))  # uncompressed TIFF
    loaded = load_image(tmp_path / "scan.tif")
    assert loaded.size == (30, 40) and (loaded.rgb == np.rot90(pixels, -1)).all()
    exif = exif_of(loaded.exif)
    assert exif.get(0x0112, 1) == 1 and exif[0x013B] == ARTIST
    assert 0x0111 not in exif  # the file's own strip offsets must not leak into another file
    for fmt in ("same", "png"):
        back = load_image_bytes(encode_image(loaded.rgb, loaded, EncodeOptions(format=fmt)))
        assert back.size == (30, 40) and exif_of(back.exif)[0x013B] == ARTIST
        assert exif_of(back.exif).get(0x0112, 1) == 1
    # libtiff cannot write EXIF sub-IFDs into a compressed TIFF: the first-level tags still survive
    compressed = dataclasses.replace(load_image(batch / "scan.tif"), exif=exif_bytes(1))
    back = load_image_bytes(encode_image(compressed.rgb, compressed, EncodeOptions()))
    assert back.format == "TIFF" and exif_of(back.exif)[0x013B] == ARTIST


def test_lossless_webp_stays_lossless(tmp_path: Path) -> None:
    pixels = np.dstack([photo_like_u8(50, 70, seed=12), soft_alpha(50, 70)])
    Image.fromarray(pixels).save(tmp_path / "sticker.webp", lossless=True)
    loaded = load_image(tmp_path / "sticker.webp")
    assert loaded.webp_lossless
    data = encode_image(loaded.rgb, loaded, EncodeOptions())
    assert image_encode.webp_is_lossless(data)
    back = load_image_bytes(data)
    assert (back.rgb == loaded.rgb).all() and (back.alpha == pixels[..., 3]).all()
    visible = pixels[..., 3] > 0  # libwebp may zero the colour under fully transparent pixels
    assert (loaded.rgb[visible] == pixels[..., :3][visible]).all()


def test_encode_refuses_pixels_of_the_wrong_shape_or_type(batch: Path) -> None:
    loaded = load_image(batch / "photo_rgb.jpg")
    with pytest.raises(ValueError, match="expected"):
        encode_image(loaded.rgb[:-1], loaded, EncodeOptions())
    with pytest.raises(ValueError, match="expected"):
        encode_image(loaded.rgb.astype(np.float32), loaded, EncodeOptions())
    with pytest.raises(ValueError, match="unknown output format"):
        encode_image(loaded.rgb, loaded, EncodeOptions(format="gif"))


def test_output_formats_and_extensions(batch: Path, tmp_path: Path) -> None:
    same = EncodeOptions()
    assert output_format(load_image(batch / "drawing.bmp"), same) == "BMP"
    assert output_format(load_image(batch / "scan.tif"), same) == "TIFF"
    assert output_format(load_image(batch / "photo.webp"), same) == "WEBP"
    assert output_format(load_image(batch / "photo.webp"), EncodeOptions(format="JPG")) == "JPEG"
    still_gif = tmp_path / "still.gif"
    Image.fromarray(photo_like_u8(20, 20)).convert("P").save(still_gif)
    assert output_format(load_image(still_gif), same) == "PNG"  # 256 colours would erase the watermark
    assert [output_extension(f) for f in ("PNG", "JPEG", "WEBP", "TIFF", "BMP")] == [
        ".png", ".jpg", ".webp", ".tif", ".bmp",
    ]


