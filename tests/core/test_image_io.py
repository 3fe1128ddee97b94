"""What artists rely on from image I/O: every kind of picture loads upright with its transparency, bit
depth and metadata; writing keeps them; broken files fail with a reason a person understands; the
original is never touched and no partial output is ever left behind."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from gwm_desktop.core import image_encode
from gwm_desktop.core.image_io import (
    EncodeOptions,
    ImageLoadError,
    LoadedImage,
    decode_bytes,
    encode_image,
    encode_png16,
    iter_image_files,
    load_image,
    load_image_bytes,
    load_rgb_resized,
    load_thumbnail,
    output_extension,
    output_format,
    output_path_for,
    probe_image,
    to_rgb8,
)
from tests.fixtures.bad_batch import (
    ARTIST,
    BAD_FILES,
    GOOD_SIZES,
    exif_bytes,
    make_mixed_batch,
    photo_like_u8,
    photo_like_u16,
    soft_alpha,
    srgb_profile,
)

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


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    make_mixed_batch(folder)
    return folder


def _exif(data: bytes | None) -> Image.Exif:
    exif = Image.Exif()
    if data:
        exif.load(data)
    return exif


def _watermarked(loaded: LoadedImage) -> np.ndarray:
    """Stand-in for the watermark: a small signed pattern, equal on all channels of a grey image."""
    height, width = loaded.rgb.shape[:2]
    amplitude = 3 if loaded.bit_depth == 8 else 3 * 257
    y, x = np.mgrid[0:height, 0:width]
    delta = np.round(amplitude * np.sin(x * 0.7) * np.cos(y * 0.3)).astype(np.int32)[..., None]
    if not loaded.is_grey:
        delta = delta * np.array([1, -1, 1], dtype=np.int32)
    top = 255 if loaded.bit_depth == 8 else 65535
    return np.clip(loaded.rgb.astype(np.int32) + delta, 0, top).astype(loaded.rgb.dtype)


def _png_with_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))


# --- loading -------------------------------------------------------------------------------------


def test_batch_marks_every_file_good_or_bad(batch: Path) -> None:
    verdicts = make_mixed_batch(batch)
    assert {n for n, v in verdicts.items() if v == "good"} == set(GOOD_SIZES) == set(GOOD_PROPERTIES)
    assert {n for n, v in verdicts.items() if v == "bad"} == set(BAD_FILES) == set(BAD_REASONS)
    assert all((batch / name).is_file() for name in verdicts)


@pytest.mark.parametrize("name", sorted(GOOD_PROPERTIES))
def test_every_good_file_loads_with_its_size_alpha_and_depth(batch: Path, name: str) -> None:
    has_alpha, depth, grey, fmt = GOOD_PROPERTIES[name]
    loaded = load_image(batch / name)
    width, height = GOOD_SIZES[name]
    assert loaded.size == (width, height) == probe_image(batch / name)
    assert loaded.megapixels == pytest.approx(width * height / 1e6)
    assert loaded.rgb.shape == (height, width, 3)
    assert loaded.rgb.dtype == (np.uint16 if depth == 16 else np.uint8)
    assert loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable  # ready for torch.from_numpy
    assert (loaded.alpha is not None) == has_alpha
    if has_alpha:
        assert loaded.alpha.shape == (height, width) and loaded.alpha.dtype == loaded.rgb.dtype
    assert (loaded.bit_depth, loaded.is_grey, loaded.format) == (depth, grey, fmt)
    if grey:
        assert (loaded.rgb == loaded.rgb[..., :1]).all()
    assert loaded.rgb.std() > 5 * (257 if depth == 16 else 1)  # real content, not a blank canvas


def test_lossless_sources_load_bit_exact(batch: Path) -> None:
    grey16 = load_image(batch / "scan_grey16.png")
    assert (grey16.rgb[..., 0] == photo_like_u16(96, 128, seed=4, channels=1)[..., 0]).all()
    rgb16 = load_image(batch / "painting_rgb16.png")
    assert (rgb16.rgb == photo_like_u16(80, 100, seed=5)).all()
    # Pillow itself only sees the high byte of a 16-bit colour PNG; we must agree with it there.
    assert (rgb16.rgb >> 8 == np.asarray(Image.open(batch / "painting_rgb16.png"))).all()
    rgba = load_image(batch / "sketch_rgba.png")
    assert (rgba.rgb == photo_like_u8(128, 128, seed=7)).all()
    assert (rgba.alpha == soft_alpha(128, 128)).all()
    assert (load_image(batch / "ink_grey_alpha.png").alpha == soft_alpha(90, 120)).all()


def test_palette_transparency_becomes_the_alpha_channel(batch: Path) -> None:
    loaded = load_image(batch / "palette_transparent.png")
    expected = np.asarray(Image.open(batch / "palette_transparent.png").convert("RGBA"))
    assert (loaded.alpha == expected[..., 3]).all() and (loaded.rgb == expected[..., :3]).all()
    assert (loaded.alpha[:20, :20] == 0).all() and (loaded.alpha == 255).any()


def test_exif_orientation_is_applied_and_reset(batch: Path) -> None:
    loaded = load_image(batch / "progressive_rot6.jpg")
    assert loaded.size == (120, 160)
    red = np.array([230, 20, 20])
    # stored top-left corner: orientation 6 means "rotate 90 degrees clockwise to display" -> top-right
    assert np.abs(loaded.rgb[4:20, -20:-4].reshape(-1, 3).mean(0) - red).max() < 12
    assert np.abs(loaded.rgb[4:20, 4:20].reshape(-1, 3).mean(0) - red).max() > 60
    exif = _exif(loaded.exif)
    assert exif[0x0112] == 1 and exif[0x013B] == ARTIST
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_transpose(tmp_path: Path, orientation: int) -> None:
    pixels = np.dstack([photo_like_u8(30, 40, seed=orientation), soft_alpha(30, 40)])
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=exif_bytes(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGBA"))
    loaded = load_image(path)
    assert (loaded.rgb == expected[..., :3]).all() and (loaded.alpha == expected[..., 3]).all()
    assert probe_image(path) == loaded.size
    resized = load_rgb_resized(path, loaded.size)
    assert (resized == expected[..., :3]).all()
    thumb = load_thumbnail(path, 20)
    assert max(thumb.size) == 20 and (thumb.width > thumb.height) == (loaded.size[0] > loaded.size[1])


def test_cmyk_jpeg_becomes_rgb_and_drops_its_cmyk_profile(batch: Path, tmp_path: Path) -> None:
    loaded = load_image(batch / "print_cmyk.jpg")
    assert loaded.source_mode == "CMYK" and loaded.icc_profile is None
    assert np.abs(loaded.rgb.astype(int) - photo_like_u8(100, 150, seed=3)).mean() < 4
    # a CMYK profile must never be written next to RGB pixels
    fake_cmyk_profile = srgb_profile()[:16] + b"CMYK" + srgb_profile()[20:]
    path = tmp_path / "with_profile.jpg"
    Image.fromarray(photo_like_u8(40, 50)).convert("CMYK").save(path, icc_profile=fake_cmyk_profile)
    with_profile = load_image(path)
    assert with_profile.icc_profile is None and with_profile.rgb.shape == (40, 50, 3)
    assert b"CMYK" not in encode_image(with_profile.rgb, with_profile, EncodeOptions(format="png"))[:4096]


def test_camera_mpo_jpeg_is_a_still_photo_not_an_animation(tmp_path: Path) -> None:
    path = tmp_path / "camera.jpg"
    frames = [Image.fromarray(photo_like_u8(48, 64, seed=s)) for s in (1, 2)]
    frames[0].save(path, "MPO", save_all=True, append_images=frames[1:])
    loaded = load_image(path)
    assert loaded.format == "MPO" and loaded.size == (64, 48)
    assert output_format(loaded, EncodeOptions()) == "JPEG"


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_every_bad_file_fails_with_a_specific_reason(batch: Path, name: str) -> None:
    for reader in (load_image, lambda p: load_rgb_resized(p, (32, 32)), lambda p: load_thumbnail(p, 32)):
        with pytest.raises(ImageLoadError) as caught:
            reader(batch / name)
        assert BAD_REASONS[name] in str(caught.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<!DOCTYPE html><html><body>not a picture</body></html>", "web page"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (bytes(range(256)) * 8, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt PNG file"),
    ],
)
def test_other_non_images_are_named(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        load_image(path)


def test_missing_file_and_folder_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="folder"):
        probe_image(tmp_path)


def test_pixel_limit_is_per_call_and_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge_canvas.png"
    path.write_bytes(_png_with_header_only(20_000, 10_000))  # 200 MP header, no real pixel data
    global_limit = Image.MAX_IMAGE_PIXELS
    assert probe_image(path) == (20_000, 10_000)  # above Pillow's default limit, within ours
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(path, max_pixels=100_000_000)
    assert global_limit == Image.MAX_IMAGE_PIXELS


def test_source_files_are_never_modified(batch: Path) -> None:
    def fingerprint() -> dict[str, tuple[str, int]]:
        return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in batch.iterdir()}

    before = fingerprint()
    for name in GOOD_PROPERTIES:
        loaded = load_image(batch / name)
        encode_image(_watermarked(loaded), loaded, EncodeOptions(format="png"))
        load_rgb_resized(batch / name, (32, 32))
        load_thumbnail(batch / name, 32)
    for name in BAD_REASONS:
        with pytest.raises(ImageLoadError):
            load_image(batch / name)
    assert fingerprint() == before


# --- scanner and preview helpers -----------------------------------------------------------------


def test_load_rgb_resized_decodes_a_large_jpeg_at_reduced_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "large.jpg"
    base = Image.fromarray(photo_like_u8(150, 200, seed=40)).resize((4000, 3000), Image.Resampling.BICUBIC)
    base.save(path, quality=90, exif=exif_bytes(6))  # 12 MP, displayed as 3000x4000 portrait
    decoded_sizes: list[tuple[int, int]] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int]) -> object:
        result = original_draft(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fast = load_rgb_resized(path, (256, 320))
    assert fast.shape == (320, 256, 3) and fast.dtype == np.uint8
    assert decoded_sizes == [(500, 375)]  # 1/8 DCT scale, still larger than the target
    monkeypatch.undo()
    slow = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((256, 320), Image.Resampling.LANCZOS)
    assert np.abs(fast.astype(int) - np.asarray(slow)).mean() < 2.0


def test_scanner_and_thumbnails_scale_16_bit_instead_of_clipping(batch: Path) -> None:
    loaded = load_image(batch / "scan_grey16.png")
    small = load_rgb_resized(batch / "scan_grey16.png", loaded.size)
    assert (small == (loaded.rgb >> 8)).all()
    thumb = load_thumbnail(batch / "scan_grey16.png", 64)
    assert thumb.mode == "RGB" and max(thumb.size) == 64
    assert abs(np.asarray(thumb).mean() - (loaded.rgb >> 8).mean()) < 3
    assert load_thumbnail(batch / "sketch_rgba.png", 32).mode == "RGBA"
    assert load_thumbnail(batch / "progressive_rot6.jpg", 64).size == (48, 64)


def test_to_rgb8_scales_16_bit_values() -> None:
    values = np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16)
    expected = [0, 0, 1, 128, 255]
    assert np.asarray(to_rgb8(values))[0, :, 0].tolist() == expected
    assert np.asarray(to_rgb8(Image.fromarray(values)))[0, :, 1].tolist() == expected
    rgb16 = np.repeat(values[..., None], 3, axis=2)
    assert np.asarray(to_rgb8(rgb16))[0, :, 2].tolist() == expected


# --- encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["same", "png", "webp", "jpeg"])
@pytest.mark.parametrize("name", sorted(GOOD_PROPERTIES))
def test_encode_round_trip_keeps_alpha_depth_grey_and_metadata(batch: Path, name: str, fmt: str) -> None:
    loaded = load_image(batch / name)
    marked = _watermarked(loaded)
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
        exif = _exif(back.exif)
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
        assert _exif(back.exif)[0x013B] == ARTIST and back.dpi == pytest.approx((300.0, 300.0), abs=0.05)
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
    exif = _exif(loaded.exif)
    assert exif.get(0x0112, 1) == 1 and exif[0x013B] == ARTIST
    assert 0x0111 not in exif  # the file's own strip offsets must not leak into another file
    for fmt in ("same", "png"):
        back = load_image_bytes(encode_image(loaded.rgb, loaded, EncodeOptions(format=fmt)))
        assert back.size == (30, 40) and _exif(back.exif)[0x013B] == ARTIST
        assert _exif(back.exif).get(0x0112, 1) == 1
    # libtiff cannot write EXIF sub-IFDs into a compressed TIFF: the first-level tags still survive
    compressed = dataclasses.replace(load_image(batch / "scan.tif"), exif=exif_bytes(1))
    back = load_image_bytes(encode_image(compressed.rgb, compressed, EncodeOptions()))
    assert back.format == "TIFF" and _exif(back.exif)[0x013B] == ARTIST


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


# --- files and folders ---------------------------------------------------------------------------


def test_output_path_for_never_collides(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(b"original")
    assert output_path_for(source, tmp_path, "PNG") == tmp_path / "photo (1).png"  # never the input
    out = tmp_path / "out"
    out.mkdir()
    assert output_path_for(tmp_path / "photo.jpeg", out, "JPEG") == out / "photo.jpg"
    (out / "photo.png").write_bytes(b"earlier export")
    assert output_path_for(source, out, "PNG") == out / "photo (1).png"
    assert output_path_for(source, out, "PNG", taken={out / "PHOTO (1).PNG"}) == out / "photo (2).png"
    taken: set[Path] = set()
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        target = output_path_for(tmp_path / folder / "photo.png", out, "PNG", taken)
        assert target not in taken and not target.exists()
        taken.add(target)
    assert len(taken) == 3
    assert output_path_for(tmp_path / "ポートレート_é.webp", out, "PNG") == out / "ポートレート_é.png"


def test_iter_image_files_expands_folders_and_keeps_explicit_files(tmp_path: Path) -> None:
    root = tmp_path / "art"
    for relative in ("b.png", "a.JPG", "notes.txt", ".hidden.png", ".git/x.png", "sub/c.webp", "sub/d.tiff"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")
    odd = tmp_path / "export.xyz"
    odd.write_bytes(b"")
    missing = tmp_path / "gone.png"
    found = list(iter_image_files([root, odd, missing, root / "b.png"]))
    assert found == [root / "a.JPG", root / "b.png", root / "sub/c.webp", root / "sub/d.tiff", odd, missing]
    assert list(iter_image_files([str(root)], recursive=False)) == [root / "a.JPG", root / "b.png"]


def test_decode_bytes_returns_a_loaded_image() -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo_like_u8(10, 12)).save(buffer, "PNG")
    image = decode_bytes(buffer.getvalue())
    assert image.size == (12, 10) and image.mode == "RGB"


def test_symlink_loops_and_empty_folders_are_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "art"
    root.mkdir()
    (root / "a.png").write_bytes(b"")
    (root / "loop.png").symlink_to(root / "loop.png")  # a link to itself: resolve() raises on it
    (root / "sub").symlink_to(root, target_is_directory=True)  # a folder loop
    folder_named_png = tmp_path / "x.png"
    folder_named_png.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    found = list(iter_image_files([root, folder_named_png, empty, root / "loop.png"], empty_folders=True))
    assert found == [root / "a.png", root / "loop.png", folder_named_png, empty]
    assert list(iter_image_files([root, folder_named_png, empty])) == [root / "a.png", root / "loop.png"]
    with pytest.raises(ImageLoadError, match="cannot read the file"):
        load_image(root / "loop.png")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(folder_named_png)
    assert output_path_for(root / "loop.png", tmp_path / "out", "PNG") == tmp_path / "out" / "loop.png"
