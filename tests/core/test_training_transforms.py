"""SPEC section 3's training transforms and the TAEF2 latent space they end in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gwm_desktop.core.distortions import (
    TRAINING_TRANSFORMS,
    random_crop,
    resolution_bucket,
    rotation,
    square_center_crop,
)
from gwm_desktop.core.taef2 import default_autoencoder_dir, load_latent_autoencoder
from gwm_desktop.core.weights import ModelIntegrityError
from gwm_desktop.resources import resource_path

SAMPLE = resource_path("samples", "rijksmuseum_SK-A-768.jpg")


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    with Image.open(SAMPLE) as image:
        return image.convert("RGB")


def test_flip_mirrors_the_image(painting):
    flipped = np.asarray(TRAINING_TRANSFORMS["flip"](painting))
    assert np.array_equal(flipped, np.asarray(painting)[:, ::-1])


def test_square_crop_is_the_centred_square_of_the_shorter_side(painting):
    cropped = square_center_crop()(painting)
    side = min(painting.size)
    assert cropped.size == (side, side)
    top = (painting.height - side) // 2
    assert np.array_equal(np.asarray(cropped), np.asarray(painting)[top:top + side, :side])


def test_random_crop_keeps_half_to_nine_tenths_of_each_side_and_is_repeatable(painting):
    crop = random_crop()
    first, again = crop(painting), crop(painting)
    assert first.size == again.size and np.array_equal(np.asarray(first), np.asarray(again))
    for salt in range(20):
        width, height = random_crop(salt=salt)(painting).size
        assert 0.5 * painting.width - 1 <= width <= 0.9 * painting.width + 1
        assert 0.5 * painting.height - 1 <= height <= 0.9 * painting.height + 1
    sizes = {random_crop(salt=salt)(painting).size for salt in range(20)}
    assert len(sizes) > 10, "the crop's size should vary with the draw"


def test_rotation_leaves_no_empty_corners(painting):
    rotated = rotation(5.0)(painting)
    assert rotated.width < painting.width and rotated.height < painting.height
    white = np.asarray(rotation(5.0)(Image.new("RGB", (300, 400), "white")))
    assert white.min() > 200, "the rotation's black fill was kept in the crop"


@pytest.mark.parametrize("resolution", [512, 768])
def test_bucket_resizes_the_shorter_side_and_crops_square(painting, resolution):
    assert resolution_bucket(resolution)(painting).size == (resolution, resolution)


def test_taef2_round_trip_keeps_the_image(painting):
    model = load_latent_autoencoder()
    x = torch.from_numpy(np.asarray(painting, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = model.round_trip(x)
    assert y.shape == x.shape  # 300 x 382: padded to multiples of 8 inside, cropped back
    psnr = 10 * torch.log10(1 / ((y - x) ** 2).mean())
    assert psnr > 28, f"round-trip PSNR {psnr:.1f} dB: the network or its weights are wrong"
    blank = model.round_trip(torch.full_like(x, 0.5))
    assert (blank - 0.5).abs().mean() < 0.05


def test_latent_transform_keeps_the_size(painting):
    small = painting.resize((120, 90))
    assert TRAINING_TRANSFORMS["latent"](small).size == (120, 90)


def test_damaged_taef2_weights_are_refused(tmp_path):
    folder = tmp_path / "taef2"
    shutil.copytree(default_autoencoder_dir(), folder)
    data = bytearray((folder / "decoder.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (folder / "decoder.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        load_latent_autoencoder(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError):
        load_latent_autoencoder(folder)


def test_upstream_state_dicts_load_when_shared_data_is_present():
    upstream = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "taef2"
    if not (upstream / "taef2_encoder.pth").exists():
        pytest.skip("../shared/data/taef2 is absent")
    shipped, original = load_latent_autoencoder(), load_latent_autoencoder(upstream)
    for a, b in zip(shipped.state_dict().values(), original.state_dict().values(), strict=True):
        assert torch.equal(a, b)
