"""Scan-side frame recovery: registration undoes a flip and an anisotropic crop, the translation
search finds a shifted watermark, and neither gives the right key an edge on clean images."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gwm_desktop.core.agreement import matched_agreement
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.models import WatermarkDetector, networks_for_size
from gwm_desktop.core.spectrum import band_spectrum, band_width
from training.frame_search import Registration, joined_score, searched_coherent, undo_frame
from training.frame_search_eval import run

SIZE = 256


@pytest.fixture(scope="module")
def networks():
    """A fresh G (signed) and D with the matched filter: its textures are the initial plane waves."""
    generator, plain = networks_for_size(isotropic=False)  # the study is of the earlier frame
    generator.signed = True
    detector = WatermarkDetector(n_bits=plain.n_bits, spectrum_crop=plain.spectrum_crop, matched_filter=True)
    detector.adopt_templates(generator)
    return generator.eval(), detector.eval()


def key(i: int) -> torch.Tensor:
    return message_from_key(f"test-key-{i}".encode().ljust(32, b"-"), 32)


def noise(size: int, seed: int) -> torch.Tensor:
    """(1, 1, size, size) smooth image-like noise."""
    generator = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.randn(1, 1, size, size, generator=generator), 5, 1, 2) * 0.5


def marked_canvas(generator, message: torch.Tensor, seed: int = 0, strength: float = 0.3) -> torch.Tensor:
    """(1, 1, 512, 512): noise plus G's tiled texture; its top-left 256 px square is G's frame."""
    with torch.no_grad():
        return noise(512, seed) + strength * generator.pattern(message[None], 512)


def view(canvas: torch.Tensor, left: int, top: int, width: int, height: int, flip: bool = False) -> torch.Tensor:
    """A crop of the canvas, maybe mirrored, stretched back to the working size (what the scanner sees)."""
    crop = canvas[..., top:top + height, left:left + width]
    crop = crop.flip(-1) if flip else crop
    return F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)


def agreement_after_search(detector, grey: torch.Tensor, message: torch.Tensor) -> float:
    coherent, _ = searched_coherent(detector, band_spectrum(grey, band_width(detector.spectrum_crop)), message)
    return float(matched_agreement(coherent, message[None])[0])


@pytest.mark.parametrize(("left", "top", "width", "height", "flip"), [
    (0, 0, 256, 256, True),        # a trainer's horizontal flip
    (10, 37, 256, 192, False),     # a square crop of a 4:3 image: one axis stretched 4/3
    (55, 20, 180, 200, True),      # an off-centre crop at any aspect, flipped
    (3, 3, 128, 250, False),       # keeping half the width
])
def test_registration_recovers_flip_and_scale(networks, left, top, width, height, flip):
    generator, detector = networks
    message = key(0)
    seen = view(marked_canvas(generator, message), left, top, width, height, flip)
    frame = Registration(detector)(seen)[0]
    assert frame.flip == flip
    assert math.isclose(frame.sx, SIZE / width, rel_tol=0.06)
    assert math.isclose(frame.sy, SIZE / height, rel_tol=0.06)
    # Undone and searched, the key's watermark reads as strongly as in G's own frame.
    registered = undo_frame(seen, [frame])
    assert agreement_after_search(detector, registered, message) > 0.8
    assert float(matched_agreement(detector.coherent(seen.expand(-1, 3, -1, -1)), message[None])[0]) < 0.4


def test_translation_search_finds_a_known_shift(networks):
    generator, detector = networks
    message = key(1)
    canvas = marked_canvas(generator, message, seed=3)
    shifted = canvas[..., 37:37 + SIZE, 90:90 + SIZE]   # G's tiles now start 37 px up, 90 px left
    band = band_spectrum(shifted, band_width(detector.spectrum_crop))
    coherent, shift = searched_coherent(detector, band, message)
    # The filter's best shift moves the textures back onto the view: -offset, modulo the 128 px tile.
    assert shift[0, 0] % 128 == (-90) % 128 and shift[0, 1] % 128 == (-37) % 128
    assert float(matched_agreement(coherent, message[None])[0]) > 0.8
    in_place = canvas[..., :SIZE, :SIZE]
    assert agreement_after_search(detector, in_place, message) == pytest.approx(
        float(matched_agreement(detector.coherent(in_place.expand(-1, 3, -1, -1)), message[None])[0]), abs=0.05)


def test_search_gives_no_key_an_edge_on_clean_images(networks):
    _, detector = networks
    images = torch.cat([noise(SIZE, 100 + i) for i in range(12)])
    band = band_spectrum(images, band_width(detector.spectrum_crop))
    per_key = []
    for i in range(8):
        message = key(i)
        coherent, _ = searched_coherent(detector, band, message)
        per_key.append(matched_agreement(coherent, message[None]))
    per_key = torch.stack(per_key)                     # (keys, images)
    means = per_key.mean(dim=1)
    spread = per_key.std() / math.sqrt(per_key.shape[1])
    # The key the images were "scanned for first" is no different from any other: all are noise.
    assert (means - means.mean()).abs().max() < 4 * spread
    # But the maximum over shifts does lift the null above the unsearched statistic: thresholds must
    # come from the same search, never from the scanner's bank.
    unsearched = matched_agreement(detector.coherent(images.expand(-1, 3, -1, -1)), key(0)[None])
    assert per_key[0].mean() > unsearched.mean() + 2 * spread


def test_join_keeps_a_faint_unsearched_score_that_a_raw_maximum_would_lose():
    rng = np.random.default_rng(0)
    plain_null, searched_null = rng.normal(0.0, 0.05, 1000), rng.normal(0.3, 0.05, 1000)
    faint = np.array([0.2])                 # far above the plain null, below the searched one
    negatives = joined_score([plain_null, searched_null], [plain_null, searched_null])
    threshold = np.quantile(negatives, 0.99)
    assert joined_score([faint, np.array([0.3])], [plain_null, searched_null])[0] > threshold
    assert max(faint[0], 0.3) < np.quantile(np.maximum(plain_null, searched_null), 0.99)


def test_cli_refuses_a_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(["--data", str(tmp_path / "absent")])
    assert "image folder not found" in capsys.readouterr().err
