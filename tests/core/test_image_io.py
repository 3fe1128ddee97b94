"""What artists rely on from image I/O: every kind of picture loads upright with its transparency, bit
depth and metadata; writing keeps them; broken files fail with a reason a person understands; the
original is never touched and no partial output is ever left behind."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from gwm_desktop.core.image_io import (
    EncodeOptions,
    ImageLoadError,
    decode_bytes,
    encode_image,
    iter_image_files,
    load_image,
    load_luma_resized,
    load_rgb_resized,
    load_thumbnail,
    output_format,
    output_path_for,
    probe_image,
    to_rgb8,
)
from tests.core.image_cases import (
    BAD_REASONS,
    GOOD_PROPERTIES,
    exif_of,
    png_with_header_only,
    watermarked,
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
    exif = exif_of(loaded.exif)
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
    path.write_bytes(png_with_header_only(20_000, 10_000))  # 200 MP header, no real pixel data
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
        encode_image(watermarked(loaded), loaded, EncodeOptions(format="png"))
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


@pytest.mark.parametrize("name", sorted(GOOD_PROPERTIES))
def test_the_scanners_luma_read_is_the_luma_of_the_colour_read(batch: Path, name: str) -> None:
    """The scanner reads luma alone (``load_luma_resized``); it must be what the detector's ``luma`` makes
    of the colour read, to 8-bit rounding (twice: before and after the resize) and, in a colour JPEG,
    the decoder's own Y channel where RGB clips."""
    size = (40, 48)
    grey = load_luma_resized(batch / name, size, centre_square=True)
    rgb = load_rgb_resized(batch / name, size, centre_square=True).astype(np.float64)
    assert grey.shape == (48, 40) and grey.dtype == np.uint8
    expected = rgb @ np.array([0.299, 0.587, 0.114])
    difference = np.abs(grey - expected)
    assert difference.mean() < 0.75 and difference.max() <= 6, (difference.mean(), difference.max())


def test_a_colour_jpeg_is_decoded_to_its_luma_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo_like_u8(600, 800, seed=41)).save(path, quality=90)
    modes: list[str] = []
    original_load = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> object:
        result = original_load(self)
        modes.append(self.mode)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    assert load_luma_resized(path, (256, 256), centre_square=True).shape == (256, 256)
    assert modes and set(modes) == {"L"}


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
