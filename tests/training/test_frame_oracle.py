"""training.frame_oracle: the true frame it hands the scanner is the one the distortion drew."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.distortions import TRAINING_TRANSFORMS
from training.frame_oracle import parse_args, true_frame, true_shift


def portrait(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (300, 220, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("seed", range(4))
def test_a_random_crops_zoom_is_its_shorter_side_over_the_exports(seed: int) -> None:
    export = portrait(seed)
    cropped = TRAINING_TRANSFORMS["random_crop"](export)
    zoom, turn = true_frame(export, "random_crop")
    assert turn == 0.0 and zoom == pytest.approx(min(cropped.size) / min(export.size))
    assert 0.5 - 0.01 <= zoom <= 0.9 + 0.01


@pytest.mark.parametrize("seed", range(4))
def test_a_rotations_frame_is_its_kept_box_and_the_turn_against_pillows_sense(seed: int) -> None:
    """The same box the distortion keeps; the turn negated (Pillow turns counter-clockwise, the
    frame's y axis points down); a turn keeps less of the frame the larger it is."""
    export = portrait(seed)
    turned = TRAINING_TRANSFORMS["rotate5"](export)
    zoom, turn = true_frame(export, "rotate5")
    assert zoom == pytest.approx(min(turned.size) / min(export.size))
    assert 0 < abs(turn) <= 5


def test_the_turn_is_in_the_sense_the_scanner_turns_back() -> None:
    """Pillow's turn by a, undone by ``rotate_about_centre`` by ``true_frame``'s turn, restores the
    picture's centre; by the opposite sign it does not."""
    import torch
    import torch.nn.functional as F

    from gwm_desktop.core.spectrum import rotate_about_centre

    noise = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    smooth = F.interpolate(noise, size=(192, 192), mode="bicubic", align_corners=False).clamp(0, 1)
    export = Image.fromarray((smooth[0, 0].numpy() * 255).astype(np.uint8)).convert("RGB")
    angle = -true_frame(export, "rotate5")[1]
    turned = np.asarray(export.rotate(angle, resample=Image.Resampling.BICUBIC).convert("L"), dtype=np.float32) / 255
    original = np.asarray(export.convert("L"), dtype=np.float32) / 255
    errors = []
    for turn in (-angle, angle):
        back = rotate_about_centre(torch.from_numpy(turned)[None, None], torch.tensor([turn]))[0, 0].numpy()
        errors.append(float(np.abs(back - original)[64:128, 64:128].mean()))
    assert errors[0] < 0.3 * errors[1], errors


def test_a_bucket_only_moves_the_frame() -> None:
    assert true_frame(portrait(0), "bucket512") == (1.0, 0.0)


@pytest.mark.parametrize("size", [(600, 400), (400, 760)])
def test_a_buckets_shift_is_where_it_puts_the_exports_centre(size: tuple[int, int]) -> None:
    """The export's centre (the watermark's origin) found in the bucket, from the bucket's centre, in
    working pixels (256 for the bucket's 512)."""
    export = Image.new("RGB", size, "black")
    export.paste((255, 255, 255), (size[0] // 2 - 2, size[1] // 2 - 2, size[0] // 2 + 2, size[1] // 2 + 2))
    bucket = np.asarray(TRAINING_TRANSFORMS["bucket512"](export).convert("L"), dtype=np.float64)
    ys, xs = np.mgrid[:512, :512]
    centre = ((xs * bucket).sum() / bucket.sum(), (ys * bucket).sum() / bucket.sum())
    dx, dy = true_shift(export, "bucket512", 256)
    assert abs(dx) + abs(dy) > 10     # the drawn square is off the centre along the longer side
    assert dx == pytest.approx((centre[0] + 0.5 - 256) / 2, abs=0.5)
    assert dy == pytest.approx((centre[1] + 0.5 - 256) / 2, abs=0.5)
    assert true_shift(export, "random_crop", 256) is None


def test_arguments_default_to_the_balanced_exports_under_a_random_crop(tmp_path: Path) -> None:
    config = parse_args([str(tmp_path), "--condition", "rotate5"])
    assert (config.folder, config.group, config.condition, config.profile, config.fpr) == (
        tmp_path, "own_p0.05", "rotate5", "own", 0.01)
    with pytest.raises(SystemExit):
        parse_args([str(tmp_path), "--condition", "flip"])
