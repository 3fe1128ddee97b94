"""training.frame_oracle: the true frame it hands the scanner is the one the distortion drew."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.distortions import TRAINING_TRANSFORMS
from training.frame_oracle import parse_args, true_frame


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


def test_arguments_default_to_the_balanced_exports_under_a_random_crop(tmp_path: Path) -> None:
    config = parse_args([str(tmp_path), "--condition", "rotate5"])
    assert (config.folder, config.group, config.condition, config.profile, config.fpr) == (
        tmp_path, "own_p0.05", "rotate5", "own", 0.01)
    with pytest.raises(SystemExit):
        parse_args([str(tmp_path), "--condition", "flip"])
