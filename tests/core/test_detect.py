"""Scanning with the shipped model: exports are found, originals and other profiles' exports are not."""

from pathlib import Path

import torch
from PIL import Image

from gwm_desktop.core.detect import threshold_for_fpr
from gwm_desktop.core.image_io import EncodeOptions
from gwm_desktop.core.profiles import ProfileStore


def scan(engine, profile, paths: list[Path]) -> list:
    return [p.payload for p in engine.scan_files(paths, profile)]


def test_threshold_honours_the_false_positive_rate():
    negatives = torch.arange(1000, dtype=torch.float32) / 1000
    t = threshold_for_fpr(negatives, 0.01)
    assert int((negatives > t).sum()) <= 10


def test_colour_exports_are_found_and_no_original_or_other_profile_is_flagged(engine, paintings, tmp_path):
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
    found = scan(engine, mine, exported[:4])
    # Colour exports; greyscale exports are a known weakness of the shipped model (README), so they
    # are only held to "never a false positive" below.
    assert sum(r.flagged for r in found) >= 3, [(r.path.name, r.agreement) for r in found]
    assert not any(r.flagged for r in scan(engine, mine, originals))
    assert not any(r.flagged for r in scan(engine, theirs, exported))  # another key's watermark is not mine
