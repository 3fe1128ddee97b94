"""Phase 1b tunes only the detector, on images exported by the app's own embedding path."""

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.generator import WatermarkGenerator
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import load_model, save_model
from training.detector_tune import DetectorTuner, main, parse_args, random_distortion


def test_tuning_changes_d_keeps_g_and_writes_a_verified_model(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        pixels = np.clip(rng.normal(128, 40, (80, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(corpus / f"im_{i:02d}.png")
    base = tmp_path / "base"
    save_model(base, WatermarkGenerator(working_size=64, tile=32), WatermarkDetector(working_size=64, spectrum_crop=24))
    out = tmp_path / "tuned"
    args = ["--model", str(base), "--data", str(corpus), "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--max-images", "4", "--device", "cpu"]
    assert main(args) == 0
    before, after = load_model(base), load_model(out / "model")
    assert torch.equal(before.generator.patterns, after.generator.patterns)
    assert not torch.equal(before.detector.bits.weight, after.detector.bits.weight)
    assert after.manifest["detector_tuning"]["images"] == 4
    tuner = DetectorTuner(parse_args(args))
    list(tuner.prepare())
    assert len(tuner.clean) == len(tuner.marked) == 4


def test_an_isotropic_detector_with_the_phases_view_is_tuned_on_one_view_an_image():
    """``registered_zoom`` returns the power's and the phases' views (2 B) for such a detector; the
    tuner reads the first B (the recipe's Phase 1 models have ``registration_peaks`` set)."""
    from types import SimpleNamespace

    from gwm_desktop.core.models import networks_for_size
    from training.matched_filter import with_matched_filter

    _, detector = with_matched_filter(*networks_for_size())
    assert detector.isotropic and detector.phase_registration
    stub = SimpleNamespace(detector=detector, torch_rng=torch.Generator().manual_seed(0))
    x = torch.rand(3, 3, detector.working_size, detector.working_size)
    assert DetectorTuner._scanner_views(stub, x).shape == x.shape


def test_random_distortions_keep_an_rgb_image():
    import random

    image = Image.new("RGB", (120, 90), (10, 200, 30))
    rng = random.Random(0)
    for _ in range(30):
        out = random_distortion(image, rng)
        assert out.mode == "RGB" and min(out.size) >= 8
    shapes = {random_distortion(image, rng, training_transforms=True).size for _ in range(40)}
    assert (512, 512) in shapes and (90, 90) in shapes   # a bucket and a square crop among them
