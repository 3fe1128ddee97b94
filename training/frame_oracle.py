"""How much of what a crop or a turn costs is the scanner's frame estimate, and how much the watermark's?

Reads the case files of ``training.scan_decisions make`` (a profile's exports, distorted), as the
scanner reads them, and decides each by the key-rank test: as the scanner does; with both registered
views unturned; with the true frame given (the crop's zoom and the turn the distortion drew,
recomputed from the export; a bucket only moves it); and, for a bucket, with the true shift put first
among the shift search's peaks too. The gap between the first and the last is what a better frame
(and shift) estimate could win; what the last misses is lost to the watermark itself.

    python -m training.scan_decisions make runs/scan_ab
    python -m training.frame_oracle runs/scan_ab --group own_p0.05 --condition random_crop
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

CONDITIONS = ("random_crop", "rotate5", "bucket512")
MODES = ("scan", "unturned", "true_frame", "true_shift")


@dataclass
class Config:
    folder: Path
    group: str = "own_p0.05"
    condition: str = "random_crop"
    profile: str = "own"
    fpr: float = 0.01


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m training.frame_oracle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder written by `python -m training.scan_decisions make`")
    parser.add_argument("--group", default="own_p0.05", help="the exports to read (own_p0.05 or own_p0.01)")
    parser.add_argument("--condition", default="random_crop", choices=CONDITIONS)
    parser.add_argument("--profile", default="own", help="the profile that protected the group")
    parser.add_argument("--fpr", type=float, default=0.01)
    args = parser.parse_args(argv)
    return Config(args.folder, args.group, args.condition, args.profile, args.fpr)


def true_frame(export, condition: str) -> tuple[float, float]:
    """(zoom, turn) the scanner should find in ``condition`` applied to ``export`` (a PIL image): the
    share of the shorter side kept (the watermark's scale follows it), and the turn in the frame's
    coordinates (y down: Pillow's counter-clockwise angle, negated)."""
    from gwm_desktop.core.distortions import random_crop_box, rotation_frame

    if condition == "bucket512":    # a square of the shorter side, resized: moved, never magnified
        return 1.0, 0.0
    angle, box = (0.0, random_crop_box(export)) if condition == "random_crop" else rotation_frame(export)
    left, top, right, bottom = box
    return min(right - left, bottom - top) / min(export.size), -angle


def true_shift(export, condition: str, working_size: int) -> tuple[float, float] | None:
    """Where a bucket puts the watermark's origin (the export's centre), from the kept square's centre,
    in working pixels (x, y); None for the other conditions."""
    from gwm_desktop.core.distortions import bucket_geometry

    if condition != "bucket512":
        return None
    (width, height), (left, top, right, _) = bucket_geometry(export, 512)
    side = right - left
    return ((width / 2 - left - side / 2) * working_size / side, (height / 2 - top - side / 2) * working_size / side)


def decisions(detector, test, frames: torch.Tensor, given: list[tuple[tuple[float, float], tuple[float, float] | None]],
              mode: str, fpr: float) -> list[bool]:
    """Each frame found (p <= fpr) when its views are read in ``mode`` (``MODES``); ``given``: each
    frame's ``true_frame`` and ``true_shift``."""
    from gwm_desktop.core import models

    estimate, phases, shifts = models.estimate_frame, models.coherence_frame, models.estimate_shifts
    exact = mode in ("true_frame", "true_shift")
    half_tile = detector.components.tile // 2
    found = []
    for frame, ((zoom, turn), shift) in zip(frames, given, strict=True):
        def power(white, components, *rest, zoom=zoom, turn=turn):
            zooms, angles = estimate(white, components, *rest)
            if exact:
                return torch.tensor([zoom]), torch.tensor([turn])
            return zooms, torch.zeros_like(angles) if mode == "unturned" else angles

        def phase(alignment, candidates, *rest, zoom=zoom):
            zooms, choice = phases(alignment, candidates, *rest)
            return (torch.tensor([zoom]), torch.zeros_like(choice)) if exact else (zooms, choice)

        def shift_peaks(normalised, components, count=1, shift=shift):
            peaks = shifts(normalised, components, count)
            if mode != "true_shift":
                return peaks
            true = torch.tensor(shift, dtype=peaks.dtype) % half_tile
            return torch.cat([true.expand(peaks.shape[0], 1, 2), peaks[:, :-1]], dim=1)

        with mock.patch.object(models, "estimate_frame", power), mock.patch.object(models, "coherence_frame", phase), \
                mock.patch.object(models, "estimate_shifts", shift_peaks):
            found.append(float(test.p_values(detector.decode_views(frame[None]))[0]) <= fpr)
    return found


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from gwm_desktop.core.detect import frames_tensor
    from gwm_desktop.core.engine import Engine
    from gwm_desktop.core.image_io import load_luma_resized
    from gwm_desktop.core.key_rank import KeyRankTest, null_keys_for
    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.profiles import ProfileStore
    from training.scan_decisions import case_file, exports_of

    config = parse_args(argv)
    engine = Engine(device="cpu")
    bundle, detector = engine.bundle, engine.bundle.detector
    key = ProfileStore(config.folder / "home").get(config.profile).key
    test = KeyRankTest(detector, message_from_key(key, bundle.n_bits), null_keys_for(config.fpr))
    exports = exports_of(config.folder, config.group)
    cases = [case_file(config.folder, config.condition, config.group, p) for p in exports]
    size = detector.working_size
    frames = frames_tensor(np.stack([load_luma_resized(c, (size, size), centre_square=True) for c in cases]), "cpu")
    given = []
    for path in exports:
        export = Image.open(path).convert("RGB")
        given.append((true_frame(export, config.condition), true_shift(export, config.condition, size)))
    print(f"{len(cases)} {config.group} exports under {config.condition}, found at {config.fpr:.1%}:")
    for mode in MODES if config.condition == "bucket512" else MODES[:-1]:
        found = decisions(detector, test, frames, given, mode, config.fpr)
        print(f"  {mode:11} {100 * sum(found) / len(found):5.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
