"""Flat colour art is told apart from photos and paintings: the app warns that its watermark can show."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from gwm_desktop.core.flat_colour import FLAT_COLOUR_SHARE, flat_share, is_flat_colour
from gwm_desktop.core.image_io import load_image
from tests.conftest import shared_folder
from tests.fixtures.bad_batch import photo_like_u8


def emoji_like(size: int = 300) -> np.ndarray:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, size - 20, size - 20), fill=(250, 200, 40), outline=(90, 60, 10), width=6)
    draw.ellipse((size // 3, size // 3, size // 3 + 30, size // 3 + 30), fill=(60, 40, 20))
    return np.asarray(image)


def test_flat_colour_art_is_flat_and_a_photo_is_not():
    assert flat_share(emoji_like()) > 0.9 and is_flat_colour(emoji_like())
    photo = photo_like_u8(240, 320, seed=3)
    assert flat_share(photo) < FLAT_COLOUR_SHARE and not is_flat_colour(photo)
    sixteen = emoji_like().astype(np.uint16) * 257          # 16-bit sources read the same
    assert flat_share(sixteen) == pytest.approx(flat_share(emoji_like()))


def test_only_what_shows_counts():
    photo = photo_like_u8(200, 200, seed=1)
    alpha = np.zeros((200, 200), np.uint8)
    alpha[50:150, 50:150] = 255                             # a photo cut-out on a transparent canvas
    photo[alpha == 0] = 0                                   # flat under the transparency
    assert is_flat_colour(photo) and not is_flat_colour(photo, alpha)
    assert flat_share(photo, np.zeros_like(alpha)) == 1.0   # nothing shows: nothing to mark as photo-like


@pytest.mark.parametrize(("folder", "low", "high", "count"), [("flat_art", 0.9, 1.0, 60), ("portraits", 0.0, 0.05, 120)])
def test_the_shared_sets_sort_as_measured(folder, low, high, count):
    path = shared_folder(folder)
    files = [f for f in sorted(path.iterdir()) if f.suffix.lower() in (".png", ".jpg", ".jpeg")][:count]
    flagged = np.mean([is_flat_colour(load_image(f).rgb, load_image(f).alpha) for f in files])
    assert low <= flagged <= high    # all 300 / 1,200: 98.3% / 1.4% (README, "Every level")
