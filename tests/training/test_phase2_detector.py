"""Detector fine-tuning on S (0) vs S_w (1) and the held-out metrics of the Phase 2 report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gwm_desktop.core.detect import NEGATIVE_BANKS, Scanner
from gwm_desktop.core.jobs import CancelToken, JobCancelled
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.spectrum import SCAN_ZOOMS
from gwm_desktop.core.weights import load_model, save_model
from tests.training.phase2_tiny import tiny_watermark_model, write_subject_images
from training.phase2.detector_finetune import (
    DetectorFinetuneConfig,
    FreshWatermarker,
    bias_refit,
    detection_metrics,
    evaluate_detector,
    finetune_detector,
    load_detector_images,
)

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    """S: 8 images; S_w: the same watermarked with KEY at LPIPS 0.05; X: 6 Phase 1 images."""
    root = tmp_path_factory.mktemp("phase2_detector")
    model = tiny_watermark_model(root / "model")
    clean = root / "S"
    paths = write_subject_images(clean, n=8, size=64, seed=1)
    bundle = load_model(model)
    fresh = FreshWatermarker(bundle.generator, 0.05, torch.device("cpu"))
    images = load_detector_images(paths, 64).float() / 255
    marked = fresh(images, message_from_key(KEY, bundle.n_bits).expand(len(paths), -1))
    (root / "S_w").mkdir()
    for path, image in zip(paths, marked, strict=True):
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(root / "S_w" / path.name)
    phase1 = write_subject_images(root / "X", n=6, size=64, seed=2)
    return {"root": root, "model": model, "S": clean, "S_w": root / "S_w", "X": phase1}


def test_finetune_improves_bce_on_its_pairs_and_writes_a_verified_model(sets):
    out = sets["root"] / "finetuned"
    config = DetectorFinetuneConfig(steps=40, lr=1e-3, batch_size=8, device="cpu", phase1_mix=0.25)
    progress = list(finetune_detector(sets["model"], KEY, sets["S"], sets["S_w"], out, config,
                                      phase1_images=sets["X"]))
    assert [p.done for p in progress] == list(range(1, 41))
    assert {p.payload["phase"] for p in progress} == {1, 2}  # both kinds of batch were used
    final = progress[-1].payload
    assert final["bce_after"] < 0.5 * final["bce_before"]
    before = load_model(sets["model"])
    after = load_model(out)  # verifies the sha256 of what was written
    for name, value in before.generator.state_dict().items():
        assert torch.equal(value, after.generator.state_dict()[name])  # G is unchanged
    assert after.manifest["training"]["phase"] == 2
    # The bank is in the scanner's form: evidence per scan-time view, for each negative bank.
    assert set(after.calibration) == set(NEGATIVE_BANKS)
    assert all(bank.shape[1:] == (after.detector.view_count, after.n_bits) for bank in after.calibration.values())
    metrics_before = evaluate_detector(sets["model"], KEY, sets["S"], sets["S_w"])
    metrics_after = evaluate_detector(out, KEY, sets["S"], sets["S_w"])
    assert metrics_after["n"] == 16
    assert metrics_after["accuracy"] > metrics_before["accuracy"]
    assert metrics_after["auc"] >= 0.9
    other_key = evaluate_detector(out, bytes(32), sets["S"], sets["S_w"])
    assert other_key["accuracy"] < metrics_after["accuracy"]  # specific to this profile's key


def as_uint8_arrays(x: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [0, 1] -> (B, S, S, 3) uint8, what ``Scanner.score_arrays`` takes."""
    return (x.permute(0, 2, 3, 1) * 255).round().byte().numpy()


def test_a_matched_model_keeps_its_matched_filter_through_phase_2(sets):
    """Fine-tuned from a model with the matched filter, the Phase 2 detector still correlates with G's
    textures, and its bank holds that evidence, so the scanner reads it as it reads the shipped model."""
    from training.matched_filter import with_matched_filter

    root = sets["root"]
    base = load_model(sets["model"])
    generator, detector = with_matched_filter(base.generator, base.detector)
    save_model(root / "matched", generator, detector, calibration={})
    out = root / "matched_finetuned"
    config = DetectorFinetuneConfig(steps=4, batch_size=4, device="cpu", phase1_mix=0.5)
    list(finetune_detector(root / "matched", KEY, sets["S"], sets["S_w"], out, config, phase1_images=sets["X"]))
    after = load_model(out)
    assert after.detector.matched_filter and torch.equal(after.detector.templates, generator.patterns[:, 0])
    assert all(bank.shape[1:] == (after.detector.view_count, 2 * after.n_bits) for bank in after.calibration.values())
    # A direct copy marked by the signed G: the scanner's evidence carries the matched filter's statistics.
    message = message_from_key(KEY, after.n_bits)
    images = load_detector_images(sorted(sets["S"].glob("*.png")), 64).float() / 255
    marked = FreshWatermarker(generator, 0.05, torch.device("cpu"))(images, message.expand(len(images), -1))
    scanner = Scanner(after.detector, message, after.calibration)
    assert scanner.use_views
    _, clean_agreement, _ = scanner.score_arrays(as_uint8_arrays(images))
    _, marked_agreement, _ = scanner.score_arrays(as_uint8_arrays(marked))
    assert marked_agreement.min() > clean_agreement.max()


def test_cancelled_finetune_writes_nothing(sets):
    out = sets["root"] / "cancelled"
    cancel = CancelToken()
    with pytest.raises(JobCancelled):
        for progress in finetune_detector(sets["model"], KEY, sets["S"], sets["S_w"], out,
                                          DetectorFinetuneConfig(steps=5, batch_size=4, device="cpu"), cancel=cancel):
            if progress.done == 2:
                cancel.cancel()
    assert not out.exists() or not any(out.iterdir())


def test_validation_picks_the_step_and_moves_the_decision_to_its_best_threshold(sets):
    out = sets["root"] / "validated"
    config = DetectorFinetuneConfig(steps=12, lr=1e-3, batch_size=4, device="cpu", phase1_mix=0.25, validate_every=5)
    progress = list(finetune_detector(sets["model"], KEY, sets["S"], sets["S_w"], out, config,
                                      phase1_images=sets["X"], validation=(sets["S"], sets["S_w"])))
    selection = progress[-1].payload["selection"]
    assert [h["step"] for h in selection["history"]] == [0, 5, 10, 12]
    best = min(selection["history"], key=lambda h: h["loss"])
    assert selection["chosen_step"] == best["step"] and selection["validation_loss"] <= best["loss"] + 1e-9
    after = load_model(out)
    assert after.manifest["metrics"]["selection"]["chosen_step"] == selection["chosen_step"]
    # D's own decision (score 0.5) is now the refitted threshold: its accuracy on the validation images.
    assert evaluate_detector(out, KEY, sets["S"], sets["S_w"])["accuracy"] == pytest.approx(
        selection["validation_accuracy"])


def test_when_no_step_beats_the_phase1_detector_it_is_kept_with_only_its_bias_moved(sets):
    out = sets["root"] / "kept"
    config = DetectorFinetuneConfig(steps=6, lr=0.0, batch_size=4, device="cpu", phase1_mix=0.0, validate_every=2)
    progress = list(finetune_detector(sets["model"], KEY, sets["S"], sets["S_w"], out, config,
                                      validation=(sets["S"], sets["S_w"])))
    selection = progress[-1].payload["selection"]
    assert selection["chosen_step"] == 0  # every state scores the same: ties keep the earliest
    before, after = load_model(sets["model"]).detector.state_dict(), load_model(out).detector.state_dict()
    for name, value in before.items():
        if name != "score_bias":
            assert torch.equal(value, after[name]), name
    assert float(after["score_bias"]) == pytest.approx(float(before["score_bias"]) + selection["bias_shift"], abs=1e-5)


def test_fresh_watermarks_take_one_budget_per_image(sets):
    """Phase 1 batches watermark each image at its own app level (``phase1_levels``)."""
    from gwm_desktop.core.lpips_metric import build_lpips

    bundle = load_model(sets["model"])
    fresh = FreshWatermarker(bundle.generator, 0.05, torch.device("cpu"))
    images = load_detector_images(sorted(sets["S"].glob("*.png"))[:2], 64).float() / 255
    marked = fresh(images, message_from_key(KEY, bundle.n_bits).expand(2, -1), p=torch.tensor([0.01, 0.05]))
    measured = build_lpips(torch.device("cpu"))(images * 2 - 1, marked * 2 - 1).flatten()
    assert 0 < 2 * float(measured[0]) < float(measured[1]) < 0.08  # the quadratic strength estimate is rough


def test_bias_refit_is_finite_for_separable_scores_and_centred_for_symmetric_ones():
    shift, loss = bias_refit(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert shift == pytest.approx(-2.5, abs=1e-6) and 0 < loss < 0.7
    shift, _ = bias_refit(np.array([-2.0, -1.0, 0.5]), np.array([-0.5, 1.0, 2.0]))
    assert shift == pytest.approx(0.0, abs=1e-6)


def test_detection_metrics_on_known_scores():
    negatives = np.array([-3.0, -2.0, -1.0, 0.5])
    positives = np.array([-0.5, 1.0, 2.0, 3.0])
    m = detection_metrics(negatives, positives)
    assert m["accuracy"] == pytest.approx(6 / 8)  # D's own boundary (logit 0): one miss on each side
    assert m["auc"] == pytest.approx(15 / 16)
    assert m["best_accuracy"] == pytest.approx(7 / 8)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(3 / 4)  # above every clean score
    assert 0 <= m["accuracy_cv"] <= 1 and m["n"] == 8
    perfect = detection_metrics(np.array([-1.0, -2.0]), np.array([1.0, 2.0]))
    assert perfect["accuracy"] == perfect["auc"] == perfect["accuracy_cv"] == 1.0


def test_a_detector_with_a_bits_only_bank_is_fine_tuned_again_not_reused(sets, tmp_path):
    """Detectors written before the bank held per-view evidence would scan without the matched filter."""
    from training.phase2.cache import bank_is_per_view

    bundle = load_model(sets["model"])
    for name, bank in (("old", torch.zeros(4, bundle.n_bits)), ("new", torch.zeros(4, len(SCAN_ZOOMS), bundle.n_bits))):
        save_model(tmp_path / name, bundle.generator, bundle.detector, calibration={"clean_bits": bank})
    save_model(tmp_path / "none", bundle.generator, bundle.detector)
    assert not bank_is_per_view(tmp_path / "old") and bank_is_per_view(tmp_path / "new")
    assert not bank_is_per_view(tmp_path / "none")
