"""Direct copies: a set of 8 protected images gives p < 1e-6 under every SPEC distortion (a Monte Carlo
p-value, so a million random keys: no random key may score as high as the artist's)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from gwm_desktop.core.distortions import STANDARD_DISTORTIONS
from gwm_desktop.core.image_io import EncodeOptions, decode_bytes, load_image, to_rgb8
from gwm_desktop.core.key_rank import reading_groups
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.verdict import VERDICT_PEAKS, set_verdict
from training.evaluate import working_batch

pytestmark = pytest.mark.slow  # the shipped model and a million random keys per distortion


def working(images: list[Image.Image], detector: WatermarkDetector) -> torch.Tensor:
    """As the scanner reads files (an isotropic model: the centred square of the shorter side)."""
    return working_batch(images, detector.working_size, detector.isotropic)


@pytest.fixture(scope="module")
def protected(engine, paintings):
    from gwm_desktop.core.watermark import Embedder

    if len(paintings) < 8:
        pytest.skip("needs 8 paintings from ../shared/data/paintings")
    key = b"direct-copy-test-key-00000000000"
    message = message_from_key(key, engine.bundle.n_bits)
    embedder = Embedder(engine.bundle.generator, message, engine.lpips, engine.device)
    images = [to_rgb8(decode_bytes(embedder.protect(load_image(p), 0.01, EncodeOptions(format="png")).data))
              for p in paintings[:8]]
    return message, images


@pytest.mark.parametrize("condition", ["none", *STANDARD_DISTORTIONS])
def test_eight_protected_images_give_p_below_one_in_a_million(engine, protected, condition):
    message, images = protected
    distort = STANDARD_DISTORTIONS.get(condition, lambda image: image)
    detector = engine.bundle.detector
    evidence = detector.decode_views(working([distort(im) for im in images], detector), peaks=VERDICT_PEAKS)
    groups = reading_groups(detector, evidence.shape[1])
    assert len(groups) == 2  # as ``gwm verdict`` reads them: the unmoved readings ranked on their own
    result = set_verdict(evidence.numpy(), message, null_keys=1_000_000, groups=groups)
    assert result.p_value < 1e-6 and result.verdict


def test_the_same_images_unprotected_give_no_verdict(engine, paintings):
    from gwm_desktop.core.image_io import load_image

    detector = engine.bundle.detector
    originals = [to_rgb8(load_image(p).rgb) for p in paintings[:8]]
    evidence = detector.decode_views(working(originals, detector), peaks=VERDICT_PEAKS).numpy()
    result = set_verdict(evidence, message_from_key(b"direct-copy-test-key-00000000000", 32), null_keys=10_000,
                         groups=reading_groups(detector, evidence.shape[1]))
    assert not result.verdict and result.p_value > 1e-3
