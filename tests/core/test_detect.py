"""Scanning with the shipped model: exports are found, originals and other profiles' exports are not."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from gwm_desktop.core.detect import profile_threshold, threshold_for_fpr
from gwm_desktop.core.image_io import EncodeOptions
from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.profiles import ProfileStore


def scan(engine, profile, paths: list[Path]) -> list:
    return [p.payload for p in engine.scan_files(paths, profile)]


def test_threshold_honours_the_false_positive_rate():
    negatives = torch.arange(1000, dtype=torch.float32) / 1000
    t = threshold_for_fpr(negatives, 0.01)
    assert int((negatives > t).sum()) <= 10


def test_profile_threshold_holds_the_rate_on_clean_images_and_on_other_keys_separately():
    message = random_messages(1, 32, torch.Generator().manual_seed(0))[0]
    clean = torch.randn(990, 32) * 0.05                        # near zero agreement
    other = random_messages(10, 32, torch.Generator().manual_seed(1)) * 4  # other keys, decoded confidently
    other[0] = message * 4                                     # one collides with ours: it must stay a negative
    calibration = {"clean_bits": clean, "other_bits": other}
    t = profile_threshold(calibration, message, 0.01)
    agree = lambda bank: (torch.tanh(bank) * message).mean(-1)  # noqa: E731
    assert float((agree(clean) > t).float().mean()) <= 0.01
    assert int((agree(other) > t).sum()) == 0                  # floor(0.01 * 10) = 0 allowed: none, the collision included
    # Pooled, the 1,000 negatives would allow 10 false positives: all ten other keys could pass.
    assert t >= threshold_for_fpr(torch.cat([agree(clean), agree(other)]), 0.01)


def test_the_faint_other_key_bank_is_held_to_the_rate_too():
    message = random_messages(1, 32, torch.Generator().manual_seed(0))[0]
    clean = torch.randn(1000, 32, generator=torch.Generator().manual_seed(1)) * 0.05
    faint = torch.randn(100, 32, generator=torch.Generator().manual_seed(2)) * 0.05
    faint[:5] = message * 0.5                                  # 5% of faint other-key images lean towards our key
    agree = lambda bank: (torch.tanh(bank) * message).mean(-1)  # noqa: E731
    without = profile_threshold({"clean_bits": clean}, message, 0.01)
    assert float((agree(faint) > without).float().mean()) >= 0.05
    with_faint = profile_threshold({"clean_bits": clean, "faint_other_bits": faint}, message, 0.01)
    assert float((agree(faint) > with_faint).float().mean()) <= 0.01


@pytest.mark.slow
def test_exports_colour_and_greyscale_are_found_and_no_original_or_other_profile_is_flagged(engine, paintings, tmp_path):
    grey_dir = tmp_path / "grey"
    grey_dir.mkdir()
    greys = []
    for path in paintings[6:10]:
        target = grey_dir / f"{path.stem}.png"
        Image.open(path).convert("L").save(target)
        greys.append(target)
    store = ProfileStore()
    mine, theirs = store.create("mine"), store.create("theirs")
    originals = [*paintings[:4], *greys]
    items = [p.payload for p in engine.protect_files(originals, tmp_path / "out", mine, 0.05, EncodeOptions())]
    assert all(i.ok for i in items), [i.error for i in items]
    exported = [i.output for i in items]
    found = scan(engine, mine, exported)
    assert sum(r.flagged for r in found) >= 7, [(r.path.name, r.agreement) for r in found]
    assert not any(r.flagged for r in scan(engine, mine, originals))
    assert not any(r.flagged for r in scan(engine, theirs, exported))  # another key's watermark is not mine


def test_engine_reuses_a_profiles_scanner_until_its_detector_changes(engine):
    profile = ProfileStore().get_or_create_default()
    first = engine.scanner(profile, 0.01)
    assert engine.scanner(profile, 0.01) is first
    stricter = engine.scanner(profile, 0.001)
    assert stricter is not first and stricter.rank_test.null_keys > first.rank_test.null_keys  # a finer p
    engine.invalidate_profile(profile)  # what installing or rolling back a Phase 2 detector calls
    assert engine.scanner(profile, 0.01) is not first


@pytest.mark.slow
def test_the_shipped_model_decides_by_the_key_rank_test(engine, paintings, tmp_path):
    """A shipped (key-independent) model's verdict is p <= FPR; the p-value is in every result."""
    profile = ProfileStore().get_or_create_default()
    items = [p.payload for p in engine.protect_files(paintings[:2], tmp_path / "out", profile, 0.05, EncodeOptions())]
    marked = scan(engine, profile, [i.output for i in items])
    clean = scan(engine, profile, paintings[:2])
    assert all(r.p_value == 1 / 1000 and r.flagged for r in marked)  # no random key of 999 as high
    assert all(r.p_value is not None and r.flagged == (r.p_value <= 0.01) for r in clean)
    strict = [p.payload for p in engine.scan_files(paintings[:2], profile, fpr=0.001)]
    assert all(r.p_value >= 1 / 10_000 for r in strict)
    from gwm_desktop.core.reports import write_csv, write_html

    write_csv([*marked, *clean], tmp_path / "r.csv")
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("path,score,agreement,p_value") and rows[1].split(",")[3] == "0.001"
    write_html(marked, tmp_path / "r.html", "default", 0.01)
    assert "<th>p</th>" in (tmp_path / "r.html").read_text()


def test_a_phase2_detector_keeps_its_banks_threshold(engine):
    """Fine-tuned on one key, a Phase 2 detector's evidence depends on it: no key-rank test for it."""
    from dataclasses import replace

    from gwm_desktop.core.detect import Scanner
    from gwm_desktop.core.keys import message_from_key

    shipped = engine.shipped()
    bank = torch.randn(50, shipped.detector.view_count, 2 * shipped.n_bits, generator=torch.Generator().manual_seed(0))
    tuned = replace(shipped, manifest={**shipped.manifest, "training": {"phase": 2}},
                    calibration={"clean_bits": bank, "other_bits": bank.flip(0)})
    assert shipped.key_independent and not tuned.key_independent
    message = message_from_key(b"k" * 32, shipped.n_bits)
    scanner = Scanner(tuned.detector, message, tuned.calibration, key_independent=tuned.key_independent)
    assert scanner.rank_test is None and scanner.threshold == profile_threshold(tuned.calibration, message.view(1, -1), 0.01)
