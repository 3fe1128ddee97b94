"""gwm eval's report: the scanner's own decision, over five keys, beside the bank's threshold."""

from dataclasses import replace
from types import SimpleNamespace

import torch

from training.eval_report import MIN_KEY_IMAGES, build_report, format_report
from training.evaluate import EVAL_KEY, other_key

CONDITIONS = ("none", "flip")


def carrying(bundle, key: bytes, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, C, V, E) evidence that carries ``key`` in the as-is, unmoved reading, on noise."""
    from gwm_desktop.core.keys import message_from_key, texture_signs

    message = message_from_key(key, bundle.n_bits)
    evidence = torch.randn(n, len(CONDITIONS), bundle.detector.view_count, 2 * bundle.n_bits, generator=generator)
    evidence[:, :, 0, :bundle.n_bits] += 3 * message
    evidence[:, :, 0, bundle.n_bits:] += 4 * (message > 0) * texture_signs(message)
    return evidence


def test_report_gives_the_key_rank_decision_for_each_key_with_enough_images(engine):
    bundle = engine.shipped()
    generator = torch.Generator().manual_seed(0)
    n, keys = 2 * MIN_KEY_IMAGES, [EVAL_KEY, other_key(0), other_key(1)]
    other_index = [i % 2 for i in range(n)]
    clean = torch.randn(n, len(CONDITIONS), bundle.detector.view_count, 2 * bundle.n_bits, generator=generator)
    marked = carrying(bundle, EVAL_KEY, n, generator)
    other = torch.cat([carrying(bundle, keys[1 + j], 1, generator) for j in other_index])
    config = SimpleNamespace(levels=[0.05], conditions=CONDITIONS, model="shipped", data=["synthetic"],
                             split="eval", other_keys=2)
    quality = {0.05: {"lpips": [0.04] * n, "psnr": [33.0] * n, "ssim": [0.95] * n}}
    report = build_report(config, bundle, keys, list(clean), {0.05: list(marked)}, {0.05: list(other)},
                          other_index, quality, [], 1.0, n, [False] * n)
    assert report["scanner_rule"].startswith("key rank") and report["scanner_keys"] == 3
    scanner = report["levels"]["0.05"]["detection"]["none"]["scanner"]
    assert scanner["tpr"] == scanner["tpr_mean_key"] == scanner["tpr_worst_key"] == 1.0
    assert scanner["fpr_cross_key"] == 0.0 and scanner["fpr_cross_key_worst_key"] == 0.0
    assert "bank_threshold" not in report["levels"]["0.05"]["detection"]["none"]  # the shipped model has no bank
    banked = replace(bundle, calibration={"clean_bits": clean[:, 0].clone(), "other_bits": other[:, 0].clone()})
    with_bank = build_report(config, banked, keys, list(clean), {0.05: list(marked)}, {0.05: list(other)},
                             other_index, quality, [], 1.0, n, [False] * n)
    assert with_bank["bank_threshold_at_1pct"] is not None
    assert "bank_threshold" in with_bank["levels"]["0.05"]["detection"]["none"]
    assert "5 keys" not in format_report(report) and "3 keys" in format_report(report)
